"""diskmeans.KMeans: a scikit-learn estimator over train and assign."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ._api import TrainResult, assign, train

# The dtypes the library reads in place; others (int32, int64, ...) are
# converted to float64 by scikit-learn's validation, as sklearn.KMeans does.
_DTYPES = [np.float64, np.float32, np.float16, np.uint8, np.int8]

# scikit-learn's names of the init methods, and ours.
_INITS = {
    "k-means++": "greedy-kmeans++",  # scikit-learn's k-means++ is the greedy one
    "greedy-kmeans++": "greedy-kmeans++",
    "kmeans++": "kmeans++",
    "random": "random",
}


class KMeans(ClusterMixin, TransformerMixin, BaseEstimator):
    """K-means by diskmeans, compatible with scikit-learn.

    Parameters
    ----------
    n_clusters : int, default 8
        The number of clusters (k).
    init : {"k-means++", "kmeans++", "greedy-kmeans++", "random"} or array
        "k-means++" is scikit-learn's greedy k-means++ (2 + ln k candidates
        per step), the same as "greedy-kmeans++"; "kmeans++" is plain
        k-means++ (cheaper; the default of :func:`diskmeans.train`); an array
        of n_clusters x n_features gives the initial centroids.
    n_init : int or "auto", default 1
        Runs with different seeds; the best objective wins (n_redo). "auto"
        is 1.
    max_iter : int, default 25
        Lloyd iterations at most.
    tol : float, default 1e-4
        Stop when the objective improves by at most tol times its value
        (relative, as the library; scikit-learn's tol is relative to the
        data's variance).
    random_state : None, int or RandomState
        An int is the library's seed itself, so ``KMeans(random_state=s)``
        trains the same centroids as ``diskmeans.train(X, k, seed=s)`` with
        the same other settings; None draws a seed from numpy's global
        generator.
    metric, max_points_per_centroid, n_threads, block_rows, storage,
    memory_limit, tmp_dir, strategy, refine, balance, verbose
        As :func:`diskmeans.train`. With the default max_points_per_centroid
        (256), more than 256 * n_clusters rows are subsampled for training;
        ``labels_`` always labels every row.
    checkpoint : path or None, default None
        As :func:`diskmeans.train`: ``fit`` saves the training state to this
        file as it goes, and removes it once training has returned.
    resume : bool, default False
        ``fit`` goes on from ``checkpoint`` after a crash or a kill, with the
        result of a run never interrupted. The seed must be the same, so give
        an int ``random_state`` (None draws a new seed at every fit, which
        the checkpoint refuses by name).

    Attributes
    ----------
    cluster_centers_ : ndarray of float32, n_clusters x n_features
    labels_ : ndarray of int32
        The nearest centroid of every row of X (the same as ``predict(X)``).
    inertia_ : float
        Sum of the distances of every row of X to its nearest centroid
        (squared Euclidean for "l2").
    n_iter_ : int
    n_features_in_ : int
    train_result_ : TrainResult
        Everything training reported.
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: Any = "k-means++",
        n_init: Any = 1,
        max_iter: int = 25,
        tol: float = 1e-4,
        random_state: Any = None,
        metric: str = "l2",
        max_points_per_centroid: int = 256,
        n_threads: int = 0,
        block_rows: int = 0,
        storage: str = "auto",
        memory_limit: Any = None,
        tmp_dir: Any = None,
        strategy: str = "auto",
        refine: int = 2,
        balance: bool = False,
        verbose: bool = False,
        checkpoint: Any = None,
        resume: bool = False,
    ):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.metric = metric
        self.max_points_per_centroid = max_points_per_centroid
        self.n_threads = n_threads
        self.block_rows = block_rows
        self.storage = storage
        self.memory_limit = memory_limit
        self.tmp_dir = tmp_dir
        self.strategy = strategy
        self.refine = refine
        self.balance = balance
        self.verbose = verbose
        self.checkpoint = checkpoint
        self.resume = resume

    def _seed(self) -> int:
        rs = self.random_state
        if isinstance(rs, (int, np.integer)) and not isinstance(rs, bool) and rs >= 0:
            return int(rs)
        return int(check_random_state(rs).randint(np.iinfo(np.int32).max))

    def _init_arg(self) -> Any:
        if isinstance(self.init, str):
            if self.init not in _INITS:
                raise ValueError(
                    f"init: unknown method {self.init!r} ({', '.join(_INITS)}, or an array)"
                )
            return _INITS[self.init]
        return np.asarray(self.init)

    def fit(self, X: Any, y: Any = None) -> "KMeans":
        """Trains n_clusters centroids on X, then labels every row of X."""
        X = self._validate_data(X, dtype=_DTYPES, order=None, copy=False)
        n = X.shape[0]
        k = self.n_clusters
        if isinstance(k, (int, np.integer)) and not isinstance(k, bool) and n < k:
            raise ValueError(f"n_samples={n} should be >= n_clusters={k}.")
        n_init = 1 if self.n_init == "auto" else self.n_init
        result = train(
            X,
            k,
            max_iter=self.max_iter,
            tol=self.tol,
            n_redo=n_init,
            seed=self._seed(),
            init=self._init_arg(),
            metric=self.metric,
            max_points_per_centroid=self.max_points_per_centroid,
            n_threads=self.n_threads,
            block_rows=self.block_rows,
            storage=self.storage,
            memory_limit=self.memory_limit,
            tmp_dir=self.tmp_dir,
            strategy=self.strategy,
            refine=self.refine,
            balance=self.balance,
            verbose=self.verbose,
            checkpoint=self.checkpoint,
            resume=self.resume,
        )
        labels, dist = assign(X, result.centroids, metric=self.metric,
                              n_threads=self.n_threads, block_rows=self.block_rows)
        self.cluster_centers_ = result.centroids
        self.labels_ = labels
        self.inertia_ = float(np.sum(dist, dtype=np.float64))
        self.n_iter_ = int(result.n_iter)
        self.train_result_: TrainResult = result
        return self

    def _check(self, X: Any) -> Any:
        check_is_fitted(self)
        return self._validate_data(X, dtype=_DTYPES, order=None, copy=False, reset=False)

    def predict(self, X: Any) -> np.ndarray:
        """The index of the nearest centroid of every row (int32)."""
        X = self._check(X)
        labels, _ = assign(X, self.cluster_centers_, metric=self.metric,
                           n_threads=self.n_threads, block_rows=self.block_rows)
        return labels

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        """fit(X).labels_."""
        return self.fit(X).labels_

    def transform(self, X: Any) -> np.ndarray:
        """The distance of every row to every centroid, n x n_clusters:
        Euclidean for "l2" (as scikit-learn), 1 - cos for "cosine", -x.c for
        "ip". float32 rows give float32, anything else float64. Each row's
        distances depend only on that row (computed row by row in blocks)."""
        X = self._check(X)
        out_dtype = np.float32 if X.dtype == np.float32 else np.float64
        C = self.cluster_centers_.astype(out_dtype)
        if self.metric == "cosine":
            cn = C / np.maximum(np.linalg.norm(C, axis=1, keepdims=True), np.finfo(out_dtype).tiny)
        out = np.empty((X.shape[0], C.shape[0]), dtype=out_dtype)
        step = max(1, (1 << 22) // max(1, C.size))
        for i in range(0, X.shape[0], step):
            x = np.asarray(X[i:i + step], dtype=out_dtype)
            if self.metric == "l2":
                diff = x[:, None, :] - C[None, :, :]
                out[i:i + step] = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
            elif self.metric == "cosine":
                xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True),
                                    np.finfo(out_dtype).tiny)
                out[i:i + step] = 1 - np.einsum("ik,jk->ij", xn, cn)
            else:
                out[i:i + step] = -np.einsum("ik,jk->ij", x, C)
        return out

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        """fit(X).transform(X)."""
        return self.fit(X).transform(X)

    def score(self, X: Any, y: Any = None) -> float:
        """Minus the sum of the distances of the rows of X to their nearest
        centroid (minus inertia on X)."""
        X = self._check(X)
        _, dist = assign(X, self.cluster_centers_, metric=self.metric,
                         n_threads=self.n_threads, block_rows=self.block_rows)
        return -float(np.sum(dist, dtype=np.float64))

    def _more_tags(self) -> dict:
        return {"preserves_dtype": [np.float64, np.float32]}
