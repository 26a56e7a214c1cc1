"""Drawing primitives shared by the generators of look-alike data sets.

The generators (:mod:`.cnmc_synthetic`, :mod:`.dlmi_synthetic`) draw cells as
outlines in polar coordinates (:class:`AngleTable`), fill them with
blurred-noise textures (:func:`smooth_noise`) and work on a small box of
pixels around each object (:func:`pixel_box`, :func:`local_grid`).

Every function consumes the random stream in a fixed order and computes in a
fixed dtype, and the generated files (cached under their ``GENERATOR_VERSION``)
depend on both: change nothing here without checking that they stay byte-identical.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["AngleTable", "local_grid", "pixel_box", "sigmoid", "smooth_noise"]


def sigmoid(x: float) -> float:
    """Logistic function ``1 / (1 + exp(-x))`` of a Python float."""
    return 1.0 / (1.0 + math.exp(-x))


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """``float32`` white noise of ``shape`` blurred by ``sigma`` pixels (none up to 0.3), rescaled to unit spread.

    Above ``sigma = 6`` the noise is drawn on a coarser grid and resized: as
    smooth, and far cheaper than a large-kernel blur.
    """
    h, w = shape
    if sigma > 6.0:
        # One coarse cell per sigma/3 pixels, blurred by 3 coarse cells = sigma.
        step = sigma / 3.0
        small = (max(2, int(math.ceil(h / step))), max(2, int(math.ceil(w / step))))
        field = cv2.GaussianBlur(rng.standard_normal(small, dtype=np.float32), (0, 0), 3.0)
        field = cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC)
    else:
        field = rng.standard_normal(shape, dtype=np.float32)
        if sigma > 0.3:
            field = cv2.GaussianBlur(field, (0, 0), sigma)
    std = float(field.std())
    return field / std if std > 0 else field


class AngleTable:
    """``n_angles`` evenly spaced angles over ``[0, 2*pi)`` for radius tables (outlines in polar coordinates).

    Each generator picks its resolution (finer for larger cells; it is part of
    what it draws). :attr:`cos` and :attr:`sin` hold ``cos(k*angle)`` and
    ``sin(k*angle)`` for ``k = 0..max_order``, so an outline of harmonics with
    any phases is a small matrix product.
    """

    def __init__(self, n_angles: int, max_order: int = 9) -> None:
        self.n_angles = n_angles
        self.angles = np.linspace(0.0, 2.0 * np.pi, n_angles, endpoint=False)
        orders = np.arange(max_order + 1)[:, None]
        self.cos = np.cos(orders * self.angles[None, :])
        self.sin = np.sin(orders * self.angles[None, :])

    def harmonics(self, rng: np.random.Generator, amplitudes: np.ndarray, first: int) -> np.ndarray:
        """Sum of cosines of orders ``first, first + 1, ...`` with ``amplitudes`` and random phases, at :attr:`angles`."""
        orders = slice(first, first + len(amplitudes))
        phases = rng.uniform(0.0, 2.0 * np.pi, size=len(amplitudes))
        # cos(k a + p) = cos(k a) cos(p) - sin(k a) sin(p)
        return (amplitudes * np.cos(phases)) @ self.cos[orders] - (amplitudes * np.sin(phases)) @ self.sin[orders]

    def notch(self, rng: np.random.Generator, depth: float, width: float) -> np.ndarray:
        """Factors on a radius table carving one Gaussian indentation (``1 - depth`` at its centre, ``width``
        in radians) at a random angle."""
        delta = np.angle(np.exp(1j * (self.angles - rng.uniform(0.0, 2.0 * np.pi))))
        return 1.0 - depth * np.exp(-0.5 * (delta / width) ** 2)

    def nearest(
        self, dx: np.ndarray, dy: np.ndarray, tables: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """``(rho, values)``: each pixel's distance from the centre and each table (as ``float32``) at its angle.

        ``dx`` and ``dy`` are ``float32`` offsets from the centre (a row and a
        column from :func:`local_grid`); a table is read at its nearest sample below.
        """
        rho = np.sqrt(dx * dx + dy * dy)
        theta = np.arctan2(dy, dx)
        index = (theta * np.float32(self.n_angles / (2.0 * np.pi))).astype(np.int32) % self.n_angles
        return rho, [table.astype(np.float32)[index] for table in tables]

    def interpolate(
        self, dx: np.ndarray, dy: np.ndarray, tables: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """:meth:`nearest`, but interpolating the (``float32``) tables linearly: smoother on large outlines."""
        rho = np.sqrt(dx * dx + dy * dy)
        theta = np.arctan2(dy, dx)
        theta = np.where(theta < 0, theta + np.float32(2.0 * np.pi), theta)
        pos = theta * (self.n_angles / (2.0 * np.pi))
        i0 = pos.astype(np.int32) % self.n_angles
        i1 = (i0 + 1) % self.n_angles
        frac = pos - np.floor(pos)
        return rho, [table[i0] * (1.0 - frac) + table[i1] * frac for table in tables]


def pixel_box(cx: float, cy: float, reach: float, size: int, pad: int = 0) -> tuple[slice, slice] | None:
    """``(rows, columns)`` of a ``size`` x ``size`` image within ``reach`` of ``(cx, cy)``, plus ``pad`` pixels.

    Pixel centres lie at half-integers; ``None`` when the box lies outside the image.
    """
    x0, x1 = max(0, int(cx - reach) - pad), min(size, int(cx + reach) + 1 + pad)
    y0, y1 = max(0, int(cy - reach) - pad), min(size, int(cy + reach) + 1 + pad)
    if x0 >= x1 or y0 >= y1:
        return None
    return slice(y0, y1), slice(x0, x1)


def local_grid(
    cx: float, cy: float, reach: float, size: int, pad: int = 0
) -> tuple[slice, slice, np.ndarray, np.ndarray] | None:
    """The :func:`pixel_box` and its pixel centres' ``float32`` offsets from ``(cx, cy)``, or ``None``.

    Returns ``(rows, columns, dy, dx)``, ``dy`` a column and ``dx`` a row (they
    broadcast to the box, cheaper than a full grid).
    """
    box = pixel_box(cx, cy, reach, size, pad)
    if box is None:
        return None
    rows, columns = box
    dx = (np.arange(columns.start, columns.stop, dtype=np.float32) + np.float32(0.5 - cx))[None, :]
    dy = (np.arange(rows.start, rows.stop, dtype=np.float32) + np.float32(0.5 - cy))[:, None]
    return rows, columns, dy, dx
