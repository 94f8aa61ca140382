"""Stationary SGD/SVAG on linear regression with Gaussian design (docs/theory.md §8), in closed form.

Model: x ~ N(0, H), H = diag(h); y = x·w* + σε; loss ½(x·w − y)²; batches drawn with replacement. With error
e = w − w*, a step of SVAG(l) (l = 1 is SGD) with step a = η/l is e' = (I − aH)e − aξ, where ξ has covariance
(l/B)·Σ(e), Σ(e) = H e eᵀ H + (eᵀHe) H + σ² H (Gaussian fourth moments). The second moment S = E[e eᵀ] obeys

    S' = (I − aH) S (I − aH) + (η²/(lB)) (H S H + tr(HS) H + σ² H),

which stays diagonal for diagonal H. Its fixed point is the discrete-time stationary covariance; l → ∞ gives
the SDE (Ornstein–Uhlenbeck) limit H S + S H = (η/B) Σ(S).
"""

from __future__ import annotations

import numpy as np


def stationary_variances(h: np.ndarray, noise: float, lr: float, batch_size: int, svag_l: float = 1.0) -> np.ndarray:
    """Diagonal of the stationary E[e eᵀ] (shape (d,)) for SVAG(l); ``svag_l = inf`` gives the SDE limit.

    Raises ValueError when the iteration has no stationary state (the step is unstable).
    """
    h = np.asarray(h, dtype=np.float64)
    if np.isinf(svag_l):  # (1/a)·[fixed-point equation] as a → 0
        m = np.diag(2 * h - (lr / batch_size) * h**2) - (lr / batch_size) * np.outer(h, h)
        r = (lr / batch_size) * noise**2 * h
    else:
        a, c = lr / svag_l, lr**2 / (svag_l * batch_size)
        m = np.diag(2 * a * h - a**2 * h**2 - c * h**2) - c * np.outer(h, h)
        r = c * noise**2 * h
    s = np.linalg.solve(m, r)
    if np.any(s <= 0) or not np.all(np.isfinite(s)) or _spectral_radius(h, lr, batch_size, svag_l) >= 1:
        raise ValueError(f"no stationary state: lr={lr:g}, B={batch_size}, l={svag_l:g} is unstable for this H")
    return s


def _spectral_radius(h: np.ndarray, lr: float, batch_size: int, svag_l: float) -> float:
    """Spectral radius of the linear map S ↦ S' restricted to diagonals (< 1 ⇔ second moments converge)."""
    if np.isinf(svag_l):
        return 0.0
    a, c = lr / svag_l, lr**2 / (svag_l * batch_size)
    t = np.diag((1 - a * h) ** 2 + c * h**2) + c * np.outer(h, h)
    return float(np.max(np.abs(np.linalg.eigvals(t))))


def stationary_excess_loss(h: np.ndarray, noise: float, lr: float, batch_size: int, svag_l: float = 1.0) -> float:
    """Stationary E[½ eᵀHe]: the test loss above the minimiser's, per docs/theory.md §8."""
    return 0.5 * float(np.dot(h, stationary_variances(h, noise, lr, batch_size, svag_l)))


def expected_loss(h: np.ndarray, w_star: np.ndarray, init_var: float, noise: float, lr: float, batch_size: int,
                  svag_l: float, steps: int) -> np.ndarray:
    """E[test loss] after k = 0 … ``steps`` raw SVAG(l) steps from w0 ~ (0, init_var·I), shape (steps + 1,).

    The second-moment recursion of the module docstring run from S0 = E[e0 e0ᵀ] = init_var·I + w* w*ᵀ (a full
    matrix): S' = (I − aH)S(I − aH) + c(HSH + tr(HS)H + σ²H), a = η/l, c = η²/(lB); loss ½(tr(HS) + σ²). Exact for
    the population (fresh Gaussian batches); a finite training set sampled with replacement adds O(d/n).
    """
    h = np.asarray(h, dtype=np.float64)
    w = np.asarray(w_star, dtype=np.float64)
    a, c = lr / svag_l, lr**2 / (svag_l * batch_size)
    s = init_var * np.eye(len(h)) + np.outer(w, w)
    m = 1.0 - a * h
    out = np.full(steps + 1, np.inf)
    for k in range(steps + 1):
        ths = float(h @ np.diag(s))
        if not ths < 1e300:  # diverged: the rest stays inf
            break
        out[k] = 0.5 * (ths + noise**2)
        s = m[:, None] * s * m[None, :] + c * (h[:, None] * s * h[None, :] + np.diag((ths + noise**2) * h))
    return out
