"""Benchmarks of tbptt_online (scripts, not tests): run each as ``python -m benchmarks.NAME``.

- ``throughput``: observations per second of the library against the naive per-series loop
- ``accuracy``: prequential error on real data shipped in river and statsmodels
- ``truncation_wall``: what k2 must be to learn a dependency of known length P

Each prints a markdown table and writes JSON and markdown under ``benchmarks/results/``
(or ``--out DIR``); ``--smoke`` runs a size of seconds, which CI uses so none rots.
"""
