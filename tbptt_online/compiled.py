"""How the library compiles its per-series kernels: one decorator, one set of flags.

``compiled`` is numba's ``njit`` (no Python objects inside) with

- ``cache=True``: the machine code is written beside the module (``__pycache__``, or
  ``NUMBA_CACHE_DIR``) and loaded by later processes instead of compiled again;
- ``error_model="numpy"``: float arithmetic follows IEEE 754 as the tensor code it
  replaces did (``x / 0.0`` is inf or NaN, caught where it matters by the finiteness
  checks of the recursions), instead of raising ``ZeroDivisionError`` inside a tick.

No ``fastmath``: the kernels' results must not depend on how the compiler reorders
sums (a recovered model replays them bit-identically).
"""

from __future__ import annotations

from numba import njit

compiled = njit(cache=True, error_model="numpy")
