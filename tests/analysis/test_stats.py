"""The one statistics module: the paired-by-seed verdict against a hand computation."""

import math

import pytest

from metazoo.stats import Difference, differences_by_seed, paired_by_seed


def test_paired_by_seed_matches_a_hand_computation():
    # Seeds 0, 1, 2 in both (seed 3 in one only, so left out): differences 0.9, 1.0, 1.1,
    # mean 1.0, sample sd 0.1, t(2) = 4.303, half-width 4.303 · 0.1 / √3 ≈ 0.25 < 1.
    first = {0: 2.4, 1: 3.0, 2: 4.1, 3: 9.0}
    second = {2: 3.0, 0: 1.5, 1: 2.0}
    assert differences_by_seed(first, second) == pytest.approx([0.9, 1.0, 1.1])
    gap = paired_by_seed(first, second)
    assert gap.mean == pytest.approx(1.0)
    assert gap.ci95 == pytest.approx(4.303 * 0.1 / math.sqrt(3))
    assert gap.resolved and not gap.diverged
    # Higher is better (accuracy): the first wins; lower is better (loss): the second.
    assert gap.winner("a", "b", higher_is_better=True) == "a"
    assert gap.winner("a", "b", higher_is_better=False) == "b"


def test_an_unresolved_or_diverged_difference_names_no_winner():
    spread = paired_by_seed({0: 1.0, 1: 3.0}, {0: 2.0, 1: 1.0})  # differences −1, +2
    assert not spread.resolved and spread.winner("a", "b", higher_is_better=False) is None
    diverged = paired_by_seed({0: float("inf"), 1: 1.0}, {0: 1.0, 1: 0.0})
    assert diverged.diverged and not diverged.resolved
    one_seed = paired_by_seed({0: 2.0}, {0: 1.0})  # no interval from one pair
    assert one_seed.mean == 1.0 and math.isnan(one_seed.ci95) and not one_seed.resolved
    assert Difference(-2.0, 1.0).winner("a", "b", higher_is_better=False) == "a"
