"""Gaussian mixture models in torch, on CPU or GPU.

:func:`fit_gmm` runs expectation-maximisation (EM) on a random subsample of
the rows (``subsample``) from ``n_init`` k-means++ starts: the starts compete on
a smaller subset (``restart_rows``) and the one with the best mean
log-likelihood goes on with all the rows. The fitted :class:`GaussianMixture` then
gives posteriors for any number of rows in chunks (bounded memory).
:func:`suggest_k` compares the Bayesian information criterion (BIC) of several
numbers of components.

Covariances are ``"diag"`` (one variance per feature and component) or
``"full"`` (a ``(D, D)`` matrix per component, stored as the Cholesky factor
of its precision, as scikit-learn does). The data are centred on their mean
before fitting (this changes no likelihood) so float32 arithmetic stays
accurate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np
import torch

from ..device import get_device
from ..progress import ProgressCallback, report

__all__ = ["GaussianMixture", "fit_gmm", "suggest_k"]

_LOG_2PI = math.log(2.0 * math.pi)


@dataclass
class GaussianMixture:
    """A fitted mixture of ``K`` Gaussians in ``D`` dimensions.

    Attributes
    ----------
    weights : (K,) float64 ndarray
        Mixing proportions (sum to 1).
    means : (K, D) float64 ndarray
    covariances : (K, D) or (K, D, D) float64 ndarray
        Diagonals for ``"diag"``, full matrices for ``"full"``.
    covariance_type : str
        ``"diag"`` or ``"full"``.
    converged : bool
        Whether EM met its tolerance.
    n_iter : int
        EM iterations of the kept start.
    lower_bound : float
        Mean log-likelihood per row of the EM subsample.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    covariance_type: str = "diag"
    converged: bool = False
    n_iter: int = 0
    lower_bound: float = float("nan")

    @property
    def n_components(self) -> int:
        return int(self.weights.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.means.shape[1])

    def n_parameters(self) -> int:
        """Free parameters (for BIC)."""
        k, d = self.means.shape
        cov = k * d if self.covariance_type == "diag" else k * d * (d + 1) // 2
        return int(cov + k * d + k - 1)

    # -- evaluation ---------------------------------------------------------
    def _params(self, device, dtype):
        return _Params.from_model(self, device, dtype)

    @torch.no_grad()
    def _apply(self, x, fn, *, chunk: int, device, dtype):
        device = get_device(device) if isinstance(device, str) else device
        p = self._params(device, dtype)
        x = np.asarray(x) if not torch.is_tensor(x) else x
        outs = []
        for start in range(0, x.shape[0], chunk):
            xb = torch.as_tensor(x[start:start + chunk]).to(device=device, dtype=dtype)
            outs.append(fn(_weighted_log_prob(xb, p)))
        return outs

    def predict_proba(self, x, *, chunk: int = 262_144, device="cpu",
                      dtype=torch.float32) -> np.ndarray:
        """(N, K) float32 posterior probability of each component for rows ``x`` (N, D)."""
        outs = self._apply(x, lambda w: _posteriors(w)[1].float().cpu().numpy(),
                           chunk=chunk, device=device, dtype=dtype)
        return np.concatenate(outs) if outs else np.zeros((0, self.n_components), np.float32)

    def predict(self, x, *, chunk: int = 262_144, device="cpu", dtype=torch.float32) -> np.ndarray:
        """(N,) int64 most probable component of each row (no posteriors formed)."""
        outs = self._apply(x, lambda w: w.argmax(1).cpu().numpy(), chunk=chunk, device=device,
                           dtype=dtype)
        return np.concatenate(outs) if outs else np.zeros(0, np.int64)

    def score_samples(self, x, *, chunk: int = 262_144, device="cpu",
                      dtype=torch.float64) -> np.ndarray:
        """(N,) float64 log-likelihood of each row."""
        outs = self._apply(x, lambda w: _posteriors(w)[0].double().cpu().numpy(),
                           chunk=chunk, device=device, dtype=dtype)
        return np.concatenate(outs)

    def score(self, x, **kwargs) -> float:
        """Mean log-likelihood per row (as scikit-learn's ``score``)."""
        return float(self.score_samples(x, **kwargs).mean())

    def bic(self, x, **kwargs) -> float:
        """Bayesian information criterion on rows ``x`` (lower is better)."""
        n = x.shape[0]
        return -2.0 * self.score(x, **kwargs) * n + self.n_parameters() * math.log(n)


