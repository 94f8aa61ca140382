"""Diagnostics math for SGD-theory checks (docs/theory.md §2, §4, §5, §6, §9): pure functions on tensors/arrays.

    per_example:  per_example_grads(model, x, y, task, chunk) -> (n, d); batch_grad(model, x, y, task) -> (d,)
    covariance:   covariance_spectrum(G (n, d)) -> CovarianceSpectrum; centred_covariance(G) -> (d, d)
    noise:        noise_to_signal(grads (m, d), B) -> NoiseToSignal; per_batch_noise(grads (B, d)) -> PerBatchNoise;
                  TwoBatchNoiseScale (online McCandlish estimator with EMA)
    sharpness:    top_hessian_eigenvalue(model, x, y, task) -> TopEigenvalue; hessian_trace(...) -> HessianTrace
    trajectory:   random_directions/project; increment_spectrum, long_lag_autocorrelation, msd_exponent,
                  levy_area_test on (T, K) projection trajectories
"""

from sweeper.diagnostics.covariance import CovarianceSpectrum, centred_covariance, covariance_spectrum
from sweeper.diagnostics.noise import (
    BatchGradStats,
    NoiseToSignal,
    PerBatchNoise,
    TwoBatchNoiseScale,
    noise_to_signal,
    per_batch_noise,
)
from sweeper.diagnostics.per_example import batch_grad, per_example_grads
from sweeper.diagnostics.sharpness import HessianTrace, TopEigenvalue, hessian_trace, top_hessian_eigenvalue
from sweeper.diagnostics.trajectory import (
    increment_spectrum,
    levy_area_test,
    long_lag_autocorrelation,
    msd_exponent,
    project,
    random_directions,
)

__all__ = [
    "BatchGradStats",
    "CovarianceSpectrum",
    "HessianTrace",
    "NoiseToSignal",
    "PerBatchNoise",
    "TopEigenvalue",
    "TwoBatchNoiseScale",
    "batch_grad",
    "centred_covariance",
    "covariance_spectrum",
    "hessian_trace",
    "increment_spectrum",
    "levy_area_test",
    "long_lag_autocorrelation",
    "msd_exponent",
    "noise_to_signal",
    "per_batch_noise",
    "per_example_grads",
    "project",
    "random_directions",
    "top_hessian_eigenvalue",
]
