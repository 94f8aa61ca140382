"""Spectrum of the centred per-example gradient covariance D (docs/theory.md §5, §9).

D = (1/(n−1)) Σ_i (g_i − ḡ)(g_i − ḡ)ᵀ is the *centred* sample covariance of n per-example gradients g_i ∈ R^d
(not the uncentred second moment used in some papers). Units: (gradient units)², i.e. eigenvalues and trace of D.
When d > n the n×n Gram matrix K = G_c G_cᵀ/(n−1) is diagonalised instead: it has the same nonzero eigenvalues.
Everything is computed in float64.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["CovarianceSpectrum", "centred_covariance", "covariance_spectrum", "unbiased_trace_moments"]

EPS_FLOAT32 = float(np.finfo(np.float32).eps)  # 2^-23 ≈ 1.19e-7, the rank threshold of Chaudhari & Soatto


@dataclass(frozen=True)
class CovarianceSpectrum:
    """Summary of the spectrum of the centred covariance D of n samples in dimension d.

    eigenvalues: the top-k eigenvalues of D, descending, float64 (k ≤ min(n, d)).
    trace, trace_sq: tr D and tr(D²) of the sample covariance (plug-in).
    participation_ratio: plug-in (tr D)²/tr(D²); biased low when n is small compared with the true PR.
    trace_unbiased_sq, trace_sq_unbiased: U-statistic (unbiased) estimates of (tr Σ)² and tr(Σ²) of the population
        covariance Σ, from disjoint pairs of differences (see ``unbiased_trace_moments``); NaN when n < 4.
    participation_ratio_unbiased: their ratio (nearly unbiased for (tr Σ)²/tr(Σ²); NaN if tr(Σ²) estimate ≤ 0).
    n_eig_90, n_eig_99: fewest eigenvalues whose sum reaches 90% / 99% of tr D.
    rank: eigenvalues above rank_threshold = λ_max·d·ε_float32.
    rank_bound: min(n − 1, d); bound_kind: "samples" if n − 1 < d else "dimension" (the bound that applies).
    rank_over_d, rank_over_bound: rank/d and rank/min(n − 1, d).
    rank_saturated: rank ≥ n − 1, i.e. the rank is limited by the sample count, not a property of the model.
    path: "gram" (n×n) or "covariance" (d×d), the matrix that was diagonalised.
    """

    n: int
    d: int
    eigenvalues: np.ndarray
    trace: float
    trace_sq: float
    participation_ratio: float
    trace_unbiased_sq: float
    trace_sq_unbiased: float
    participation_ratio_unbiased: float
    n_eig_90: int
    n_eig_99: int
    rank: int
    rank_threshold: float
    rank_bound: int
    bound_kind: str
    rank_over_d: float
    rank_over_bound: float
    rank_saturated: bool
    path: str
    centred: bool = field(default=True)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (eigenvalues as a list of floats)."""
        out = asdict(self)
        out["eigenvalues"] = [float(v) for v in self.eigenvalues]
        return out


def _column_means(g: Tensor, block: int) -> Tensor:
    total = torch.zeros(g.shape[1], dtype=torch.float64, device=g.device)
    for start in range(0, g.shape[0], block):
        total += g[start : start + block].to(torch.float64).sum(0)
    return total / g.shape[0]


def _scatter(g: Tensor, block: int) -> tuple[Tensor, Tensor, str]:
    """(M, a, path): M = G_cᵀG_c (d×d) if d ≤ n else G_c G_cᵀ (n×n), a_i = ‖g_i − ḡ‖², all float64.

    Converts to float64 one block of rows or columns at a time, so no float64 copy of G is made.
    """
    n, d = g.shape
    mean = _column_means(g, block)
    a = torch.zeros(n, dtype=torch.float64, device=g.device)
    if d > n:
        m = torch.zeros(n, n, dtype=torch.float64, device=g.device)
        for start in range(0, d, block):
            gb = g[:, start : start + block].to(torch.float64) - mean[start : start + block]
            m += gb @ gb.T
        a = torch.diagonal(m).clone()
        return m, a, "gram"
    m = torch.zeros(d, d, dtype=torch.float64, device=g.device)
    for start in range(0, n, block):
        gb = g[start : start + block].to(torch.float64) - mean
        m += gb.T @ gb
        a[start : start + block] = gb.square().sum(1)
    return m, a, "covariance"


