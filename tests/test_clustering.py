"""cytobook.clustering: the kernel map against exact kernel PCA, the choice of k on known clusters, figures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs, make_circles
from sklearn.metrics import adjusted_rand_score
from sklearn.metrics.pairwise import rbf_kernel

from cytobook import clustering as cl


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _features(n: int = 40, d: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


# ---------------------------------------------------------------------------
# median_gamma


def test_median_gamma_is_one_over_the_median_squared_distance():
    x = _features(9, 3)
    squared = [np.sum((x[i] - x[j]) ** 2) for i in range(len(x)) for j in range(i + 1, len(x))]
    assert cl.median_gamma(x) == pytest.approx(1 / np.median(squared))


@pytest.mark.parametrize("c", [1e-3, 3.7, 250.0])
def test_median_gamma_is_scale_equivariant(c):
    x = _features(300, 5)
    # sample < rows: the same seed draws the same rows at every scale.
    expected = cl.median_gamma(x, sample=100, seed=3) / c**2
    assert cl.median_gamma(c * x, sample=100, seed=3) == pytest.approx(expected, rel=1e-10)


def test_median_gamma_samples_rows_by_seed():
    x = _features(300, 5)
    assert cl.median_gamma(x, sample=50, seed=1) == cl.median_gamma(x, sample=50, seed=1)
    assert cl.median_gamma(x, sample=50, seed=1) != cl.median_gamma(x, sample=50, seed=2)


def test_median_gamma_refuses_duplicate_rows():
    with pytest.raises(ValueError, match="median squared distance .* is 0"):
        cl.median_gamma(np.ones((10, 3)))


# ---------------------------------------------------------------------------
# nystroem_kpca


def test_nystroem_kpca_with_every_row_as_landmark_is_exact_kernel_pca():
    # With n landmarks Nyström reproduces the kernel, so the ratios are the eigenvalues of the
    # centred Gram matrix over its trace, and the projections reproduce the centred kernel.
    x = _features(40, 6)
    projected, ratios = cl.nystroem_kpca(x, gamma=0.1, landmarks=40, components=40)
    centring = np.eye(40) - 1 / 40
    kc = centring @ rbf_kernel(x, gamma=0.1) @ centring
    eigenvalues = np.sort(np.linalg.eigvalsh(kc))[::-1]
    np.testing.assert_allclose(ratios, eigenvalues / np.trace(kc), atol=1e-10)
    np.testing.assert_allclose(projected @ projected.T, kc, atol=1e-10)


def test_nystroem_kpca_spectrum_is_non_increasing_and_sums_to_at_most_one():
    x = _features(150, 8)
    projected, ratios = cl.nystroem_kpca(x, landmarks=60, components=25)
    assert projected.shape == (150, 25)
    assert ratios.shape == (25,)
    assert np.all(ratios >= 0)
    assert np.all(np.diff(ratios) <= 1e-12)
    assert ratios.sum() <= 1 + 1e-12


def test_nystroem_kpca_caps_landmarks_and_components_at_the_rows():
    projected, ratios = cl.nystroem_kpca(_features(12, 4), landmarks=200, components=50)
    assert projected.shape == (12, 12)
    assert len(ratios) == 12


def test_nystroem_kpca_defaults_gamma_to_the_median_heuristic():
    x = _features(60, 5)
    default, _ = cl.nystroem_kpca(x, landmarks=30, components=5)
    explicit, _ = cl.nystroem_kpca(x, gamma=cl.median_gamma(x), landmarks=30, components=5)
    np.testing.assert_array_equal(default, explicit)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kernel_pca_separates_concentric_rings_that_kmeans_alone_cannot(seed):
    x, rings = make_circles(n_samples=300, factor=0.3, noise=0.05, random_state=seed)
    raw = KMeans(n_clusters=2, n_init=10, random_state=0).fit_predict(x)
    assert adjusted_rand_score(rings, raw) < 0.1  # K-means cuts the rings through the middle
    # gamma 2 to 10 separates the rings here; the median heuristic (about 1.2) does not, which is
    # why the report had to tune gamma by hand.
    projected, _ = cl.nystroem_kpca(x, gamma=5.0, seed=seed)
    kernel = KMeans(n_clusters=2, n_init=10, random_state=0).fit_predict(projected)
    assert adjusted_rand_score(rings, kernel) > 0.9


@pytest.mark.parametrize(
    ("features", "kwargs", "message"),
    [
        (np.zeros(10), {}, r"2-D .* shape \(10,\)"),
        (np.zeros((2, 3, 4)), {}, r"2-D .* shape \(2, 3, 4\)"),
        (_features(2, 3), {}, "at least 3 rows, got 2"),
        (np.where(np.eye(5, 3) > 0, np.nan, 0.0), {}, "3 non-finite values .* row 0, column 0"),
        (np.full((5, 3), np.inf), {}, "15 non-finite"),
        (_features(10, 3), {"gamma": 0.0}, "gamma must be a positive finite number, got 0.0"),
        (_features(10, 3), {"gamma": np.nan}, "gamma must be a positive finite number"),
        (_features(10, 3), {"landmarks": 0}, "landmarks must be at least 1"),
        (_features(10, 3), {"components": 0}, "components must be at least 1"),
    ],
)
def test_nystroem_kpca_names_what_is_wrong(features, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cl.nystroem_kpca(features, **kwargs)


# ---------------------------------------------------------------------------
# kmeans_scan, elbow_k, best_silhouette_k


@pytest.mark.parametrize("centres", [3, 4])
def test_scan_finds_the_number_of_well_separated_blobs(centres):
    x, _ = make_blobs(n_samples=300, centers=centres, cluster_std=0.6, random_state=0)
    scan = cl.kmeans_scan(x)
    assert list(scan.columns) == list(cl.SCAN_COLUMNS)
    assert list(scan.index) == list(scan["k"]) == list(range(2, 11))
    assert np.all(np.diff(scan["wss"]) < 0)
    assert cl.elbow_k(scan) == centres
    assert cl.best_silhouette_k(scan) == centres


def test_scan_wss_is_kmeans_inertia():
    x, _ = make_blobs(n_samples=60, centers=3, random_state=1)
    scan = cl.kmeans_scan(x, [3], seed=5)
    labels = KMeans(n_clusters=3, n_init=10, random_state=5).fit_predict(x)
    within = sum(((x[labels == c] - x[labels == c].mean(axis=0)) ** 2).sum() for c in range(3))
    assert scan.loc[3, "wss"] == pytest.approx(within)


def test_scan_skips_k_not_below_the_rows_and_has_no_silhouette_for_one_cluster():
    scan = cl.kmeans_scan(_features(5, 2), range(1, 11))
    assert list(scan["k"]) == [1, 2, 3, 4]
    assert np.isnan(scan.loc[1, "silhouette"])
    assert scan["silhouette"].iloc[1:].notna().all()
    with pytest.raises(ValueError, match=r"no k in \[5, 6\] is below the number of rows \(5\)"):
        cl.kmeans_scan(_features(5, 2), [5, 6])
    with pytest.raises(ValueError, match="at least 1, got 0"):
        cl.kmeans_scan(_features(5, 2), [0, 2])


def _table(k, wss, silhouette=None):
    return pd.DataFrame({"k": k, "wss": wss, "silhouette": silhouette if silhouette is not None else np.nan}, index=k)


def test_elbow_is_the_point_farthest_from_the_chord():
    # Normalised: (0, 1), (0.25, 0.1), (0.5, 0.05), (0.75, 0.02), (1, 0); the chord is x + y = 1,
    # farthest from it the point with the smallest x + y: k = 2.
    assert cl.elbow_k(_table([1, 2, 3, 4, 5], [100.0, 10.0, 5.0, 2.0, 0.0])) == 2
    # A late drop: the elbow is where the drop ends (k = 5, 0.24 below the chord), not where it
    # starts (k = 4, 0.46 above it).
    assert cl.elbow_k(_table([2, 3, 4, 5, 6], [100.0, 98.0, 96.0, 10.0, 9.0])) == 5
    # Row order does not matter, k does; the k axis is scaled, so uneven steps count.
    assert cl.elbow_k(_table([5, 4, 3, 2, 1], [0.0, 2.0, 5.0, 10.0, 100.0])) == 2
    assert cl.elbow_k(_table([1, 2, 10, 20], [100.0, 60.0, 5.0, 0.0])) == 10
    # No point below the chord: no elbow, the smallest k.
    assert cl.elbow_k(_table([2, 3, 4], [7.0, 7.0, 7.0])) == 2
    assert cl.elbow_k(_table([2, 3, 4, 5], [9.0, 6.0, 3.0, 0.0])) == 2
    assert cl.elbow_k(_table([2, 3, 4, 5], [9.0, 8.5, 7.0, 0.0])) == 2


def test_elbow_and_silhouette_name_what_is_wrong():
    with pytest.raises(ValueError, match="at least 3 values of k, the scan has 2"):
        cl.elbow_k(_table([2, 3], [5.0, 1.0]))
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['wss'\]"):
        cl.elbow_k(pd.DataFrame({"k": [1, 2, 3]}))
    with pytest.raises(ValueError, match="no silhouette"):
        cl.best_silhouette_k(_table([1, 2, 3], [3.0, 2.0, 1.0]))


def test_best_silhouette_skips_nan_and_takes_the_smallest_k_on_ties():
    assert cl.best_silhouette_k(_table([1, 2, 3, 4], [4.0, 3.0, 2.0, 1.0], [np.nan, 0.2, 0.7, 0.7])) == 3


# ---------------------------------------------------------------------------
# cluster_members


def test_cluster_members_numbers_clusters_by_size():
    sizes = [30, 100, 60, 10]
    x, blob = make_blobs(n_samples=sizes, centers=[[0, 0], [20, 0], [0, 20], [20, 20]], cluster_std=1.0, random_state=0)
    labels = cl.cluster_members(x, 4)
    assert labels.dtype.kind == "i"
    assert list(np.bincount(labels)) == sorted(sizes, reverse=True)
    # Each blob is one cluster, numbered by its rank in size.
    np.testing.assert_array_equal(labels, np.array([2, 0, 1, 3])[blob])


def test_cluster_members_checks_k():
    with pytest.raises(ValueError, match=r"between 1 and the number of rows \(5\), got 6"):
        cl.cluster_members(_features(5, 2), 6)
    assert list(cl.cluster_members(_features(5, 2), 1)) == [0] * 5


# ---------------------------------------------------------------------------
# Figures


def test_scan_figure_draws_one_line_per_scan_on_each_panel_and_marks_the_chosen_k():
    x, _ = make_blobs(n_samples=200, centers=3, cluster_std=0.6, random_state=0)
    projected, _ = cl.nystroem_kpca(x, landmarks=50, components=10)
    scans = {
        "VGG16 features": cl.kmeans_scan(x, range(2, 7)),
        "Nyström RBF kernel PCA": cl.kmeans_scan(projected, range(2, 7)),
    }
    fig = cl.scan_figure(scans, "Cyto atypique MDA5")
    assert len(fig.axes) == 2
    for ax in fig.axes:
        assert len(ax.get_lines()) == 2
        assert len(ax.collections) == 2  # one mark per scan
        assert [t.get_text().split(",")[0] for t in ax.get_legend().get_texts()] == list(scans)
    assert "elbow k=3" in fig.axes[0].get_legend().get_texts()[0].get_text()
    # Several scans share the WSS axis relative to their first k.
    assert fig.axes[0].get_lines()[0].get_ydata()[0] == pytest.approx(1.0)
    assert fig._suptitle.get_text() == "Cyto atypique MDA5"


def test_scan_figure_keeps_raw_wss_for_one_scan_and_checks_columns():
    scan = _table([1, 2, 3], [9.0, 2.0, 1.0], [np.nan, 0.5, 0.4])
    fig = cl.scan_figure({"features": scan}, "t")
    np.testing.assert_array_equal(fig.axes[0].get_lines()[0].get_ydata(), [9.0, 2.0, 1.0])
    with pytest.raises(ValueError, match=r"scan 'bad' lacks the column\(s\) \['silhouette'\]"):
        cl.scan_figure({"bad": scan.drop(columns="silhouette")}, "t")
    with pytest.raises(ValueError, match="no scan"):
        cl.scan_figure({}, "t")


def test_spectrum_figure_draws_one_log_line_per_name():
    ratios = {"gamma 1e-5": np.array([0.5, 0.3, 0.1, 0.0]), "gamma 1e-4": np.array([0.9, 0.05])}
    fig = cl.spectrum_figure(ratios, "KPCA spectrum")
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    assert [line.get_label() for line in ax.get_lines()] == list(ratios)
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), [1, 2, 3, 4])
    with pytest.raises(ValueError, match="'flat': expected a non-empty 1-D array"):
        cl.spectrum_figure({"flat": np.ones((2, 2))}, "t")


# ---------------------------------------------------------------------------
# components_holding and tune_gamma


def test_components_holding_counts_the_leading_share():
    ratios = np.array([0.5, 0.2, 0.1, 0.1, 0.05])
    assert cl.components_holding(ratios, 0.5 / 0.95) == 1
    assert cl.components_holding(ratios, 0.8 / 0.95) == 3  # of what the five hold, not of 1
    assert cl.components_holding(ratios, 1.0) == 5
    for bad, share in ((np.array([]), 0.9), (np.array([0.5, -0.1]), 0.9), (ratios, 0.0), (ratios, 1.5)):
        with pytest.raises(ValueError):
            cl.components_holding(bad, share)


def test_tune_gamma_prefers_the_width_that_separates_a_small_far_group():
    # A minority of 10 rows far from 90: a kernel as narrow as the typical pair of rows sees every row
    # alone; a wider one keeps the minority together, and the grid finds it.
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(size=(90, 20)), rng.normal(size=(10, 20)) + 6.0])
    tuning = cl.tune_gamma(x, range(2, 6), seed=0)
    assert list(tuning.columns) == ["factor", "gamma", "components", "best k", "best silhouette"]
    assert list(tuning["factor"]) == list(cl.GAMMA_FACTORS)
    assert np.allclose(tuning["gamma"], cl.median_gamma(x) * np.array(cl.GAMMA_FACTORS))
    best = tuning.loc[tuning["best silhouette"].idxmax()]
    assert best["best k"] == 2 and best["factor"] < 1.0
    projected, _ = cl.nystroem_kpca(x, gamma=best["gamma"], seed=0)
    members = cl.cluster_members(projected[:, : int(best["components"])], 2)
    assert adjusted_rand_score(members, [0] * 90 + [1] * 10) == 1.0
    with pytest.raises(ValueError, match="factor"):
        cl.tune_gamma(x, factors=[0.1, -1.0])
