"""Peak memory in a stage's metrics is that stage's, not the process's lifetime peak."""

from __future__ import annotations

import sys

import pytest

from medllm_core.library.training import host_memory
from medllm_core.library.training.callbacks import peak_memory_gb

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RSS is read from /proc")


def test_a_stage_after_a_bigger_one_reports_its_own_peak() -> None:
    with host_memory.StagePeakRss(every_s=0.01) as big:
        ballast = bytearray(400 * 1024**2)  # 400 MiB, touched so it is resident
        for index in range(0, len(ballast), 4096):
            ballast[index] = 1
        first = peak_memory_gb()
    del ballast
    with host_memory.StagePeakRss(every_s=0.01):
        second = peak_memory_gb()
    assert big.peak_gb is not None and first["scope"] == second["scope"] == "stage"
    if first["device"] == "cpu":
        # The process peak (ru_maxrss) still holds the 400 MiB; the second stage's own peak does not.
        assert first["peak_rss_gb"] - second["peak_rss_gb"] > 0.3, (first, second)
        assert second["process_peak_rss_gb"] >= first["peak_rss_gb"] - 0.01
    assert host_memory.active_stage_peak_gb() is None  # outside a stage nothing is metered


def test_report_numbers_are_rounded_for_the_reader() -> None:
    from medllm_core.kernel.day1_summary import _short
    from medllm_core.library.method_comparison import _fmt

    assert _fmt(11190.4) == "11,190" and _fmt(0.123456) == "0.1235" and _fmt(7.471303939819336) == "7.471"
    assert _short(7.471303939819336) == "7.4713" and _short(3538.421) == "3538.421" and _short(30) == "30"