@dataclass
class _Params:
    log_weights: torch.Tensor           # (K,)
    means: torch.Tensor                 # (K, D)
    prec: torch.Tensor                  # diag: (K, D) precisions; full: (K, D, D) precision cholesky
    log_det: torch.Tensor               # (K,) log det of the precision cholesky
    full: bool

    @classmethod
    def from_model(cls, m: GaussianMixture, device, dtype) -> _Params:
        means = torch.as_tensor(m.means, dtype=torch.float64)
        cov = torch.as_tensor(m.covariances, dtype=torch.float64)
        if m.covariance_type == "diag":
            prec = 1.0 / cov
            log_det = 0.5 * torch.log(prec).sum(1)
            full = False
        else:
            prec = _precision_cholesky(cov)
            log_det = torch.log(torch.diagonal(prec, dim1=1, dim2=2)).sum(1)
            full = True
        lw = torch.log(torch.as_tensor(m.weights, dtype=torch.float64))
        return cls(lw.to(device, dtype), means.to(device, dtype), prec.to(device, dtype),
                   log_det.to(device, dtype), full)


def _precision_cholesky(cov: torch.Tensor) -> torch.Tensor:
    """Upper-triangular ``P`` with ``P @ P.T = inv(cov)`` for each of (K, D, D)."""
    chol = torch.linalg.cholesky(cov)                       # cov = L L^T
    eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device).expand_as(cov)
    inv_l = torch.linalg.solve_triangular(chol, eye, upper=False)  # L^-1
    return inv_l.transpose(1, 2)                            # P = L^-T


#: exp() arguments are clamped here: exp(-80) is still a normal float32, and
#: subnormal results are very slow on some CPU builds; the error is < 1e-34.
_EXP_FLOOR = -80.0


def _posteriors(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log-sum-exp (N,), softmax (N, K))`` of the rows of ``w``, overwriting ``w``.

    One exponential per element, computed in place.
    """
    top = w.amax(1, keepdim=True)
    e = w.sub_(top).clamp_min_(_EXP_FLOOR).exp_()
    total = e.sum(1, keepdim=True)
    return (top + total.log())[:, 0], e.div_(total)


#: rows per block of the E step's products and the M step's sums
_BLOCK_ROWS = 8192


def _with_squares(x: torch.Tensor) -> torch.Tensor:
    """(N, 2D) ``[x, x**2]``: the rows' sufficient statistics for diagonal covariances."""
    return torch.cat([x, x.square()], dim=1)


def _weighted_log_prob(x: torch.Tensor, p: _Params, xx: Optional[torch.Tensor] = None) -> torch.Tensor:
    """(N, K) log(weight_k) + log N(x | mu_k, Sigma_k); ``xx`` is ``_with_squares(x)`` when known."""
    bound = p.log_weights - 0.5 * x.shape[1] * _LOG_2PI + p.log_det  # at the mean (distance 0)
    if p.full:
        maha = torch.stack([((x @ p.prec[k]) - p.means[k] @ p.prec[k]).square().sum(1)
                            for k in range(p.means.shape[0])], dim=1)
        return bound - 0.5 * maha
    # -1/2 sum_d (x - mu)^2 prec = [x, x^2] . [mu prec, -prec / 2] - 1/2 mu^2 . prec: one
    # matrix product with the (K, 2D) coefficients used transposed (BLAS's fast layout);
    # rounding can lift a row above the value at the mean, which caps it
    coef = torch.cat([p.means * p.prec, -0.5 * p.prec], dim=1)
    const = bound - 0.5 * (p.means.square() * p.prec).sum(1)
    if xx is not None:
        wlp = torch.addmm(const, xx, coef.T)
    else:  # [x, x^2] in blocks of rows: small temporaries, which the allocator reuses
        wlp = x.new_empty(x.shape[0], coef.shape[0])
        for start in range(0, x.shape[0], _BLOCK_ROWS):
            rows = slice(start, start + _BLOCK_ROWS)
            torch.addmm(const, _with_squares(x[rows]), coef.T, out=wlp[rows])
    return torch.minimum(wlp, bound, out=wlp)


def _column_sums(resp: torch.Tensor, xx: torch.Tensor) -> torch.Tensor:
    """(K, C) ``resp.T @ xx`` for resp (N, K) and xx (N, C).

    A product with a long inner dimension and a small output is summed over
    batches of rows: BLAS splits a batched product across threads, where it
    runs the plain one on a thread or two.
    """
    n = resp.shape[0]
    b = n // _BLOCK_ROWS
    if b < 2:
        return resp.T @ xx
    m = b * _BLOCK_ROWS
    out = torch.bmm(resp[:m].view(b, _BLOCK_ROWS, -1).transpose(1, 2),
                    xx[:m].view(b, _BLOCK_ROWS, -1)).sum(0)
    return out.addmm_(resp[m:].T, xx[m:]) if m < n else out


