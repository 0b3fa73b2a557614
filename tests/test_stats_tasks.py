import math

import pytest
import torch

import metalearn as ml
from metalearn.evaluation.stats import t_quantile_975


@pytest.mark.parametrize("df, expected", [(1, 12.7062), (4, 2.7764), (10, 2.228139), (30, 2.042272),
                                          (100, 1.983972), (999, 1.962341)])
def test_t_quantiles(df, expected):
    assert t_quantile_975(df) == pytest.approx(expected, rel=2e-4)


def test_confidence_interval_covers_the_mean_95_percent_of_the_time():
    gen = torch.Generator().manual_seed(0)
    hits = 0
    trials = 2000
    for _ in range(trials):
        m, h = ml.mean_ci(torch.randn(12, generator=gen) + 3.0)
        hits += abs(m - 3.0) <= h
    assert 0.935 <= hits / trials <= 0.965


def test_mean_ci_edge_cases():
    assert ml.mean_ci([2.0]) == (2.0, math.inf)
    with pytest.raises(ValueError):
        ml.mean_ci([])


def test_sinusoid_tasks_follow_the_paper_distribution():
    fam = ml.SinusoidTasks(shots=10)
    batch, truth = fam.sample_with_truth(4000, torch.Generator().manual_seed(0))
    assert batch.support_x.shape == (4000, 10, 1) and batch.query_y.shape == (4000, 10, 1)
    assert 0.1 <= truth.amplitude.min() and truth.amplitude.max() <= 5.0
    assert 0 <= truth.phase.min() and truth.phase.max() <= math.pi
    assert -5 <= batch.support_x.min() and batch.query_x.max() <= 5
    assert truth.amplitude.mean().item() == pytest.approx(2.55, abs=0.08)
    assert torch.allclose(batch.support_y, truth(batch.support_x))
    assert not torch.equal(batch.support_x, batch.query_x)  # independent support and query points


def test_same_seed_same_tasks_other_seed_other_tasks():
    fam = ml.SinusoidTasks(shots=5, queries=7)
    a = fam.sample(3, torch.Generator().manual_seed(1))
    b = fam.sample(3, torch.Generator().manual_seed(1))
    c = fam.sample(3, torch.Generator().manual_seed(2))
    assert torch.equal(a.query_y, b.query_y) and not torch.equal(a.query_y, c.query_y)
    assert a.query_x.shape == (3, 7, 1)


def test_bad_task_arguments():
    with pytest.raises(ml.ConfigError, match="shots must be a positive integer"):
        ml.SinusoidTasks(shots=0)
    with pytest.raises(ValueError, match="same leading task dimension"):
        ml.TaskBatch(torch.zeros(2, 1), torch.zeros(3, 1), torch.zeros(2, 1), torch.zeros(2, 1))


def test_paired_difference_counts_wins_in_the_better_direction():
    from metalearn.evaluation.stats import paired
    a = torch.tensor([1.0, 2.0, 3.0, 4.0])
    b = torch.tensor([0.5, 2.5, 3.0, 3.0])
    up = paired(a, b, better="higher")
    assert (up.wins, up.losses, up.ties, up.n) == (2, 1, 1, 4)
    assert up.mean == pytest.approx(0.25)
    down = paired(a, b, better="lower")
    assert (down.wins, down.losses) == (1, 2)
    # the paired CI is the CI of the differences, far narrower than the two intervals when the
    # tasks are shared: here every task gains exactly 0.1
    shared = torch.linspace(0, 10, 50)
    d = paired(shared + 0.1, shared)
    assert d.mean == pytest.approx(0.1) and d.ci < 1e-6 and d.significant
    with pytest.raises(ValueError, match="same tasks"):
        paired(a, b[:3])
