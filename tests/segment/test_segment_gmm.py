import numpy as np
import pytest
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
