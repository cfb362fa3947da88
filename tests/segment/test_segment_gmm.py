import numpy as np
import pytest
import torch
from sklearn.mixture import GaussianMixture as SkGMM

from diffseglung_core.segment.gmm import fit_gmm, suggest_k


def _blobs(seed=0, n=1500, d=4):
    rng = np.random.default_rng(seed)
    centres = [(-4.0, 1.0), (0.0, 0.5), (5.0, 2.0)]
    x = np.concatenate([rng.normal(m, s, (n, d)) for m, s in centres])
    # correlated columns so that "full" differs from "diag"
    x[:, 1] += 0.8 * x[:, 0]
    return (x + 50.0).astype(np.float32)


@pytest.mark.parametrize("cov", ["diag", "full"])
def test_log_likelihood_matches_sklearn(cov):
    x = _blobs()
    ours = fit_gmm(x, 3, covariance_type=cov, n_init=2, subsample=None, device="cpu", seed=1)
    ref = SkGMM(3, covariance_type=cov, n_init=2, random_state=0).fit(x)
    assert ours.converged
    assert abs(ours.score(x) - ref.score(x)) < 0.02 * abs(ref.score(x))
    # the same three centres, whatever the order
    got = np.sort(ours.means[:, 0])
    want = np.sort(ref.means_[:, 0])
    np.testing.assert_allclose(got, want, atol=0.2)


def test_starts_on_a_subset_reach_the_fit_of_starts_on_all_rows():
    x = _blobs(n=8000)
    on_all = fit_gmm(x, 3, n_init=3, subsample=None, restart_rows=None, device="cpu", seed=2)
    on_subset = fit_gmm(x, 3, n_init=3, subsample=None, restart_rows=500, device="cpu", seed=2)
    assert on_subset.converged
    assert abs(on_subset.score(x) - on_all.score(x)) < 1e-3 * abs(on_all.score(x))
    np.testing.assert_allclose(np.sort(on_subset.means[:, 0]), np.sort(on_all.means[:, 0]), atol=0.05)


def test_posteriors_are_probabilities_and_chunking_is_exact():
    x = _blobs(2)
    g = fit_gmm(x, 3, device="cpu", subsample=2000)
    p1 = g.predict_proba(x, chunk=1000)
    p2 = g.predict_proba(x, chunk=100_000)
    np.testing.assert_allclose(p1.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(p1, p2, atol=1e-5)
    assert g.means.shape == (3, 4) and g.covariances.shape == (3, 4)


def test_bic_suggests_the_true_number_of_components():
    best, bics = suggest_k(_blobs(3), ks=(1, 2, 3, 5), covariance_type="full")
    assert best == 3
    assert bics[3] < bics[1]


def test_bad_arguments():
    with pytest.raises(ValueError):
        fit_gmm(np.zeros((2, 3), np.float32), 5, device="cpu")
    with pytest.raises(ValueError):
        fit_gmm(_blobs(), 2, covariance_type="tied", device="cpu")


def test_one_em_step_equals_the_float64_formulas():
    # rows for blocks and batches of rows and a remainder
    from scipy.stats import norm

    from diffseglung_core.segment.gmm import _BLOCK_ROWS, _m_step, _Params, _weighted_log_prob

    rng = np.random.default_rng(4)
    x = rng.normal(0, 2, (2 * _BLOCK_ROWS + 1234, 5))
    resp = rng.dirichlet(np.ones(3), x.shape[0])
    weights, means, cov = _m_step(torch.from_numpy(x).float(), torch.from_numpy(resp).float(),
                                  False, 1e-6)
    nk = resp.sum(0)
    want_means = resp.T @ x / nk[:, None]
    want_cov = resp.T @ x**2 / nk[:, None] - want_means**2 + 1e-6
    np.testing.assert_allclose(weights.numpy(), nk / nk.sum(), rtol=1e-5)
    np.testing.assert_allclose(means.numpy(), want_means, atol=1e-5)
    np.testing.assert_allclose(cov.numpy(), want_cov, rtol=1e-4)

    prec = 1.0 / want_cov
    p = _Params(torch.log(torch.from_numpy(nk / nk.sum())), torch.from_numpy(want_means),
                torch.from_numpy(prec), torch.from_numpy(0.5 * np.log(prec).sum(1)), False)
    got = _weighted_log_prob(torch.from_numpy(x), p).numpy()
    want = np.log(nk / nk.sum()) + norm.logpdf(x[:, None, :], want_means,
                                                np.sqrt(want_cov)).sum(2)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-9)