def _m_step(x: torch.Tensor, resp: torch.Tensor, full: bool, reg: float,
            xx: Optional[torch.Tensor] = None):
    """Weights (K,), means (K, D) and covariances from posteriors ``resp`` (N, K).

    ``xx`` is ``_with_squares(x)`` when known (diagonal covariances).
    """
    nk = resp.sum(0) + 10 * torch.finfo(resp.dtype).eps
    if full:
        means = (resp.T @ x) / nk[:, None]
        covs = []
        for k in range(means.shape[0]):
            diff = x - means[k]
            c = (resp[:, k, None] * diff).T @ diff / nk[k]
            c.diagonal().add_(reg)
            covs.append(c)
        cov = torch.stack(covs)
    else:
        sums = _column_sums(resp, _with_squares(x) if xx is None else xx) / nk[:, None]
        d = sums.shape[1] // 2
        means = sums[:, :d]
        cov = (sums[:, d:] - means.square()).clamp_min(0.0) + reg
    return nk / nk.sum(), means, cov


def _to_params(weights, means, cov, full: bool) -> _Params:
    if full:
        prec = _precision_cholesky(cov.double()).to(cov.dtype)
        log_det = torch.log(torch.diagonal(prec, dim1=1, dim2=2)).sum(1)
    else:
        prec = 1.0 / cov
        log_det = 0.5 * torch.log(prec).sum(1)
    return _Params(torch.log(weights), means, prec, log_det, full)


def _kmeans_pp(x: torch.Tensor, k: int, gen: torch.Generator, n_lloyd: int = 10) -> torch.Tensor:
    """k-means++ seeding followed by a few Lloyd iterations; returns (N,) hard labels.

    Squared distances are ``|x|^2 - 2 x.c + |c|^2`` and the new centres a
    one-hot matrix product: matrix products only, no (N, D) temporaries.
    """
    n = x.shape[0]
    sq = x.square().sum(1)

    def dist2(c):  # (N, len(c)) squared distances to the centres c
        return (sq[:, None] - 2.0 * (x @ c.T) + c.square().sum(1)).clamp_min(0.0)

    first = int(torch.randint(n, (1,), generator=gen))
    centres = [x[first]]
    d2 = dist2(x[first:first + 1])[:, 0]
    for _ in range(1, k):
        probs = (d2 / d2.sum().clamp_min(1e-30)).double().cpu()
        idx = int(torch.multinomial(probs, 1, generator=gen)) if float(probs.sum()) > 0 else \
            int(torch.randint(n, (1,), generator=gen))
        centres.append(x[idx])
        d2 = torch.minimum(d2, dist2(x[idx:idx + 1])[:, 0])
    c = torch.stack(centres)
    for _ in range(n_lloyd):
        onehot = torch.nn.functional.one_hot(dist2(c).argmin(1), k).to(x.dtype)
        counts = onehot.sum(0)
        new = _column_sums(onehot, x) / counts.clamp_min(1)[:, None]
        c = torch.where(counts[:, None] > 0, new, c)
    return dist2(c).argmin(1)


def _em(x: torch.Tensor, xx: Optional[torch.Tensor], params, full: bool, reg: float, max_iter: int,
        tol: float):
    """EM from ``params`` = (weights, means, cov); ``xx`` is ``_with_squares(x)`` (diagonal).

    Returns ``(lower bound, weights, means, cov, converged, iterations)``.
    """
    weights, means, cov = params
    prev, converged, it = -math.inf, False, 0
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is reported after the loop
        ll, resp = _posteriors(_weighted_log_prob(x, _to_params(weights, means, cov, full), xx))
        lb = float(ll.mean(dtype=torch.float64))
        weights, means, cov = _m_step(x, resp, full, reg, xx)
        if abs(lb - prev) < tol:
            converged = True
            break
        prev = lb
    wlp = _weighted_log_prob(x, _to_params(weights, means, cov, full), xx)
    lb = float(_posteriors(wlp)[0].mean(dtype=torch.float64))
    return lb, weights, means, cov, converged, it


