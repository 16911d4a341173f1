"""Properties over random data (hypothesis)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import diskmeans


@st.composite
def data_and_k(draw):
    n = draw(st.integers(1, 60))
    d = draw(st.integers(1, 6))
    x = draw(hnp.arrays(np.float32, (n, d),
                        elements=st.floats(-1000, 1000, width=32, allow_nan=False)))
    k = draw(st.integers(1, n))
    return x, k


@settings(max_examples=60, deadline=None)
@given(data_and_k(), st.integers(0, 2**64 - 1),
       st.sampled_from(["kmeans++", "random", "greedy-kmeans++"]))
def test_labels_sizes_inertia_and_predict(xk, seed, init):
    x, k = xk
    km = diskmeans.KMeans(n_clusters=k, random_state=seed % 2**32, init=init,
                          max_points_per_centroid=0, max_iter=10).fit(x)
    r = km.train_result_
    assert km.labels_.dtype == np.int32
    assert ((km.labels_ >= 0) & (km.labels_ < k)).all()
    assert int(r.cluster_sizes.sum()) == len(x) == r.sample_rows
    # (The sizes are those of the last iteration's assignment, before its
    # update: labels_, by the final centroids, may differ from them.)
    assert np.array_equal(km.predict(x), km.labels_)
    c = km.cluster_centers_.astype(np.float64)
    d = ((x.astype(np.float64)[:, None, :] - c[None]) ** 2).sum(-1)
    scale = float((x.astype(np.float64) ** 2).sum() + (c ** 2).sum(1).max() * len(x)) + 1
    assert abs(km.inertia_ - d.min(1).sum()) <= 1e-5 * scale
    # The chosen centroid is the nearest one, up to float32 rounding.
    chosen = d[np.arange(len(x)), km.labels_]
    assert (chosen <= d.min(1) + 1e-5 * scale).all()
