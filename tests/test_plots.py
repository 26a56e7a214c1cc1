"""Figures: the t-SNE map of embeddings keeps one point per row, one colour per class."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from cytobook.plots import embedding_map  # noqa: E402


def test_embedding_map_of_a_small_set():
    rng = np.random.default_rng(0)
    embeddings = np.concatenate([rng.normal(0, 1, (6, 8)), rng.normal(5, 1, (6, 8))])
    fig = embedding_map(embeddings, ["a"] * 6 + ["b"] * 6, "two classes")
    (ax,) = fig.axes
    assert ax.get_title() == "two classes" and sum(len(c.get_offsets()) for c in ax.collections) == 12
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["a", "b"]