def _unbiased_from_scatter(a: np.ndarray, frob_sq: float) -> tuple[float, float]:
    """Unbiased ((tr Σ)², tr(Σ²)) from centred row norms a_i = ‖x_i − x̄‖² and ‖G_c G_cᵀ‖_F² = frob_sq.

    Both are order-4 U-statistics over distinct indices (i, j, k, l):
      tr(Σ²)  = E[((x_i − x_j)ᵀ(x_k − x_l))²]/4,   (tr Σ)² = E[‖x_i − x_j‖² ‖x_k − x_l‖²]/4,
    equivalently (Chen, Zhang & Zhong 2010) tr(Σ²) ≈ Q2/P(n,2) − 2Q3/P(n,3) + Q4/P(n,4) with Q2 = Σ_{i≠j} A_ij²,
    Q3 = Σ_{i,j,k distinct} A_ij A_ik, Q4 = Σ_{i,j,k,l distinct} A_ij A_kl (A = Gram matrix). Both are invariant
    under translation of the data, so they may be evaluated on the centred data, where the index sums reduce to
    Σa, Σa² and ‖A‖_F² (O(n) given the scatter matrix).
    """
    n = a.shape[0]
    if n < 4:
        return math.nan, math.nan
    sa, sa2 = float(a.sum()), float(np.square(a).sum())
    p2, p3, p4 = n * (n - 1), n * (n - 1) * (n - 2), n * (n - 1) * (n - 2) * (n - 3)
    q2 = frob_sq - sa2
    q3 = sa2 - q2  # Σ_i s_i² − Q2 with s_i = Σ_{j≠i} A_ij = −a_i for centred data
    q4 = sa**2 - 4 * sa2 + 2 * q2
    tr_sigma_sq = q2 / p2 - 2 * q3 / p3 + q4 / p4
    # Squared distances D_ij = a_i + a_j − 2A_ij: Σ_{ij} D = 2nΣa, row sums r_i = n a_i + Σa,
    # Σ_{ij} D² = 2nΣa² + 2(Σa)² + 4‖A‖_F²; Σ over distinct (i,j,k,l) of D_ij D_kl = S1² − 4Σr² + 2ΣD².
    s1 = 2 * n * sa
    sum_r2 = float(np.square(n * a + sa).sum())
    sum_d2 = 2 * n * sa2 + 2 * sa**2 + 4 * frob_sq
    tr_sigma_squared = (s1**2 - 4 * sum_r2 + 2 * sum_d2) / (4 * p4)
    return tr_sigma_squared, tr_sigma_sq


def unbiased_trace_moments(g: Tensor, block: int = 4096) -> tuple[float, float]:
    """Unbiased estimates ((tr Σ)², tr(Σ²)) of the population covariance Σ from n ≥ 4 i.i.d. rows of g (n, d).

    See ``_unbiased_from_scatter``; cost O(n·d·min(n, d)) for the scatter/Gram matrix. NaN if n < 4.
    """
    m, a, _ = _scatter(g, block)
    return _unbiased_from_scatter(a.cpu().numpy(), float(m.square().sum()))


def centred_covariance(g: Tensor, block: int = 4096) -> Tensor:
    """The centred sample covariance D = G_cᵀG_c/(n − 1), shape (d, d), float64 (cost O(n d²), memory d²)."""
    n, d = g.shape
    if n < 2:
        raise ValueError("need at least 2 samples")
    mean = _column_means(g, block)
    m = torch.zeros(d, d, dtype=torch.float64, device=g.device)
    for start in range(0, n, block):
        gb = g[start : start + block].to(torch.float64) - mean
        m += gb.T @ gb
    return m / (n - 1)


def _count_to_fraction(eig: np.ndarray, trace: float, frac: float) -> int:
    if trace <= 0:
        return 0
    cum = np.cumsum(eig)
    return int(min(np.searchsorted(cum, frac * trace * (1 - 1e-12)) + 1, len(eig)))


def covariance_spectrum(g: Tensor, top_k: int = 100, block: int = 4096) -> CovarianceSpectrum:
    """Spectrum summary of the centred covariance of the rows of g, shape (n, d) (n samples, e.g. per-example
    gradients from ``per_example_grads``; any float dtype/device, computed in float64).

    Diagonalises the n×n Gram matrix K = G_c G_cᵀ/(n − 1) when d > n, else the d×d covariance (same nonzero
    eigenvalues). Cost: O(n·d·min(n, d)) for the matrix plus O(min(n, d)³) for ``eigvalsh``; memory min(n, d)²
    float64 (G itself is converted block by block). The numerical rank counts eigenvalues above λ_max·d·ε_float32
    (docs/theory.md §5) — d is the parameter count on both paths.
    """
    if g.ndim != 2:
        raise ValueError(f"expected a 2-D (n, d) tensor, got shape {tuple(g.shape)}")
    n, d = g.shape
    if n < 2:
        raise ValueError("need at least 2 samples")
    m, a, path = _scatter(g.detach(), block)
    frob_sq = float(m.square().sum())
    eig = torch.linalg.eigvalsh(m / (n - 1)).flip(0).cpu().numpy()  # descending
    eig_pos = np.clip(eig, 0.0, None)
    trace = float(a.sum()) / (n - 1)
    trace_sq = frob_sq / (n - 1) ** 2
    pr = trace**2 / trace_sq if trace_sq > 0 else math.nan
    tt_u, t2_u = _unbiased_from_scatter(a.cpu().numpy(), frob_sq)
    pr_u = tt_u / t2_u if (not math.isnan(t2_u) and t2_u > 0) else math.nan
    lam_max = float(eig_pos[0]) if len(eig_pos) else 0.0
    threshold = lam_max * d * EPS_FLOAT32
    rank = int((eig_pos > threshold).sum()) if lam_max > 0 else 0
    bound = min(n - 1, d)
    return CovarianceSpectrum(
        n=n,
        d=d,
        eigenvalues=eig_pos[:top_k].copy(),
        trace=trace,
        trace_sq=trace_sq,
        participation_ratio=pr,
        trace_unbiased_sq=tt_u,
        trace_sq_unbiased=t2_u,
        participation_ratio_unbiased=pr_u,
        n_eig_90=_count_to_fraction(eig_pos, trace, 0.90),
        n_eig_99=_count_to_fraction(eig_pos, trace, 0.99),
        rank=rank,
        rank_threshold=threshold,
        rank_bound=bound,
        bound_kind="samples" if n - 1 < d else "dimension",
        rank_over_d=rank / d,
        rank_over_bound=rank / bound if bound > 0 else math.nan,
        rank_saturated=rank >= n - 1,
        path=path,
    )
