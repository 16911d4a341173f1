"""diskmeans.KMeans is a scikit-learn estimator."""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._testing import SkipTest
from sklearn.utils.estimator_checks import check_estimator

import diskmeans


def test_check_estimator_passes_every_check_without_a_skip():
    checks = list(check_estimator(diskmeans.KMeans(), generate_only=True))
    assert len(checks) > 30
    with warnings.catch_warnings():
        # A check that cannot run warns (SkipTestWarning): make that a failure.
        warnings.simplefilter("error")
        for estimator, check in checks:
            try:
                check(estimator)
            except SkipTest as e:  # pragma: no cover - a failure, with its reason
                pytest.fail(f"{check} was skipped: {e}")


def test_fit_gives_the_centroids_of_train_with_the_same_seed(blobs):
    km = diskmeans.KMeans(n_clusters=12, random_state=5, init="kmeans++").fit(blobs)
    r = diskmeans.train(blobs, 12, seed=5)
    assert km.cluster_centers_.tobytes() == r.centroids.tobytes()
    assert km.n_iter_ == r.n_iter
    assert km.train_result_.objective == r.objective


def test_k_means_plus_plus_is_the_greedy_one_as_in_scikit_learn(blobs):
    km = diskmeans.KMeans(n_clusters=12, random_state=5).fit(blobs)
    r = diskmeans.train(blobs, 12, seed=5, init="greedy-kmeans++")
    assert km.cluster_centers_.tobytes() == r.centroids.tobytes()


def test_labels_inertia_and_score_cover_every_row(blobs):
    km = diskmeans.KMeans(n_clusters=10, random_state=1, max_points_per_centroid=20).fit(blobs)
    assert km.train_result_.sample_rows < len(blobs)  # subsampled
    assert km.labels_.shape == (len(blobs),)
    assert np.array_equal(km.predict(blobs), km.labels_)
    d = ((blobs[:, None, :].astype(np.float64) - km.cluster_centers_[None]) ** 2).sum(-1)
    assert np.array_equal(km.labels_, d.argmin(1))
    assert km.inertia_ == pytest.approx(d.min(1).sum(), rel=1e-5)
    assert km.score(blobs) == pytest.approx(-km.inertia_)
    assert np.allclose(km.transform(blobs) ** 2, d, rtol=1e-5, atol=1e-3)


def test_pipeline_grid_search_clone_and_pickle(blobs):
    pipe = Pipeline([("scale", StandardScaler()),
                     ("km", diskmeans.KMeans(n_clusters=4, random_state=0))])
    pipe.fit(blobs)
    labels = pipe.predict(blobs)
    assert labels.shape == (len(blobs),)
    search = GridSearchCV(diskmeans.KMeans(random_state=0), {"n_clusters": [2, 10]}, cv=3)
    search.fit(blobs)
    assert search.best_params_ == {"n_clusters": 10}  # lower inertia on held-out rows
    km = diskmeans.KMeans(n_clusters=6, random_state=3, metric="cosine")
    copy = clone(km)
    assert copy.get_params() == km.get_params()
    km.fit(blobs)
    again = pickle.loads(pickle.dumps(km))
    assert np.array_equal(again.predict(blobs), km.labels_)
    assert again.cluster_centers_.tobytes() == km.cluster_centers_.tobytes()


def test_one_sample_says_n_samples():
    with pytest.raises(ValueError, match="n_samples=1"):
        diskmeans.KMeans(n_clusters=3).fit(np.ones((1, 4)))


def test_a_memmap_is_fitted_in_place(tmp_path, blobs):
    path = tmp_path / "x.npy"
    np.save(path, blobs)
    mm = np.load(path, mmap_mode="r")
    a = diskmeans.KMeans(n_clusters=5, random_state=2).fit(mm)
    b = diskmeans.KMeans(n_clusters=5, random_state=2).fit(blobs)
    assert a.cluster_centers_.tobytes() == b.cluster_centers_.tobytes()
