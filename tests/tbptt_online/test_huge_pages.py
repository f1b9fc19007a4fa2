"""The store's large fields asked for on transparent huge pages (``huge_pages``), the small ones not."""

from __future__ import annotations

import sys

import pytest
import torch

from tbptt_online import Forecaster, ForecasterConfig, huge_pages

needs_huge_pages = pytest.mark.skipif(
    not sys.platform.startswith("linux") or huge_pages.huge_page_size() <= 0,
    reason="transparent huge pages are Linux's, and this machine's kernel has none",
)


def advised(tensor: torch.Tensor) -> bool:
    """Whether the kernel's mapping that holds the middle of ``tensor``'s memory carries the
    ``MADV_HUGEPAGE`` advice (``hg`` among its ``VmFlags`` in ``/proc/self/smaps``)."""
    middle = tensor.data_ptr() + tensor.numel() * tensor.element_size() // 2
    inside = False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):  # a mapping's first line: its address range
                low, high = (int(a, 16) for a in head.split("-"))
                inside = low <= middle < high
            elif inside and head == "VmFlags:":
                return "hg" in line.split()[1:]
    raise AssertionError("no mapping holds the tensor's memory")


@needs_huge_pages
def test_a_grown_stores_large_fields_are_advised_and_its_small_ones_are_not() -> None:
    f = Forecaster(ForecasterConfig())
    f.observe_many([(f"s{i}", float(i % 7)) for i in range(600)])  # grows the store to 1,024 rows
    tensors = f.store.tensors
    size = huge_pages.huge_page_size()
    large = [k for k, v in tensors.items() if v.numel() * v.element_size() >= (huge_pages.MIN_PAGES + 2) * size]
    assert {"x_season", "c_origin"} <= set(large)  # 21,504 and 16,128 bytes a row
    for name in large:
        assert advised(tensors[name]), name
    assert not huge_pages.advise(tensors["steps"])  # 8 KiB: no whole huge page inside


def test_advice_is_not_asked_for_a_tensor_without_whole_huge_pages_or_not_contiguous() -> None:
    size = max(huge_pages.huge_page_size(), 2**21)
    assert not huge_pages.advise(torch.zeros(1024))
    assert not huge_pages.advise(torch.empty(4 * size // 8, 2, dtype=torch.float64)[:, 0])  # a strided view
