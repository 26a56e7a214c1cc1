"""Unsupervised clustering of the cells of one class, as report 5 (Ribeiro & Medeiros, section 3) does it.

The report takes the VGG16 features of the cells of a single class (the
flattened input of the fully connected layers), maps them through an RBF
kernel approximated by Nyström's method, reduces them by kernel PCA and
clusters them with K-means++, choosing the number of clusters ``k`` from the
elbow of the within-cluster sum of squares (WSS) and from the silhouette,
with and without the kernel map (its Figs. 27-29):

- :func:`median_gamma` gives a scale-free default for the RBF ``gamma``;
- :func:`nystroem_kpca` projects features onto the kernel principal
  components and returns the spectrum of Fig. 27;
- :func:`tune_gamma` tries ``gamma`` on a grid around the median heuristic (the
  report tuned it by hand), keeping the components that hold most of the
  kernel map's variance (:func:`components_holding`);
- :func:`kmeans_scan` fits K-means++ for a range of ``k``;
  :func:`elbow_k` and :func:`best_silhouette_k` read the chosen ``k`` off it;
- :func:`cluster_members` labels the rows, largest cluster first;
- :func:`scan_figure` and :func:`spectrum_figure` draw Figs. 27-29.

Nothing here imports a deep-learning backend: the features come in as a
plain ``(n_cells, n_features)`` array.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy.spatial.distance import pdist
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.kernel_approximation import Nystroem
from sklearn.metrics import silhouette_score

#: Columns of :func:`kmeans_scan`'s table.
SCAN_COLUMNS = ("k", "wss", "silhouette")
#: Multiples of :func:`median_gamma` that :func:`tune_gamma` tries: from a kernel 10x wider to the heuristic itself.
GAMMA_FACTORS = (0.01, 0.03, 0.1, 0.3, 1.0)


# ---------------------------------------------------------------------------
# Kernel map


def median_gamma(features: np.ndarray, sample: int = 500, seed: int = 0) -> float:
    """RBF ``gamma`` as one over the median squared distance between rows (the "median heuristic").

    The report tuned ``gamma`` by hand, to about ``1e-5`` for the VGG16
    features of images with grey levels in [0, 1]. That value is tied to the
    scale of those features; this default is not: scaling the features by
    ``c`` divides it by ``c**2``, so ``gamma * ||x - y||**2`` is about 1 for a
    typical pair of cells whatever their units.

    Parameters
    ----------
    features
        ``(n, d)`` array, one row per cell.
    sample
        At most this many rows, drawn without replacement, enter the median:
        the pairwise distances cost ``O(sample**2 d)``.
    seed
        Seed of the row sample.

    Returns
    -------
    float
        ``1 / median ||x_i - x_j||**2`` over the pairs ``i < j`` of sampled rows.
    """
    x = _check_features(features, min_rows=2)
    if sample < 2:
        raise ValueError(f"sample must be at least 2 rows to form a pair, got {sample}")
    if len(x) > sample:
        x = x[np.random.default_rng(seed).choice(len(x), size=sample, replace=False)]
    median = float(np.median(pdist(x, metric="sqeuclidean")))
    if median <= 0:
        # Over half the pairs coincide: no distance sets the kernel's scale.
        raise ValueError(
            "the median squared distance between sampled rows is 0 (mostly duplicate rows): pass gamma explicitly"
        )
    return 1.0 / median


def nystroem_kpca(
    features: np.ndarray,
    *,
    gamma: float | None = None,
    landmarks: int = 200,
    components: int = 50,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Kernel PCA of the rows under a Nyström-approximated RBF kernel (report 5, sections 3.3-3.4).

    Nyström's method draws ``landmarks`` rows and maps every row to
    ``z(x) = D^{-1/2} V^T (k(x, l_1), ..., k(x, l_m))`` so that
    ``z(x) . z(y)`` approximates ``k(x, y) = exp(-gamma ||x - y||**2)``;
    centring ``z`` centres the kernel (the report's ``K^c``) and the principal
    components of the centred ``z`` are the kernel principal components, at a
    cost linear in the number of rows.

    Parameters
    ----------
    features
        ``(n, d)`` array, one row per cell; ``n >= 3``.
    gamma
        RBF width; ``None`` takes :func:`median_gamma` of ``features``. The
        report used about ``1e-5`` for VGG16 features of images in [0, 1].
    landmarks
        Rows the kernel is sampled on (fewer when ``n`` is smaller).
    components
        Kernel principal components kept (fewer when ``n`` or ``landmarks`` is smaller).
    seed
        Seed of the landmark draw.

    Returns
    -------
    projected : numpy.ndarray
        ``(n, c)`` coordinates of the rows on the first ``c`` kernel principal components.
    explained_variance_ratio : numpy.ndarray
        ``(c,)`` share of the centred kernel's total variance that each
        component holds, non-increasing, summing to at most 1: the normalised
        kernel PCA eigenvalues of the report's Fig. 27.
    """
    x = _check_features(features, min_rows=3)
    if gamma is None:
        gamma = median_gamma(x, seed=seed)
    elif not (np.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma must be a positive finite number, got {gamma}")
    if landmarks < 1:
        raise ValueError(f"landmarks must be at least 1, got {landmarks}")
    if components < 1:
        raise ValueError(f"components must be at least 1, got {components}")
    n = len(x)
    mapped = Nystroem(kernel="rbf", gamma=gamma, n_components=min(landmarks, n), random_state=seed).fit_transform(x)
    mapped -= mapped.mean(axis=0)  # centring in feature space: K^c = (I - 1/n) K (I - 1/n)
    # PCA cannot ask for more components than rows or mapped dimensions; on centred data the
    # ratios are eigenvalues of the centred approximate kernel over its trace.
    pca = PCA(n_components=min(components, n, mapped.shape[1]), svd_solver="full")
    projected = pca.fit_transform(mapped)
    return projected, pca.explained_variance_ratio_.copy()


def components_holding(ratios: np.ndarray, share: float) -> int:
    """The fewest leading components whose variance ratios sum to ``share`` of what all of ``ratios`` hold."""
    ratios = np.asarray(ratios, dtype=np.float64)
    if ratios.ndim != 1 or not len(ratios) or np.any(ratios < 0) or ratios.sum() <= 0:
        raise ValueError(f"ratios must be a non-empty 1-d array of non-negative values with a positive sum, got {ratios!r}")
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    cumulative = np.cumsum(ratios) / ratios.sum()
    return int(min(np.searchsorted(cumulative, share - 1e-12) + 1, len(ratios)))


def tune_gamma(
    features: np.ndarray,
    ks: Iterable[int] = range(2, 11),
    *,
    factors: Iterable[float] = GAMMA_FACTORS,
    share: float = 0.9,
    seed: int = 0,
    **kpca: int,
) -> pd.DataFrame:
    """The RBF ``gamma`` tried on a grid: how well K-means++ separates each kernel map (the best silhouette over ``ks``).

    The report set ``gamma`` by hand; this makes the search explicit. Each
    ``gamma`` is a factor of :func:`median_gamma` times that heuristic; its
    kernel map (:func:`nystroem_kpca`, options ``kpca``) keeps the leading
    components that hold ``share`` of the map's variance (the report: no
    information lost beyond 60 of its 150 components), and is scanned by
    :func:`kmeans_scan`. Choosing ``gamma`` by silhouette favours the kernel
    map in any comparison of silhouettes with the unmapped features.

    Returns
    -------
    pandas.DataFrame
        One row per factor, in the given order: ``factor``, ``gamma``,
        ``components`` (kept), ``best k`` and ``best silhouette``.
    """
    base = median_gamma(features, seed=seed)
    rows = []
    for factor in factors:
        if not (np.isfinite(factor) and factor > 0):
            raise ValueError(f"every factor must be a positive finite number, got {factor}")
        projected, ratios = nystroem_kpca(features, gamma=base * factor, seed=seed, **kpca)
        kept = components_holding(ratios, share)
        scan = kmeans_scan(projected[:, :kept], ks, seed=seed)
        rows.append({"factor": float(factor), "gamma": base * factor, "components": kept,
                     "best k": best_silhouette_k(scan), "best silhouette": float(scan["silhouette"].max())})
    if not rows:
        raise ValueError("factors is empty: give at least one multiple of the median heuristic")
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------
# K-means++ and the choice of k


def kmeans_scan(
    data: np.ndarray,
    ks: Iterable[int] = range(2, 11),
    *,
    seed: int = 0,
    n_init: int = 10,
) -> pd.DataFrame:
    """K-means++ for each ``k`` in ``ks``: the WSS and the silhouette (report 5, section 3.5).

    Parameters
    ----------
    data
        ``(n, d)`` array: features, or :func:`nystroem_kpca`'s projection.
    ks
        Numbers of clusters to try, each at least 1; those ``>= n`` are
        skipped (the silhouette needs a cluster with two rows). ``k = 1``
        has a WSS (the total sum of squares, a useful first point for the
        elbow) but no silhouette (NaN).
    seed
        Seed of K-means++'s initialisation.
    n_init
        Initialisations per ``k``; the fit with the lowest WSS is kept.

    Returns
    -------
    pandas.DataFrame
        Columns ``k``, ``wss`` (K-means' inertia: the sum of squared
        Euclidean distances of the rows to their centre) and ``silhouette``
        (mean silhouette, Euclidean, in [-1, 1]; NaN where fewer than two
        clusters are non-empty), indexed by ``k`` in increasing order.
    """
    x = _check_features(data, min_rows=2, name="data")
    ks = sorted({int(k) for k in ks})
    if ks and ks[0] < 1:
        raise ValueError(f"every k must be at least 1, got {ks[0]}")
    kept = [k for k in ks if k < len(x)]
    if not kept:
        raise ValueError(f"no k in {ks} is below the number of rows ({len(x)})")
    rows = []
    for k in kept:
        model = KMeans(n_clusters=k, init="k-means++", n_init=n_init, random_state=seed).fit(x)
        # Duplicate rows can leave K-means fewer distinct labels than k; the silhouette needs two.
        silhouette = silhouette_score(x, model.labels_) if len(np.unique(model.labels_)) >= 2 else np.nan
        rows.append((k, float(model.inertia_), float(silhouette)))
    return pd.DataFrame(rows, columns=list(SCAN_COLUMNS)).set_index("k", drop=False).rename_axis(None)


def elbow_k(scan: pd.DataFrame) -> int:
    """The ``k`` at the elbow of the WSS curve, by the "knee" rule.

    Both axes are scaled to [0, 1] (``k`` from its smallest to its largest
    value in the scan, WSS likewise) and the elbow is the point farthest
    below the chord joining the first and last points: where the curve stops
    falling steeply and starts to flatten. Only points below the chord
    count: one above it, on a WSS that holds level and then drops, is where
    the drop starts, not where it ends. The rule never picks the last ``k``
    of the scan, nor the first unless no point lies below the chord (a flat
    or straight WSS: no elbow, the smallest ``k``), so scan from ``k = 1``
    when two clusters are plausible.

    Parameters
    ----------
    scan
        :func:`kmeans_scan`'s table (columns ``k`` and ``wss``), three rows at least.
    """
    table = _check_scan(scan, "wss")
    if len(table) < 3:
        raise ValueError(f"the elbow needs at least 3 values of k, the scan has {len(table)}")
    k = table["k"].to_numpy(dtype=float)
    wss = table["wss"].to_numpy(dtype=float)
    if np.ptp(wss) == 0:
        return int(k[0])
    x = (k - k[0]) / (k[-1] - k[0])
    y = (wss - wss.min()) / np.ptp(wss)
    # Height of the chord above each point: proportional to the distance to it (the factor, the
    # chord's slope, is common to all points), positive below it; the ends lie on it, at 0.
    below = y[0] + (y[-1] - y[0]) * x - y
    if below.max() <= 1e-9:  # rounding lifts points of a straight WSS a hair off its chord
        return int(k[0])
    return int(k[int(np.argmax(below))])


def best_silhouette_k(scan: pd.DataFrame) -> int:
    """The ``k`` with the highest mean silhouette in :func:`kmeans_scan`'s table (the smallest such ``k`` on ties)."""
    table = _check_scan(scan, "silhouette")
    silhouette = table["silhouette"].to_numpy(dtype=float)
    if np.isnan(silhouette).all():
        raise ValueError("the scan has no silhouette (every k gave fewer than two clusters)")
    return int(table["k"].iloc[int(np.nanargmax(silhouette))])


def cluster_members(data: np.ndarray, k: int, *, seed: int = 0, n_init: int = 10) -> np.ndarray:
    """Cluster labels ``0 .. k-1`` of the rows by K-means++, cluster 0 the largest, 1 the next...

    Numbering by size (ties by K-means' own order) keeps galleries of the
    clusters in a meaningful order: the bulk of the class first, its
    atypical minority (the report's 4 % of "Cyto atypique MDA5") last.

    Parameters
    ----------
    data
        ``(n, d)`` array.
    k
        Number of clusters, ``1 <= k <= n``.
    seed, n_init
        As for :func:`kmeans_scan`.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` integer labels.
    """
    x = _check_features(data, min_rows=1, name="data")
    if not 1 <= k <= len(x):
        raise ValueError(f"k must be between 1 and the number of rows ({len(x)}), got {k}")
    labels = KMeans(n_clusters=k, init="k-means++", n_init=n_init, random_state=seed).fit_predict(x)
    sizes = np.bincount(labels, minlength=k)
    order = np.argsort(-sizes, kind="stable")  # old labels, largest cluster first
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    return rank[labels]


# ---------------------------------------------------------------------------
# Figures


def scan_figure(scans: Mapping[str, pd.DataFrame], title: str, relative: bool | None = None) -> plt.Figure:
    """WSS and silhouette against ``k`` (report 5, Figs. 28-29), one line per scan.

    Each scan's elbow (:func:`elbow_k`, a hollow square on the WSS panel) and
    best-silhouette ``k`` (:func:`best_silhouette_k`, a star on the
    silhouette panel) are marked and given in the legend.

    Parameters
    ----------
    scans
        Name (``"VGG16 features"``, ``"Nyström RBF kernel PCA"``...) to
        :func:`kmeans_scan` table.
    title
        Figure title.
    relative
        Divide each WSS curve by its first value, so that scans of data on
        different scales share an axis; ``None`` does so when there are
        several scans.

    Returns
    -------
    matplotlib.figure.Figure
        Two panels: WSS, then silhouette.
    """
    if not scans:
        raise ValueError("no scan to draw")
    relative = len(scans) > 1 if relative is None else relative
    fig, (ax_wss, ax_sil) = plt.subplots(1, 2, figsize=(10.0, 3.6))
    for index, (name, scan) in enumerate(scans.items()):
        table = _check_scan(scan, "wss", name=f"scan {name!r}")
        _check_scan(table, "silhouette", name=f"scan {name!r}")
        colour = f"C{index}"
        k = table["k"].to_numpy()
        wss = table["wss"].to_numpy(dtype=float)
        if relative:
            wss = wss / wss[0]
        elbow, best = _marks(table)
        chosen = (("elbow", elbow), ("silhouette", best))
        label = name + "".join(f", {what} k={value}" for what, value in chosen if value is not None)
        ax_wss.plot(k, wss, marker="o", markersize=3, color=colour, label=label)
        ax_sil.plot(k, table["silhouette"], marker="o", markersize=3, color=colour, label=label)
        # Scatter, not plot: the marks are not curves, and each axis keeps one line per scan.
        if elbow is not None:
            ax_wss.scatter([elbow], wss[k == elbow], s=90, marker="s", facecolors="none", edgecolors=colour, zorder=3)
        if best is not None:
            best_value = table.loc[table["k"] == best, "silhouette"]
            ax_sil.scatter([best], best_value, s=140, marker="*", color=colour, zorder=3)
    ax_wss.set_title("elbow: within-cluster sum of squares")
    ax_wss.set_ylabel("WSS / WSS at the first k" if relative else "WSS")
    ax_sil.set_title("silhouette")
    ax_sil.set_ylabel("mean silhouette")
    for ax in (ax_wss, ax_sil):
        ax.set_xlabel("number of clusters k")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def spectrum_figure(ratios: Mapping[str, np.ndarray], title: str) -> plt.Figure:
    """Explained-variance ratio per kernel principal component, log scale (report 5, Fig. 27).

    ``ratios`` maps a name (a representation, a ``gamma``...) to
    :func:`nystroem_kpca`'s second output; components are numbered from 1.
    """
    if not ratios:
        raise ValueError("no spectrum to draw")
    fig, ax = plt.subplots(figsize=(5.6, 4.0))
    for name, ratio in ratios.items():
        values = np.asarray(ratio, dtype=float)
        if values.ndim != 1 or not len(values):
            raise ValueError(f"{name!r}: expected a non-empty 1-D array of ratios, got shape {values.shape}")
        # Ratios of exactly 0 (rank-deficient kernels) have no place on a log axis: leave gaps.
        ax.plot(np.arange(1, len(values) + 1), np.where(values > 0, values, np.nan), label=name)
    ax.set_yscale("log")
    ax.set_xlabel("kernel principal component")
    ax.set_ylabel("explained variance ratio")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------
# Checks


def _check_features(features: np.ndarray, min_rows: int, name: str = "features") -> np.ndarray:
    x = np.asarray(features, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (rows, features) array, got shape {x.shape}")
    if len(x) < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows, got {len(x)}")
    if not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))
        row, column = bad[0]
        raise ValueError(
            f"{name} holds {len(bad)} non-finite values (NaN or infinite), the first at row {row}, column {column}"
        )
    return x


def _check_scan(scan: pd.DataFrame, column: str, name: str = "scan") -> pd.DataFrame:
    missing = [c for c in ("k", column) if c not in scan.columns]
    if missing:
        raise ValueError(f"{name} lacks the column(s) {missing}; it has {list(scan.columns)}")
    if scan.empty:
        raise ValueError(f"{name} is empty")
    return scan.sort_values("k")


def _marks(table: pd.DataFrame) -> tuple[int | None, int | None]:
    """Elbow and best-silhouette k of a scan, ``None`` where the scan is too short or has no silhouette."""
    elbow = elbow_k(table) if len(table) >= 3 else None
    best = best_silhouette_k(table) if table["silhouette"].notna().any() else None
    return elbow, best