@torch.no_grad()
def fit_gmm(
    x: Union[np.ndarray, torch.Tensor],
    k: int,
    *,
    covariance_type: str = "diag",
    n_init: int = 3,
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    subsample: Optional[int] = 200_000,
    restart_rows: Optional[int] = 20_000,
    seed: int = 0,
    device: Union[str, torch.device] = "auto",
    dtype: Optional[torch.dtype] = None,
    progress: Optional[ProgressCallback] = None,
) -> GaussianMixture:
    """Fit a Gaussian mixture to the rows of ``x`` with EM.

    Parameters
    ----------
    x : (N, D) float ndarray or torch.Tensor
    k : int
        Number of components.
    covariance_type : str
        ``"diag"`` or ``"full"``.
    n_init : int
        k-means++ starts; the one with the best mean log-likelihood is kept.
    max_iter, tol : int, float
        EM stops after ``max_iter`` iterations or when the mean
        log-likelihood per row changes by less than ``tol``.
    reg_covar : float
        Added to the covariance diagonals (in squared feature units).
    subsample : int, optional
        EM runs on at most this many random rows (None: all rows).
    restart_rows : int, optional
        With several starts, each runs EM on a random subset of at most this
        many of those rows, and the best one goes on with all of them (None:
        every start on all rows).
    seed : int
        Random seed of the subsample and the starts.
    device : str or torch.device
        ``"auto"``: CUDA, MPS, then CPU.
    dtype : torch.dtype, optional
        float32 (default for ``"diag"``) or float64 (default for ``"full"``).
    progress : callable, optional
        ``progress(done, total, "gmm")`` after each start.

    Returns
    -------
    GaussianMixture
        Parameters in the units of ``x`` (float64 arrays).

    References
    ----------
    .. [1] Khiati, Brillet, Fetita. DiffSegLung. arXiv:2605.11758 (GMM
       over-clustering of voxel features).
    """
    if covariance_type not in ("diag", "full"):
        raise ValueError(f"covariance_type must be 'diag' or 'full', got {covariance_type!r}")
    dev = get_device(device) if isinstance(device, str) else device
    if dtype is None:
        dtype = torch.float32 if covariance_type == "diag" else torch.float64
    if dev.type == "mps" and dtype == torch.float64:
        dtype = torch.float32
    n = int(x.shape[0])
    if n < k:
        raise ValueError(f"cannot fit {k} components to {n} rows")
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, subsample, replace=False)) if subsample and n > subsample else None
    sub = x[rows] if rows is not None else x
    xt = torch.as_tensor(np.asarray(sub) if not torch.is_tensor(sub) else sub).to(dev, torch.float64)
    shift = xt.mean(0)
    xt = (xt - shift).to(dtype)
    full = covariance_type == "full"
    gen = torch.Generator().manual_seed(int(seed))

    # the starts compete on a subset of the rows; the best goes on with all of them
    starts = xt
    if n_init > 1 and restart_rows and xt.shape[0] > restart_rows:
        starts = xt[torch.from_numpy(np.sort(rng.choice(xt.shape[0], restart_rows, replace=False))).to(dev)]
    starts_xx = None if full else _with_squares(starts)  # the same at every iteration
    best = None
    for init in range(n_init):
        lab = _kmeans_pp(starts, k, gen).to(dev)
        resp = torch.nn.functional.one_hot(lab, k).to(dtype)
        fit = _em(starts, starts_xx, _m_step(starts, resp, full, reg_covar, starts_xx), full,
                  reg_covar, max_iter, tol)
        if best is None or fit[0] > best[0]:
            best = fit
        report(progress, init + 1, n_init, "gmm")
    if starts is not xt:
        del starts_xx
        best = _em(xt, None if full else _with_squares(xt), best[1:4], full, reg_covar, max_iter, tol)

    lb, weights, means, cov, converged, it = best
    means = means.double() + shift
    return GaussianMixture(
        weights=weights.double().cpu().numpy(), means=means.cpu().numpy(),
        covariances=cov.double().cpu().numpy(), covariance_type=covariance_type,
        converged=converged, n_iter=it, lower_bound=lb)


def suggest_k(x, ks: Sequence[int] = (3, 4, 5, 6, 7, 8), *, subsample: int = 50_000,
              seed: int = 0, **kwargs) -> tuple[int, dict[int, float]]:
    """The number of components with the lowest BIC, and the BIC of each tried ``k``.

    BIC is computed on the same random subsample of at most ``subsample`` rows
    the models are fitted on; ``kwargs`` go to :func:`fit_gmm`.
    """
    n = x.shape[0]
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, subsample, replace=False)) if n > subsample else slice(None)
    sub = np.asarray(x[rows])
    kwargs.setdefault("device", "cpu")
    bics = {int(k): fit_gmm(sub, int(k), subsample=None, seed=seed, **kwargs)
            .bic(sub, device=kwargs["device"]) for k in ks}
    return min(bics, key=bics.get), bics
