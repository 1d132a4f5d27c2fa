"""Statistics checked against values computed by hand or published."""

from __future__ import annotations

import math

import pytest

from medllm_core.library.evaluation.stats import (
    accuracy,
    compare,
    holm_adjust,
    mcnemar_exact,
    paired_bootstrap_difference,
    with_holm,
)


def test_wilson_interval_known_values():
    # 50/100: Wilson 95% interval (0.4038, 0.5962) — textbook value
    result = accuracy([True] * 50 + [False] * 50)
    assert result.value == 0.5
    assert result.ci_low == pytest.approx(0.40383, abs=1e-4)
    assert result.ci_high == pytest.approx(0.59617, abs=1e-4)
    # 0/10: the Wilson interval stays inside [0, 1] (0, 0.2775)
    none = accuracy([False] * 10)
    assert none.ci_low == pytest.approx(0.0, abs=1e-12) and none.ci_high == pytest.approx(0.27753, abs=1e-4)
    assert math.isnan(accuracy([]).value)


def test_exact_mcnemar_matches_the_binomial_by_hand():
    # discordant pairs: 5 favour the variant, 1 the baseline -> p = 2 * P(X <= 1 | n=6, 0.5) = 2 * 7/64
    variant = [True] * 10 + [True] * 5 + [False] * 1 + [False] * 20
    baseline = [True] * 10 + [False] * 5 + [True] * 1 + [False] * 20
    only_v, only_b, p = mcnemar_exact(variant, baseline)
    assert (only_v, only_b) == (5, 1)
    assert p == pytest.approx(0.21875)
    # 0 vs 8 discordant: p = 2 * (1/2)^8
    _, _, p = mcnemar_exact([False] * 8 + [True] * 4, [True] * 8 + [True] * 4)
    assert p == pytest.approx(2 / 256)
    assert mcnemar_exact([True, False], [True, False])[2] == 1.0
    with pytest.raises(ValueError):
        mcnemar_exact([True], [True, False])


def test_holm_known_values():
    # sorted p: 0.01*3=0.03, max(0.03, 0.03*2=0.06)=0.06, max(0.06, 0.04*1)=0.06
    assert holm_adjust([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm_adjust([]) == []


def test_paired_bootstrap():
    same = [True, False, True, True]
    assert paired_bootstrap_difference(same, same) == (0.0, 0.0, 0.0)
    better = [True] * 30 + [False] * 10
    worse = [True] * 10 + [False] * 30
    diff, low, high = paired_bootstrap_difference(better, worse, seed=1)
    assert diff == pytest.approx(0.5)
    assert 0.3 < low < diff < high < 0.7
    # deterministic for a seed
    assert paired_bootstrap_difference(better, worse, seed=1) == (diff, low, high)


def test_compare_and_holm_family():
    base = [True] * 20 + [False] * 20
    a = [True] * 30 + [False] * 10
    b = [True] * 21 + [False] * 19
    family = with_holm([compare("a", a, "base", base), compare("b", b, "base", base)])
    assert family[0].only_variant_correct == 10 and family[0].only_baseline_correct == 0
    assert family[0].holm_p == pytest.approx(min(1.0, 2 * family[0].mcnemar_p))
    assert family[1].holm_p >= family[1].mcnemar_p
    assert family[0].difference == pytest.approx(0.25)
