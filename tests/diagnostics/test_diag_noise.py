"""Noise scale on linear regression at a fixed weight (docs/theory.md §2, §9): the unbiased ‖∇L‖² and tr Σ estimators
hit the population values ∇L = He, tr Σ(e) at batch sizes where the naive ‖ḡ‖² is far off; the two-batch
online estimator converges to the same values."""

import math

import pytest
import torch

from sweeper.diagnostics import BatchGradStats, TwoBatchNoiseScale, noise_to_signal, per_batch_noise


def draw_example_grads(linreg, shape, seed):
    x, y = linreg.sample(shape, torch.Generator().manual_seed(seed))
    return linreg.example_grads(x, y)  # (*shape, d), sampled with replacement from the population


def test_population_is_noise_dominated(linreg):
    g2, tr = float(linreg.grad().square().sum()), linreg.trace_sigma()
    assert 10 < tr / g2 < 100  # B_simple: batch sizes 4–8 are far below it, where ‖ḡ‖² is mostly noise


def test_per_batch_unbiased_estimators(linreg):
    batch, repeats = 4, 40000
    g2, tr = float(linreg.grad().square().sum()), linreg.trace_sigma()
    est = per_batch_noise(draw_example_grads(linreg, (repeats, batch), seed=1))
    assert est.trace_sigma.shape == (repeats,)

    def mean_se(t):
        return float(t.mean()), float(t.std() / math.sqrt(repeats))

    m, se = mean_se(est.grad_sq)
    assert abs(m - g2) < 4 * se and se < 0.1 * g2
    m, se = mean_se(est.trace_sigma)
    assert abs(m - tr) < 4 * se and se < 0.02 * tr
    naive, _ = mean_se(est.grad_sq_naive)  # biased up by tr Σ/B
    assert naive > 3 * g2 and naive == pytest.approx(g2 + tr / batch, rel=0.03)
    # B_simple as the ratio of the averaged numerator and denominator
    assert float(est.trace_sigma.mean() / est.grad_sq.mean()) == pytest.approx(tr / g2, rel=0.15)


def test_noise_to_signal_from_batch_gradients(linreg):
    batch, m, repeats = 4, 200, 300
    g2, tr = float(linreg.grad().square().sum()), linreg.trace_sigma()
    batch_grads = draw_example_grads(linreg, (repeats, m, batch), seed=2).mean(-2)  # (repeats, m, d)
    res = noise_to_signal(batch_grads, batch)
    assert res.g_t.shape == (repeats,)
    se = float(res.g_t.std() / math.sqrt(repeats))
    assert abs(float(res.g_t.mean()) - g2) < 4 * se and se < 0.05 * g2
    assert float(res.n_t.mean()) == pytest.approx(tr / batch, rel=0.02)
    assert float(res.s.mean()) > 3 * g2  # S alone (the naive signal) is mostly noise at this B
    b_simple = batch * float(res.n_t.mean()) / float(res.g_t.mean())
    assert b_simple == pytest.approx(tr / g2, rel=0.1)
    assert float(res.ratio.median()) == pytest.approx(batch * g2 / tr, rel=0.25)  # G_t/N_t = B/B_simple
    # streaming accumulator = batched function
    stats = BatchGradStats(batch)
    for g in batch_grads[0]:
        stats.add(g)
    one = stats.result()
    assert float(one.g_t) == pytest.approx(float(res.g_t[0]), rel=1e-9)
    assert float(one.n_t) == pytest.approx(float(res.n_t[0]), rel=1e-9)


def test_two_batch_estimator_converges(linreg):
    small, big, steps = 4, 32, 20000
    g2, tr = float(linreg.grad().square().sum()), linreg.trace_sigma()
    ex = draw_example_grads(linreg, (steps, big), seed=3)
    sq_small = ex[:, :small].mean(1).square().sum(-1)  # g_b: a sub-batch of g_B′ (only expectations matter)
    sq_big = ex.mean(1).square().sum(-1)
    est = TwoBatchNoiseScale(small, big, beta=0.999)
    assert math.isnan(est.b_simple)
    for i in range(steps):
        est.update(sq_small[i], sq_big[i])
        if i == steps // 2:  # checkpoint round trip mid-run
            copy = TwoBatchNoiseScale(small, big, beta=0.999)
            copy.load_state_dict(est.state_dict())
            est = copy
    assert est.grad_sq == pytest.approx(g2, rel=0.1)
    assert est.trace_sigma == pytest.approx(tr, rel=0.05)
    assert est.b_simple == pytest.approx(tr / g2, rel=0.12)
    # the per-step estimates are unbiased: their plain means over all steps are within 4 standard errors
    per_step = torch.tensor([est.estimates(float(a), float(b)) for a, b in zip(sq_small, sq_big, strict=True)])
    mean, se = per_step.mean(0), per_step.std(0) / math.sqrt(steps)
    assert abs(float(mean[0]) - g2) < 4 * float(se[0]) and abs(float(mean[1]) - tr) < 4 * float(se[1])
    with pytest.raises(ValueError, match="big_batch"):
        TwoBatchNoiseScale(small, 64).load_state_dict(est.state_dict())
