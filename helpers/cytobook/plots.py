"""Figures shared by the notebooks: image galleries, step-by-step panels, count charts, embedding maps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns


def image_grid(
    images: Sequence[np.ndarray],
    titles: Sequence[str] | None = None,
    ncols: int = 6,
    size: float = 1.8,
    suptitle: str | None = None,
    row_labels: Sequence[str] | None = None,
) -> plt.Figure:
    """Show RGB ``uint8`` or grayscale images of any sizes in a grid of ``ncols`` panels of ``size`` inches.

    ``titles`` has one caption per image, ``row_labels`` one label per row
    (on its left); ``suptitle`` is the figure's title.
    """
    nrows = max(1, int(np.ceil(len(images) / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size), squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        if index >= len(images):
            continue
        image = images[index]
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255 if image.dtype == np.uint8 else None)
        if titles is not None:
            ax.set_title(titles[index], fontsize=8)
    for row, label in enumerate(row_labels or []):
        axes[row, 0].set_ylabel(label, fontsize=9, rotation=0, ha="right", va="center")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def steps_figure(steps: Mapping[str, np.ndarray], title: str | None = None, size: float = 2.4) -> plt.Figure:
    """One row of panels showing an image through successive processing steps."""
    return image_grid(list(steps.values()), list(steps), ncols=len(steps), size=size, suptitle=title)


def class_counts_chart(table: pd.DataFrame, by: str, hue: str = "label_name", title: str | None = None) -> plt.Figure:
    """Bar chart of image counts per ``by`` value, coloured by class."""
    counts = table.groupby([by, hue], observed=True).size().rename("images").reset_index()
    fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * counts[by].nunique() + 2), 3.2))
    sns.barplot(counts, x=by, y="images", hue=hue, ax=ax, dodge=False if by == "subject" else True)
    ax.set_title(title or f"Images per {by}")
    ax.legend(title="class", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.tick_params(axis="x", labelrotation=90 if counts[by].nunique() > 8 else 0)
    fig.tight_layout()
    return fig


def outlined(image: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int] = (255, 200, 0),
             thickness: int = 1) -> np.ndarray:
    """A copy of RGB ``image`` with the outline of each region of ``mask`` (bool or labels > 0) drawn on it."""
    contours, _ = cv2.findContours((np.asarray(mask) > 0).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    out = np.ascontiguousarray(image.copy())
    cv2.drawContours(out, contours, -1, colour, thickness)
    return out


def embedding_map(embeddings: np.ndarray, class_names: Sequence[str], title: str, seed: int = 0) -> plt.Figure:
    """t-SNE (van der Maaten and Hinton, 2008) of embeddings to two dimensions, one colour per class.

    ``class_names`` holds each row's class. The perplexity is scikit-learn's
    30, lowered for small sets (it must stay below the number of rows).
    """
    from sklearn.manifold import TSNE  # imported here: slow to import, used by one figure

    perplexity = min(30.0, (len(embeddings) - 1) / 3)
    points = TSNE(perplexity=perplexity, init="pca", random_state=seed).fit_transform(np.asarray(embeddings))
    fig, ax = plt.subplots(figsize=(5.6, 4.4))
    sns.scatterplot(x=points[:, 0], y=points[:, 1], hue=list(class_names), hue_order=sorted(set(class_names)),
                    s=16, ax=ax)
    ax.set(title=title, xlabel="t-SNE 1", ylabel="t-SNE 2", xticks=[], yticks=[])
    ax.legend(title="class", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig
