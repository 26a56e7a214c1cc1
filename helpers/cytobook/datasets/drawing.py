"""Drawing primitives shared by the generators of look-alike data sets.

The generators (:mod:`.cnmc_synthetic`, :mod:`.dlmi_synthetic`) draw cells as
outlines in polar coordinates around a centre, fill them with blurred-noise
textures and work on a small box of pixels around each object. The pieces
they share live here, so that each idea has one implementation:

* :func:`sigmoid` and :func:`smooth_noise`: a logistic squashing of a latent
  value and a unit-variance Gaussian-blurred noise field;
* :class:`AngleTable`: periodic radius tables sampled at evenly spaced angles,
  with random harmonics, a smooth notch, and reading a table back at pixels'
  angles (nearest sample or linear interpolation);
* :func:`pixel_box` and :func:`local_grid`: the pixels within reach of a point
  and their offsets from it.

Every function consumes the random stream in a fixed order and does its
arithmetic in a fixed dtype; the generators' output (and so their cached
copies, keyed by their ``GENERATOR_VERSION``) depends on both, so change
nothing here without checking that the generated files stay byte-identical.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["AngleTable", "local_grid", "pixel_box", "sigmoid", "smooth_noise"]


def sigmoid(x: float) -> float:
    """Logistic function ``1 / (1 + exp(-x))`` of a Python float.

    Parameters
    ----------
    x
        Any real value; large negative values overflow ``exp`` only beyond
        about -709, far outside what the generators pass.

    Returns
    -------
    float
        A value in (0, 1).
    """
    return 1.0 / (1.0 + math.exp(-x))


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-blurred white noise rescaled to unit standard deviation.

    Parameters
    ----------
    rng
        Source of randomness; draws ``standard_normal`` values (float32) of
        ``shape``, or of a coarser grid when ``sigma > 6``.
    shape
        ``(height, width)`` of the field.
    sigma
        Blur in pixels; at most 0.3 leaves the noise white.

    Returns
    -------
    numpy.ndarray
        ``float32`` array of ``shape`` with standard deviation 1 (unless it is
        constant).

    Notes
    -----
    Large sigmas are drawn on a coarse grid and resized: the result is just
    as smooth and a large-kernel blur over the full box would cost far more.
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
    """Evenly spaced angles for periodic radius tables (outlines in polar coordinates).

    An outline is a radius per angle of :attr:`angles`; each generator picks
    its own resolution (a finer one for larger cells), and the resolution is
    part of what it draws, so it is a parameter rather than a constant here.

    Parameters
    ----------
    n_angles
        Number of angles over ``[0, 2*pi)``.
    max_order
        Highest harmonic order :meth:`harmonics` can produce.

    Attributes
    ----------
    n_angles
        Number of angles.
    angles
        ``float64`` array of the angles ``2*pi*k/n_angles``.
    cos, sin
        ``cos(k*angle)`` and ``sin(k*angle)`` for ``k = 0..max_order``, shape
        ``(max_order + 1, n_angles)``: a harmonic with any phase is a
        combination of the two, so an outline costs a small matrix product,
        not cosines.
    """

    def __init__(self, n_angles: int, max_order: int = 9) -> None:
        self.n_angles = n_angles
        self.angles = np.linspace(0.0, 2.0 * np.pi, n_angles, endpoint=False)
        orders = np.arange(max_order + 1)[:, None]
        self.cos = np.cos(orders * self.angles[None, :])
        self.sin = np.sin(orders * self.angles[None, :])

    def harmonics(self, rng: np.random.Generator, amplitudes: np.ndarray, first: int) -> np.ndarray:
        """Sum of cosines of orders ``first, first + 1, ...`` with random phases.

        Parameters
        ----------
        rng
            Source of the phases (one uniform draw per amplitude).
        amplitudes
            Amplitude of each order, starting at order ``first``.
        first
            Lowest order.

        Returns
        -------
        numpy.ndarray
            ``float64`` values at :attr:`angles`.
        """
        orders = slice(first, first + len(amplitudes))
        phases = rng.uniform(0.0, 2.0 * np.pi, size=len(amplitudes))
        # cos(k a + p) = cos(k a) cos(p) - sin(k a) sin(p)
        return (amplitudes * np.cos(phases)) @ self.cos[orders] - (amplitudes * np.sin(phases)) @ self.sin[orders]

    def notch(self, rng: np.random.Generator, depth: float, width: float) -> np.ndarray:
        """Factor on a radius table that carves one smooth indentation at a random angle.

        Parameters
        ----------
        rng
            Source of the indentation's angle (one uniform draw).
        depth
            Relative depth at the centre of the indentation (0.2 = 20 %).
        width
            Gaussian width of the indentation in radians.

        Returns
        -------
        numpy.ndarray
            ``float64`` factors at :attr:`angles`, ``1 - depth`` at the centre.
        """
        delta = np.angle(np.exp(1j * (self.angles - rng.uniform(0.0, 2.0 * np.pi))))
        return 1.0 - depth * np.exp(-0.5 * (delta / width) ** 2)

    def nearest(
        self, dx: np.ndarray, dy: np.ndarray, tables: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Distance from the origin and each table at the pixels' angles, nearest sample below.

        Parameters
        ----------
        dx, dy
            ``float32`` offsets of the pixels from the centre (broadcastable,
            e.g. a row and a column from :func:`local_grid`).
        tables
            Radius tables of length :attr:`n_angles`.

        Returns
        -------
        rho : numpy.ndarray
            Distance of each pixel from the centre.
        values : list of numpy.ndarray
            Each table (as ``float32``) read at each pixel's angle.
        """
        rho = np.sqrt(dx * dx + dy * dy)
        theta = np.arctan2(dy, dx)
        index = (theta * np.float32(self.n_angles / (2.0 * np.pi))).astype(np.int32) % self.n_angles
        return rho, [table.astype(np.float32)[index] for table in tables]

    def interpolate(
        self, dx: np.ndarray, dy: np.ndarray, tables: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Distance from the origin and each table at the pixels' angles, linearly interpolated.

        Smoother than :meth:`nearest` on large outlines, where one angle step
        spans several pixels.

        Parameters
        ----------
        dx, dy
            ``float32`` offsets of the pixels from the centre (broadcastable).
        tables
            ``float32`` radius tables of length :attr:`n_angles`.

        Returns
        -------
        rho : numpy.ndarray
            Distance of each pixel from the centre.
        values : list of numpy.ndarray
            Each table interpolated at each pixel's angle (periodically).
        """
        rho = np.sqrt(dx * dx + dy * dy)
        theta = np.arctan2(dy, dx)
        theta = np.where(theta < 0, theta + np.float32(2.0 * np.pi), theta)
        pos = theta * (self.n_angles / (2.0 * np.pi))
        i0 = pos.astype(np.int32) % self.n_angles
        i1 = (i0 + 1) % self.n_angles
        frac = pos - np.floor(pos)
        return rho, [table[i0] * (1.0 - frac) + table[i1] * frac for table in tables]


def pixel_box(cx: float, cy: float, reach: float, size: int, pad: int = 0) -> tuple[slice, slice] | None:
    """Rows and columns of a square image within ``reach`` of the point ``(cx, cy)``.

    Parameters
    ----------
    cx, cy
        The point, in pixels (the image's corner is 0; pixel centres lie at
        half-integers).
    reach
        Distance from the point that the box must cover.
    size
        Side of the image; the box is clipped to it.
    pad
        Whole pixels added on each side after rounding.

    Returns
    -------
    tuple of slice or None
        ``(rows, columns)``, or ``None`` when the box lies outside the image.
    """
    x0, x1 = max(0, int(cx - reach) - pad), min(size, int(cx + reach) + 1 + pad)
    y0, y1 = max(0, int(cy - reach) - pad), min(size, int(cy + reach) + 1 + pad)
    if x0 >= x1 or y0 >= y1:
        return None
    return slice(y0, y1), slice(x0, x1)


def local_grid(
    cx: float, cy: float, reach: float, size: int, pad: int = 0
) -> tuple[slice, slice, np.ndarray, np.ndarray] | None:
    """The :func:`pixel_box` around ``(cx, cy)`` and its pixel centres' offsets from the point.

    Parameters
    ----------
    cx, cy, reach, size, pad
        As for :func:`pixel_box`.

    Returns
    -------
    tuple or None
        ``(rows, columns, dy, dx)`` with ``dy`` a column and ``dx`` a row of
        ``float32`` offsets (they broadcast to the box, which is cheaper than
        a full grid), or ``None`` when the box lies outside the image.
    """
    box = pixel_box(cx, cy, reach, size, pad)
    if box is None:
        return None
    rows, columns = box
    dx = (np.arange(columns.start, columns.stop, dtype=np.float32) + np.float32(0.5 - cx))[None, :]
    dy = (np.arange(rows.start, rows.stop, dtype=np.float32) + np.float32(0.5 - cy))[:, None]
    return rows, columns, dy, dx
