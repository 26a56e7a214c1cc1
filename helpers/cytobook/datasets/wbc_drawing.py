"""Look-alike images for the UNet multitask white-blood-cell report: white cells, lymph-node patches, kidney tiles.

The report classifies five kinds of white blood cell (Raabin-WBC, PBC) with a
UNet that also segments the nucleus and cytoplasm, after pretraining on
CAMELYON16 lymph-node patches (normal against tumour, with tumour masks) and
on unlabelled pRCC kidney-tumour tiles. None of these may be redistributed,
so this module draws arrays that look and behave alike; a data-set module
writes them into the official folder layouts.

**White cells** (:func:`render_white_cell`) are drawn like :mod:`.dlmi_synthetic`'s
smears, as optical densities (Beer-Lambert: the background times
``exp(-sum of densities)``): a beige, lilac or greyish smear background, several
pale red cells with lighter centres (some touching the white cell, partly
under its edge) and one white cell roughly in the middle, its diameter about
40-60 % of the side (35-70 % at the extremes). Nucleus and cytoplasm are outlines in polar coordinates,
ellipses and thin strands, each an approximate signed distance in pixels; the
same fields give the anti-aliased drawing and the label mask (``2`` nucleus,
``1`` the rest of the cell, ``0`` background and red cells). The classes differ as follows.

* **Neutrophil.** Medium-large (median radius 0.255 of the side). Two to five,
  mostly three or four, dark purple lobes along a bent chain, joined by thin
  strands (low solidity, low nucleus-to-cell ratio); pale pinkish-lilac
  cytoplasm with fine, faint granules.
* **Eosinophil.** As large or a little larger (0.265). Two round lobes
  ("spectacles"; one cell in ten three), slightly paler chromatin; the
  cytoplasm packed with coarse orange-red granules, their density varying
  from cell to cell; one in ten is faint, with few pale granules (as pink as
  the pinkest neutrophils).
* **Basophil.** Smaller (0.225). An irregular, often notched nucleus, partly
  hidden by coarse dark purple-black granules scattered over the whole cell,
  their number varying four-fold, on a pale lilac cytoplasm.
* **Lymphocyte.** The smallest (0.2). A round, dense, dark nucleus filling most of
  the cell (radius 0.68-0.88 of the cell's), often eccentric; a thin rim of
  pale sky-blue cytoplasm. One in seven is a large granular lymphocyte: more
  cytoplasm (nucleus 0.56-0.7) and a few reddish azurophilic granules.
* **Monocyte.** The largest (0.295). A kidney- to horseshoe-shaped nucleus
  (radius 0.6-0.76 of the cell's, a disc bitten 20-65 % of that deep out of
  one side), lighter, lacy chromatin; abundant grey-blue cytoplasm, now and
  then a few pale vacuoles.

Sizes spread by 7 % per cell and 5 % per smear (:class:`SmearStyle`), so
neighbouring classes overlap in size (and lymphocytes with monocytes in
nucleus-to-cell ratio); the smear style (background tint,
brightness, stain strength per channel, eosin strength, red-cell stain and
density, magnification, focus blur, pixel noise) is class-independent.

**Lymph-node patches** (:func:`render_tissue_patch`) are H&E at about 40x,
drawn as haematoxylin and eosin densities, and about as hard to tell apart as
CAMELYON16's. Normal tissue is dense sheets of small round dark-blue lymphocyte
nuclei on a faint pink background, thinner in places, with a few white gaps
and an odd larger, paler nucleus. About a third of the patches, of either
class, hold a benign look-alike (never in the mask): a germinal centre
(larger, paler centroblasts with nucleoli at the membrane among the
lymphocytes, and tingible-body macrophages, pale bodies holding dark
apoptotic debris) or a sinus (scattered histiocytes, large pale oval nuclei
in abundant pale pink cytoplasm, in a paler space with few lymphocytes). A
tumour patch adds a metastasis, exactly the returned mask: a smooth blob
(now and then with a satellite) that is a small focus (5-12 % of the patch,
a fifth of the tumours, centred anywhere, so that a crop may cut off much
of it), a medium one (10-50 %) or most of the patch (50-100 %). Mostly
(85 %) it is cohesive nests of carcinoma cells in pink cytoplasm, separated
by pink fibrous stroma with spindle nuclei, some lymphocytes and white
retraction spaces; otherwise single tumour cells scattered among
lymphocytes. How atypical its nuclei are varies per tumour: from large,
pleomorphic, pale vesicular nuclei with a dark membrane and one to three
nucleoli, to smaller, darker, more uniform ones with faint membranes and
few nucleoli, nearer the lymphocytes. Stain strength and hue, magnification
(+-15 %) and focus (a quarter of the patches visibly soft) vary per patch,
whatever the class. Nuclei are anti-aliased polygons filled by OpenCV (a few
hundred per patch).

**Kidney tiles** (:func:`render_kidney_tile`) show papillary renal cell
carcinoma: finger-like fibrovascular cores (pale pink loose stroma with a red
capillary, sometimes crowded with pale foamy macrophages), some cut across as
round cores, lined by one layer of cuboidal cells (pink or pale lilac
cytoplasm, one round nucleus each) facing white lumen spaces with faint pink fluid.

Each function consumes its random stream in a fixed order and computes its
pixels in ``float32`` (only polygon vertices are placed in ``float64``, then
rounded to OpenCV's fixed point): the same stream state and arguments give
byte-identical arrays (same NumPy and OpenCV on one platform).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .drawing import AngleTable, local_grid, smooth_noise

__all__ = ["WBC_CLASSES", "SmearStyle", "render_kidney_tile", "render_tissue_patch", "render_white_cell"]

#: The five white-cell classes, in the order of the report (alphabetical).
WBC_CLASSES: tuple[str, ...] = ("Basophil", "Eosinophil", "Lymphocyte", "Monocyte", "Neutrophil")

#: Smallest image side the functions draw (below it the cells are a few pixels).
MIN_SIZE = 32

# -- Smear colours: optical densities per (R, G, B) channel ------------------ #
# The background is multiplied by exp(-density x OD vector) of whatever lies on it.
_BACKGROUNDS = np.array(
    [
        [251.0, 227.0, 202.0],  # pinkish beige (as in dlmi_synthetic)
        [236.0, 229.0, 241.0],  # greyish lilac
        [242.0, 238.0, 236.0],  # nearly white, as in brightly lit smears
    ]
)
_BACKGROUND_SHIFTED = np.array([228.0, 232.0, 242.0])  # cool bluish grey of another laboratory's smears
_STAIN_SHIFT = np.array([1.15, 0.95, 1.2])  # bluer-purple nuclei and cytoplasm there
_OD_NUCLEUS = np.array([1.0, 1.6, 0.38])  # dark purple-violet chromatin
_OD_RBC = np.array([0.17, 0.36, 0.22])  # pale pinkish red
_OD_CYTO_LYMPHOCYTE = np.array([0.26, 0.20, -0.06])  # pale sky blue
_OD_CYTO_MONOCYTE = np.array([0.34, 0.29, 0.04])  # grey-blue
_OD_CYTO_NEUTROPHIL = np.array([0.13, 0.19, 0.02])  # pale pinkish lilac
_OD_GRANULE_NEUTROPHIL = np.array([0.06, 0.24, 0.10])  # faint pinkish-lilac dust
_OD_CYTO_EOSINOPHIL = np.array([0.06, 0.22, 0.24])  # faint orange-pink between granules
_OD_GRANULE_EOSINOPHIL = np.array([0.05, 0.5, 0.64])  # orange-red
_OD_CYTO_BASOPHIL = np.array([0.14, 0.20, 0.06])  # pale lilac
_OD_GRANULE_BASOPHIL = np.array([1.25, 1.6, 0.75])  # purple-black
_OD_AZUROPHILIC = np.array([0.45, 0.95, 0.35])  # reddish-purple granules of large granular lymphocytes

# Median cell radius per class, as a fraction of the image side.
_CELL_RADIUS = {"Basophil": 0.225, "Eosinophil": 0.265, "Lymphocyte": 0.2, "Monocyte": 0.295, "Neutrophil": 0.255}

# 360 angles, read with linear interpolation: smooth even on a 575-px frame's cells.
_OUTLINE = AngleTable(360)

# -- H&E colours ------------------------------------------------------------- #
_OD_HEMATOXYLIN = np.array([0.65, 0.70, 0.29])  # blue-purple (Ruifrok and Johnston)
_OD_EOSIN = np.array([0.08, 0.88, 0.42])  # pink, as measured on lymph-node stroma
_HE_BACKGROUND = np.array([242.0, 238.0, 243.0])  # bright slide glass, slightly lilac


def _check_size(size: int) -> None:
    if size < MIN_SIZE:
        raise ValueError(f"size must be at least {MIN_SIZE} pixels, got {size}")


def _vec(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


# --------------------------------------------------------------------------- #
# Smear style
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class SmearStyle:
    """Stain and illumination of one smear (drawn by :meth:`draw`), shared by the images of a batch or not.

    Nothing here depends on the cell class.

    Attributes
    ----------
    background
        RGB of the empty smear (before ``brightness``), 0-255: a mix of beige, lilac and near-white.
    brightness
        Factor on the background (illumination level).
    stain
        Factors on the (R, G, B) optical densities of nuclei, granules and cytoplasm.
    eosin
        Factor on the orange-red (eosinophilic) densities: eosinophil granules, neutrophil pinkness.
    rbc_stain
        Factors on the (R, G, B) optical densities of the red cells.
    rbc_density
        Mean number of red cells placed at random in or near a frame (besides 0-3 touching the white cell).
    scale
        Magnification: factor on the sizes of white and red cells.
    blur, noise
        Focus blur (Gaussian sigma as a fraction of the side) and pixel noise (standard deviation, 0-255).
    """

    background: tuple[float, float, float]
    brightness: float
    stain: tuple[float, float, float]
    eosin: float
    rbc_stain: tuple[float, float, float]
    rbc_density: float
    scale: float
    blur: float
    noise: float

    @classmethod
    def draw(cls, rng: np.random.Generator, *, shifted: bool = False) -> SmearStyle:
        """Draw a smear style from ``rng`` (a fixed number of values, ``shifted`` or not).

        ``shifted`` moves the whole distribution as another laboratory's
        staining and microscope would: a cooler, bluish-grey background,
        bluer-purple nuclei and cytoplasm, weaker eosin, more reddish red
        cells, softer focus and more noise (a domain shift for test sets).
        """
        mix = rng.dirichlet((2.0, 0.8, 0.8))
        background = (mix @ _BACKGROUNDS) * np.exp(rng.normal(0.0, 0.012, size=3))
        brightness = rng.uniform(0.93, 1.02)
        stain = np.exp(rng.normal(0.0, 0.07, size=3)) * rng.uniform(0.85, 1.15)
        eosin = rng.uniform(0.8, 1.25)
        rbc_stain = np.exp(rng.normal(0.0, 0.08, size=3)) * rng.uniform(0.75, 1.2)
        rbc_density = rng.uniform(3.0, 10.0)
        scale = math.exp(rng.normal(0.0, 0.05))
        blur = rng.uniform(0.0008, 0.004)
        noise = rng.uniform(0.8, 2.8)
        if shifted:
            background = 0.5 * background + 0.5 * _BACKGROUND_SHIFTED
            stain = stain * _STAIN_SHIFT
            eosin, blur, noise = 0.8 * eosin, 1.4 * blur, noise + 0.8
            rbc_stain = rbc_stain * np.array([0.85, 1.1, 1.05])
        return cls(
            background=tuple(float(v) for v in np.clip(background, 0.0, 255.0)),  # type: ignore[arg-type]
            brightness=float(brightness),
            stain=tuple(float(v) for v in stain),  # type: ignore[arg-type]
            eosin=float(eosin),
            rbc_stain=tuple(float(v) for v in rbc_stain),  # type: ignore[arg-type]
            rbc_density=float(rbc_density),
            scale=float(scale),
            blur=float(blur),
            noise=float(noise),
        )


# --------------------------------------------------------------------------- #
# Fields: approximate signed distances (pixels, positive inside)
# --------------------------------------------------------------------------- #


def _outline_table(rng: np.random.Generator, elongation: float, irregular: float) -> np.ndarray:
    """Radius factors around 1: an order-2 elongation plus harmonics of orders 3-7 falling off with the order."""
    orders = np.arange(3, 8)
    amps = np.abs(rng.normal(0.0, 1.0, size=len(orders))) * irregular / (orders / 3.0)
    return 1.0 + _OUTLINE.harmonics(rng, np.array([elongation]), 2) + _OUTLINE.harmonics(rng, amps, 3)


def _polar_field(table: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """``radius(angle) - distance`` from the centre, for a radius table in pixels."""
    rho, (radius,) = _OUTLINE.interpolate(dx, dy, [table.astype(np.float32)])
    return radius - rho


def _ellipse_field(dx: np.ndarray, dy: np.ndarray, a: float, b: float, angle: float) -> np.ndarray:
    """Inside-ness of an ellipse (semi-axes ``a``, ``b``) centred at the offsets' origin; exact on a circle."""
    c, s = np.float32(math.cos(angle)), np.float32(math.sin(angle))
    u = (dx * c + dy * s) * np.float32(1.0 / a)
    v = (dy * c - dx * s) * np.float32(1.0 / b)
    return (1.0 - np.sqrt(u * u + v * v)) * np.float32(math.sqrt(a * b))


def _segment_field(dx: np.ndarray, dy: np.ndarray, p0: tuple[float, float], p1: tuple[float, float], half_width: float) -> np.ndarray:
    """Inside-ness of a capsule: a strand of ``half_width`` pixels from ``p0`` to ``p1``."""
    vx, vy = p1[0] - p0[0], p1[1] - p0[1]
    length2 = max(vx * vx + vy * vy, 1e-6)
    ex, ey = dx - np.float32(p0[0]), dy - np.float32(p0[1])
    t = np.clip((ex * np.float32(vx) + ey * np.float32(vy)) * np.float32(1.0 / length2), 0.0, 1.0)
    ex = ex - t * np.float32(vx)
    ey = ey - t * np.float32(vy)
    return np.float32(half_width) - np.sqrt(ex * ex + ey * ey)


def _lobe_chain(
    rng: np.random.Generator,
    dx: np.ndarray,
    dy: np.ndarray,
    count: int,
    lobe_radius: float,
    spacing: float,
    bend: float,
    centre: tuple[float, float],
    strand: float,
    elongation: float = 0.12,
) -> np.ndarray:
    """Union of ``count`` elliptic lobes along a circular arc of radius ``bend``, joined by strands.

    The lobe centres, ``spacing`` pixels apart along the arc (before jitter),
    are centred on ``centre`` (their mean); each lobe is an ellipse of mean
    radius ``lobe_radius`` elongated by about ``elongation``, each strand a
    capsule of half-width ``strand`` between successive centres.
    """
    start = rng.uniform(0.0, 2.0 * np.pi)  # direction of the chain's middle from the arc's centre
    step = spacing / bend * (1.0 if rng.random() < 0.5 else -1.0)
    jitter = rng.normal(0.0, 1.0, size=(count, 5))
    angles = start + (np.arange(count) - (count - 1) / 2.0) * step + 0.08 * jitter[:, 0] * abs(step)
    reach = bend * (1.0 + 0.06 * jitter[:, 1])
    xs, ys = reach * np.cos(angles), reach * np.sin(angles)
    # Centre the chain (not its arc) on the cell, as lobes spread around a neutrophil's middle.
    xs = xs - xs.mean() + centre[0]
    ys = ys - ys.mean() + centre[1]
    centres = list(zip(xs.tolist(), ys.tolist()))
    field = None
    for (x, y), row in zip(centres, jitter):
        r = lobe_radius * math.exp(0.08 * row[2])
        e = min(abs(elongation * row[3]), 2.0 * elongation)
        lobe = _ellipse_field(dx - np.float32(x), dy - np.float32(y), r * (1.0 + e), r * (1.0 - e), float(row[4]))
        field = lobe if field is None else np.maximum(field, lobe)
    assert field is not None
    for p0, p1 in zip(centres[:-1], centres[1:]):
        field = np.maximum(field, _segment_field(dx, dy, p0, p1, strand))
    return field


def _smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Intersection of two inside-ness fields with corners rounded over about ``k`` pixels (polynomial smooth minimum)."""
    h = np.clip(0.5 + (b - a) * np.float32(0.5 / k), 0.0, 1.0)
    return b + (a - b) * h - np.float32(k) * h * (1.0 - h)


def _granules(rng: np.random.Generator, shape: tuple[int, int], count: int, radius: float) -> np.ndarray:
    """``float32`` cover (0-1) of ``count`` round granules of ``radius`` pixels at random places in a box.

    Impulses blurred to spots, saturating where granules pile up: the cost does not depend on ``count``.
    """
    h, w = shape
    index = rng.integers(0, h * w, size=count)
    acc = np.bincount(index, minlength=h * w).astype(np.float32).reshape(shape)
    sigma = max(0.7 * radius, 0.5)
    acc = cv2.GaussianBlur(acc, (0, 0), sigma) * np.float32(2.0 * np.pi * sigma * sigma)
    return 1.0 - np.exp(np.float32(-1.6) * acc)


# --------------------------------------------------------------------------- #
# White cells
# --------------------------------------------------------------------------- #


@dataclass
class _Cell:
    """Geometry shared by the class painters: the cell's box, offsets from its centre and outline field."""

    s: float  # image side
    radius: float  # mean cell radius in pixels
    dx: np.ndarray  # row of x offsets from the cell centre
    dy: np.ndarray  # column of y offsets
    field_c: np.ndarray  # cell outline field over the box
    edge: float  # anti-aliasing width in pixels
    style: SmearStyle

    @property
    def shape(self) -> tuple[int, int]:
        return self.field_c.shape  # type: ignore[return-value]

    def alphas(self, field_n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Anti-aliased cover of nucleus and of the whole cell (which contains the nucleus)."""
        field_n = np.broadcast_to(field_n, self.shape)
        alpha_n = np.clip(field_n * np.float32(1.0 / self.edge) + 0.5, 0.0, 1.0)
        alpha_c = np.maximum(np.clip(self.field_c * np.float32(1.0 / self.edge) + 0.5, 0.0, 1.0), alpha_n)
        return alpha_n, alpha_c

    def stained(self, od: np.ndarray, eosin: bool = False) -> np.ndarray:
        factor = self.style.eosin if eosin else 1.0
        return _vec(od * np.asarray(self.style.stain) * factor)

    def chromatin(self, rng: np.random.Generator, alpha_n: np.ndarray, field_n: np.ndarray, density: float, coarse: float, lacy: float = 0.0) -> np.ndarray:
        """Nuclear density: clumps with paler gaps (``coarse``), a lacy network (``lacy``), a darker membrane."""
        s = self.s
        fine = smooth_noise(rng, self.shape, 0.0045 * s)
        clumps = np.tanh(1.6 * smooth_noise(rng, self.shape, 0.011 * s))
        texture = np.float32(0.36 * coarse) * clumps + np.float32(0.1 + 0.08 * (1.0 - coarse)) * fine
        if lacy > 0.0:
            # Dark strands where a band-passed noise crosses zero, pale holes between.
            ridge = 1.0 - 2.0 * np.abs(np.tanh(smooth_noise(rng, self.shape, 0.008 * s)))
            texture = texture + np.float32(0.45 * lacy) * ridge - np.float32(0.15 * lacy)
        membrane = 0.18 * np.exp(-np.maximum(field_n, 0.0) * np.float32(1.0 / (0.02 * s)))
        return alpha_n * np.float32(density) * np.maximum(1.0 + texture + membrane, 0.05)


Layers = list[tuple[np.ndarray, np.ndarray]]  # (density over the cell box, OD vector)


def _paint_neutrophil(rng: np.random.Generator, cell: _Cell) -> tuple[np.ndarray, np.ndarray, Layers]:
    R = cell.radius
    count = int(rng.choice([2, 3, 4, 5], p=[0.07, 0.38, 0.4, 0.15]))
    gap = rng.uniform(0.8, 1.1)  # lobes overlapping a little to a strand's length apart
    # Large lobes, but a chain of many must still fit in the cell: bend + lobe below 0.85 R.
    lobe = R * min(rng.uniform(0.22, 0.3), 0.85 / (1.0 + count * 2.0 * gap / (1.6 * np.pi)))
    spacing = 2.0 * lobe * gap
    # A C-like chain around the cell centre, bent enough to fit but never closing into a ring.
    bend = min(max(R * rng.uniform(0.3, 0.5), count * spacing / (1.6 * np.pi)), 0.85 * R - lobe)
    centre = rng.normal(0.0, 0.08 * R, size=2).tolist()
    strand = max(0.45, R * rng.uniform(0.02, 0.045))
    field_n = _lobe_chain(rng, cell.dx, cell.dy, count, lobe, spacing, bend, (centre[0], centre[1]), strand, elongation=0.2)
    alpha_n, alpha_c = cell.alphas(field_n)
    nucleus = cell.chromatin(rng, alpha_n, field_n, rng.uniform(0.95, 1.2), rng.uniform(0.45, 0.65))
    cyto = alpha_c - alpha_n
    pink = rng.uniform(0.6, 1.8)  # from pale to toxic-looking pinkish granulation
    dust = smooth_noise(rng, cell.shape, max(0.6, 0.0028 * cell.s))
    cytoplasm = cyto * np.float32(rng.uniform(0.8, 1.15)) * (1.0 + 0.1 * dust)
    granules = cyto * np.float32(0.35 * pink) * np.maximum(dust, 0.0)
    return alpha_n, alpha_c, [
        (nucleus, cell.stained(_OD_NUCLEUS)),
        (cytoplasm, cell.stained(_OD_CYTO_NEUTROPHIL)),
        (granules, cell.stained(_OD_GRANULE_NEUTROPHIL, eosin=True)),
    ]


def _paint_eosinophil(rng: np.random.Generator, cell: _Cell) -> tuple[np.ndarray, np.ndarray, Layers]:
    R = cell.radius
    count = 3 if rng.random() < 0.1 else 2
    lobe = R * rng.uniform(0.27, 0.35) * (0.85 if count == 3 else 1.0)
    spacing = 2.0 * lobe * rng.uniform(0.85, 1.12)
    bend = R * rng.uniform(0.6, 2.0)  # nearly straight pairs
    where, reach = rng.uniform(0.0, 2.0 * np.pi), R * rng.uniform(0.0, 0.2)
    middle = (reach * math.cos(where), reach * math.sin(where))
    strand = max(0.5, R * rng.uniform(0.04, 0.08))
    field_n = _lobe_chain(rng, cell.dx, cell.dy, count, lobe, spacing, bend, middle, strand)
    alpha_n, alpha_c = cell.alphas(field_n)
    nucleus = cell.chromatin(rng, alpha_n, field_n, rng.uniform(0.85, 1.05), rng.uniform(0.4, 0.6))
    cyto = alpha_c - alpha_n
    # Coarse granules packed over the cytoplasm, fewer over the nucleus; their density varies a lot.
    g_radius = cell.s * rng.uniform(0.0055, 0.0075) * cell.style.scale
    # One cell in ten is faint (few or poorly stained granules): as pink as some neutrophils.
    faint = rng.random() < 0.1
    fill = rng.uniform(0.1, 0.3) if faint else rng.uniform(0.3, 1.1)
    area = cell.shape[0] * cell.shape[1]
    cover = _granules(rng, cell.shape, int(fill * area / (np.pi * g_radius * g_radius)), g_radius)
    granules = cover * (alpha_c - np.float32(0.75) * alpha_n) * np.float32(0.6 if faint else 1.0)
    cytoplasm = cyto * np.float32(rng.uniform(0.7, 1.1))
    return alpha_n, alpha_c, [
        (nucleus, cell.stained(_OD_NUCLEUS)),
        (cytoplasm, cell.stained(_OD_CYTO_EOSINOPHIL, eosin=True)),
        (granules, cell.stained(_OD_GRANULE_EOSINOPHIL, eosin=True)),
    ]


def _paint_basophil(rng: np.random.Generator, cell: _Cell) -> tuple[np.ndarray, np.ndarray, Layers]:
    R = cell.radius
    table = _outline_table(rng, rng.uniform(0.08, 0.25), 0.07)
    if rng.random() < 0.6:  # bilobed or cloverleaf-like
        table = table * _OUTLINE.notch(rng, rng.uniform(0.15, 0.45), rng.uniform(0.3, 0.6))
    table = np.maximum(table, 0.4) * (R * rng.uniform(0.45, 0.62))
    where, reach = rng.uniform(0.0, 2.0 * np.pi), R * rng.uniform(0.0, 0.2)
    ox, oy = reach * math.cos(where), reach * math.sin(where)
    field_n = _polar_field(table, cell.dx - np.float32(ox), cell.dy - np.float32(oy))
    alpha_n, alpha_c = cell.alphas(field_n)
    nucleus = cell.chromatin(rng, alpha_n, field_n, rng.uniform(0.75, 0.95), rng.uniform(0.3, 0.5))
    # Dark granules over the whole cell, nucleus included: coarse ones and smaller ones.
    area = cell.shape[0] * cell.shape[1]
    fill = rng.uniform(0.15, 0.65)
    coarse_r = cell.s * rng.uniform(0.008, 0.011) * cell.style.scale
    small_r = 0.6 * coarse_r
    cover = np.maximum(
        _granules(rng, cell.shape, int(fill * area / (np.pi * coarse_r**2)), coarse_r),
        _granules(rng, cell.shape, int(fill * area / (np.pi * small_r**2)), small_r),
    )
    granules = cover * alpha_c * np.float32(rng.uniform(0.8, 1.1))
    cytoplasm = (alpha_c - alpha_n) * np.float32(rng.uniform(0.8, 1.2))
    return alpha_n, alpha_c, [
        (nucleus, cell.stained(_OD_NUCLEUS)),
        (cytoplasm, cell.stained(_OD_CYTO_BASOPHIL)),
        (granules, cell.stained(_OD_GRANULE_BASOPHIL)),
    ]


def _paint_lymphocyte(rng: np.random.Generator, cell: _Cell) -> tuple[np.ndarray, np.ndarray, Layers]:
    R = cell.radius
    large = rng.random() < 0.15  # large granular lymphocyte: more cytoplasm, a few azurophilic granules
    table = _outline_table(rng, rng.uniform(0.0, 0.08), 0.015)
    if rng.random() < 0.1:
        table = table * _OUTLINE.notch(rng, rng.uniform(0.08, 0.2), rng.uniform(0.25, 0.5))
    r_n = R * (rng.uniform(0.56, 0.7) if large else rng.uniform(0.68, 0.88))
    table = np.maximum(table, 0.5) * r_n
    where, reach = rng.uniform(0.0, 2.0 * np.pi), (R - r_n) * rng.uniform(0.0, 0.7)
    ox, oy = reach * math.cos(where), reach * math.sin(where)
    field_n = _polar_field(table, cell.dx - np.float32(ox), cell.dy - np.float32(oy))
    alpha_n, alpha_c = cell.alphas(field_n)
    nucleus = cell.chromatin(rng, alpha_n, field_n, rng.uniform(1.05, 1.3), rng.uniform(0.45, 0.65))
    cyto = alpha_c - alpha_n
    fine = smooth_noise(rng, cell.shape, 0.006 * cell.s)
    cytoplasm = cyto * np.float32(rng.uniform(0.75, 1.1)) * (1.0 + 0.08 * fine)
    g_radius = cell.s * 0.005 * cell.style.scale
    n_granules = int(rng.integers(4, 14)) if large else 0
    granules = _granules(rng, cell.shape, n_granules, g_radius) * cyto if large else np.zeros(cell.shape, np.float32)
    return alpha_n, alpha_c, [
        (nucleus, cell.stained(_OD_NUCLEUS)),
        (cytoplasm, cell.stained(_OD_CYTO_LYMPHOCYTE)),
        (granules, cell.stained(_OD_AZUROPHILIC)),
    ]


def _paint_monocyte(rng: np.random.Generator, cell: _Cell) -> tuple[np.ndarray, np.ndarray, Layers]:
    R = cell.radius
    table = _outline_table(rng, rng.uniform(0.08, 0.2), 0.025)
    if rng.random() < 0.3:  # a shallow fold besides the main indentation
        table = table * _OUTLINE.notch(rng, rng.uniform(0.1, 0.25), rng.uniform(0.2, 0.4))
    r_n = R * rng.uniform(0.6, 0.76)
    table = np.maximum(table, 0.4) * r_n
    where, reach = rng.uniform(0.0, 2.0 * np.pi), (R - r_n) * rng.uniform(0.1, 0.6)
    ox, oy = reach * math.cos(where), reach * math.sin(where)
    body = _polar_field(table, cell.dx - np.float32(ox), cell.dy - np.float32(oy))
    # The indentation: a disc bitten out of one side, from a kidney (shallow bite) to a horseshoe (deep, wide).
    bite_r = r_n * rng.uniform(0.4, 0.8)
    depth = r_n * rng.uniform(0.2, 0.65)
    side = rng.uniform(0.0, 2.0 * np.pi)
    bx, by = ox + (r_n - depth + bite_r) * math.cos(side), oy + (r_n - depth + bite_r) * math.sin(side)
    ex, ey = cell.dx - np.float32(bx), cell.dy - np.float32(by)
    field_n = _smooth_min(body, np.sqrt(ex * ex + ey * ey) - np.float32(bite_r), 0.25 * r_n)
    alpha_n, alpha_c = cell.alphas(field_n)
    nucleus = cell.chromatin(rng, alpha_n, field_n, rng.uniform(0.6, 0.8), rng.uniform(0.15, 0.3), lacy=rng.uniform(0.6, 1.0))
    cyto = alpha_c - alpha_n
    fine = smooth_noise(rng, cell.shape, 0.005 * cell.s)
    density = cyto * np.float32(rng.uniform(0.75, 1.1)) * (1.0 + 0.12 * fine)
    # A few pale vacuoles punched into the cytoplasm.
    vacuoles = np.zeros(cell.shape, np.float32)
    for _ in range(int(rng.choice([0, 0, 1, 2, 3, 5]))):
        angle, dist = rng.uniform(0.0, 2.0 * np.pi), R * rng.uniform(0.3, 0.85)
        v_radius = R * rng.uniform(0.035, 0.08)
        ex = cell.dx - np.float32(dist * math.cos(angle))
        ey = cell.dy - np.float32(dist * math.sin(angle))
        disc = np.clip((np.float32(v_radius) - np.sqrt(ex * ex + ey * ey)) * np.float32(1.0 / cell.edge) + 0.5, 0.0, 1.0)
        vacuoles = np.maximum(vacuoles, disc)
    cytoplasm = density * (1.0 - 0.75 * vacuoles)
    return alpha_n, alpha_c, [
        (nucleus, cell.stained(_OD_NUCLEUS)),
        (cytoplasm, cell.stained(_OD_CYTO_MONOCYTE)),
    ]


_PAINTERS = {
    "Basophil": _paint_basophil,
    "Eosinophil": _paint_eosinophil,
    "Lymphocyte": _paint_lymphocyte,
    "Monocyte": _paint_monocyte,
    "Neutrophil": _paint_neutrophil,
}


def _draw_red_cells(rng: np.random.Generator, style: SmearStyle, size: int, cell: tuple[float, float, float], out: np.ndarray) -> None:
    """Add the optical density of the frame's red cells to ``out`` (in place).

    Biconcave discs (pale centre, thicker rim) as in :mod:`.dlmi_synthetic`,
    scaled with the smear's magnification; 0-3 of them touch the white cell
    ``(cx, cy, radius)`` and lie partly under its edge, the others avoid it.
    """
    s = float(size)
    cx0, cy0, radius0 = cell
    n_touching = int(rng.integers(0, 4))
    count = n_touching + int(rng.poisson(style.rbc_density))
    placed: list[tuple[float, float, float]] = []
    for k in range(count):
        radius = s * style.scale * rng.uniform(0.14, 0.17)
        if k < n_touching:
            angle = rng.uniform(0.0, 2.0 * np.pi)
            dist = radius0 + radius * rng.uniform(0.2, 0.85)
            cx, cy = cx0 + dist * math.cos(angle), cy0 + dist * math.sin(angle)
        else:
            # Red cells touch or overlap a little, rarely much; none lies mostly under the white cell.
            for _attempt in range(4):
                cx, cy = rng.uniform(-0.12 * s, 1.12 * s, size=2).tolist()
                if math.hypot(cx - cx0, cy - cy0) > radius0 + 0.5 * radius and all(
                    math.hypot(cx - x, cy - y) > 0.8 * (radius + r) for x, y, r in placed
                ):
                    break
        placed.append((cx, cy, radius))
        ratio = rng.uniform(1.0, 1.12)
        angle = rng.uniform(0.0, np.pi)
        pallor = rng.uniform(0.5, 0.85)
        weight = rng.uniform(0.85, 1.15)
        grid = local_grid(cx, cy, radius * ratio + 2.0, size)
        if grid is None:
            continue
        rows, columns, dy, dx = grid
        c, si = np.float32(math.cos(angle)), np.float32(math.sin(angle))
        u = (dx * c + dy * si) / np.float32(radius * ratio)
        v = (dy * c - dx * si) / np.float32(radius)
        d = np.sqrt(u * u + v * v)
        body = np.clip((1.0 - d) * np.float32(radius / 1.2), 0.0, 1.0)
        thickness = 1.0 - np.float32(pallor) * np.exp(-((d / np.float32(0.5)) ** 3)) + 0.25 * np.exp(
            -(((d - np.float32(0.9)) / np.float32(0.07)) ** 2)
        )
        out[rows, columns] += np.float32(weight) * body * thickness


def render_white_cell(
    rng: np.random.Generator, cell_type: str, size: int, *, style: SmearStyle | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one white cell of ``cell_type`` roughly centred on a ``size`` x ``size`` smear.

    Returns ``(image, labels)``: ``image`` ``uint8`` ``(size, size, 3)`` RGB,
    ``labels`` ``uint8`` ``(size, size)``, 0 background (red cells included), 1
    cytoplasm, 2 nucleus, from the same fields as the drawing (a pixel is
    labelled where the anti-aliased cover reaches one half). Without
    ``style``, a :class:`SmearStyle` is drawn from ``rng`` first.

    Raises
    ------
    ValueError
        If ``cell_type`` is not one of :data:`WBC_CLASSES` or ``size`` is below 32.
    """
    if cell_type not in _PAINTERS:
        raise ValueError(f"unknown cell type {cell_type!r}; expected one of {', '.join(WBC_CLASSES)}")
    _check_size(size)
    if style is None:
        style = SmearStyle.draw(rng)
    s = float(size)

    # -- Cell outline and position ------------------------------------------ #
    radius = min(s * style.scale * _CELL_RADIUS[cell_type] * math.exp(rng.normal(0.0, 0.07)), 0.36 * s)
    table_c = (np.maximum(_outline_table(rng, rng.uniform(0.0, 0.06), 0.02), 0.8) * radius).astype(np.float32)
    extent = float(table_c.max()) + 2.0
    room = max(0.0, s / 2.0 - extent - 1.0)
    cx, cy = (s / 2.0 + np.clip(rng.normal(0.0, 0.03 * s, size=2), -room, room)).tolist()

    rbc = np.zeros((size, size), np.float32)
    _draw_red_cells(rng, style, size, (cx, cy, radius), rbc)

    grid = local_grid(cx, cy, extent, size)
    assert grid is not None  # the cell centre lies in the frame
    rows, columns, dy, dx = grid
    cell = _Cell(s, radius, dx, dy, _polar_field(table_c, dx, dy), 0.004 * s + 0.4, style)
    alpha_n, alpha_c, layers = _PAINTERS[cell_type](rng, cell)

    labels = np.zeros((size, size), np.uint8)
    labels[rows, columns] = np.where(alpha_n >= 0.5, 2, np.where(alpha_c >= 0.5, 1, 0)).astype(np.uint8)

    # -- Composition: background x exp(-OD), then blur and noise --------------- #
    rbc[rows, columns] *= 1.0 - alpha_c  # the white cell lies on top
    rbc_od = _vec(_OD_RBC * np.asarray(style.rbc_stain) * (0.85 + 0.15 * style.eosin))
    background = np.asarray(style.background) * style.brightness
    illumination = 1.0 + 0.025 * smooth_noise(rng, (size, size), 0.15 * s)
    channels = []
    for c in range(3):
        od = rbc * rbc_od[c]
        od[rows, columns] += sum(density * od_vector[c] for density, od_vector in layers)
        channels.append(np.float32(background[c]) * illumination * np.exp(-od))
    image = np.stack(channels, axis=2)
    sigma = style.blur * s
    if sigma > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    # Uniform noise of the style's standard deviation (cheaper than normal, alike to the eye).
    image += np.float32(style.noise * math.sqrt(12.0)) * (rng.random(image.shape, dtype=np.float32) - np.float32(0.5))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), labels


# --------------------------------------------------------------------------- #
# H&E tissue
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class _HeStain:
    hematoxylin: np.ndarray  # OD vector per unit density
    eosin: np.ndarray
    background: np.ndarray  # RGB of the empty slide
    blur: float  # sigma as a fraction of the side
    noise: float  # 0-255


def _draw_he(rng: np.random.Generator) -> _HeStain:
    """Per-slide stain strength and hue, background and imaging (from pale to deeply stained slides)."""
    hematoxylin = _OD_HEMATOXYLIN * np.exp(rng.normal(0.0, 0.06, size=3)) * rng.uniform(0.8, 1.2)
    eosin = _OD_EOSIN * np.exp(rng.normal(0.0, 0.08, size=3)) * rng.uniform(0.75, 1.25)
    background = _HE_BACKGROUND * rng.uniform(0.96, 1.0) * np.exp(rng.normal(0.0, 0.01, size=3))
    return _HeStain(_vec(hematoxylin), _vec(eosin), _vec(np.clip(background, 0, 255)), rng.uniform(0.0006, 0.002), rng.uniform(0.8, 2.0))


def _compose_he(rng: np.random.Generator, stain: _HeStain, h: np.ndarray, e: np.ndarray) -> np.ndarray:
    """``uint8`` RGB from haematoxylin and eosin densities: background x exp(-OD), focus blur, pixel noise."""
    size = h.shape[0]
    channels = [stain.background[c] * np.exp(-(h * stain.hematoxylin[c] + e * stain.eosin[c])) for c in range(3)]
    image = np.stack(channels, axis=2)
    sigma = stain.blur * size
    if sigma > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    image += np.float32(stain.noise * math.sqrt(12.0)) * (rng.random(image.shape, dtype=np.float32) - np.float32(0.5))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


_POLYGON_SHIFT = 4  # fractional bits of cv2's polygon coordinates: sub-pixel outlines
_VERTICES = 20


def _polygons(
    rng: np.random.Generator, x: np.ndarray, y: np.ndarray, radius: np.ndarray, elongation: np.ndarray, irregular: float
) -> np.ndarray:
    """``int32`` ``(n, vertices, 2)`` outlines for :func:`cv2.fillPoly`: ellipses with random harmonics.

    Semi-axes ``radius * (1 +- elongation)``, random orientation, harmonics of
    orders 2-4 of amplitude about ``irregular``; all drawn at once.
    """
    n = len(x)
    t = np.linspace(0.0, 2.0 * np.pi, _VERTICES, endpoint=False)
    orientation = rng.uniform(0.0, np.pi, size=(n, 1))
    amps = rng.normal(0.0, irregular, size=(n, 3, 1))
    phases = rng.uniform(0.0, 2.0 * np.pi, size=(n, 3, 1))
    wobble = 1.0 + (amps * np.cos(np.arange(2, 5)[None, :, None] * t[None, None, :] + phases)).sum(axis=1)
    a = (radius * (1.0 + elongation))[:, None] * wobble
    b = (radius * (1.0 - elongation))[:, None] * wobble
    u, v = a * np.cos(t), b * np.sin(t)
    c, s = np.cos(orientation), np.sin(orientation)
    px = x[:, None] + u * c - v * s - 0.5  # cv2 puts pixel centres on integers, we on half-integers
    py = y[:, None] + u * s + v * c - 0.5
    return np.rint(np.stack([px, py], axis=2) * (1 << _POLYGON_SHIFT)).astype(np.int32)


def _fill(canvas: np.ndarray, polygons: np.ndarray, values: np.ndarray) -> None:
    """Fill each outline with its value (0-255), anti-aliased, later ones on top."""
    for polygon, value in zip(polygons, values.tolist()):
        cv2.fillPoly(canvas, [polygon], int(value), lineType=cv2.LINE_AA, shift=_POLYGON_SHIFT)


def _hex_grid(rng: np.random.Generator, size: int, spacing: float, jitter: float) -> tuple[np.ndarray, np.ndarray]:
    """Centres of a jittered hexagonal packing over a ``size`` square (and a spacing beyond its edges)."""
    step_y = spacing * math.sqrt(3.0) / 2.0
    n_x, n_y = int(size / spacing) + 3, int(size / step_y) + 3
    gx, gy = np.meshgrid(np.arange(n_x, dtype=np.float64), np.arange(n_y, dtype=np.float64))
    x = (gx + 0.5 * (gy % 2) - 1.0) * spacing
    y = (gy - 1.0) * step_y
    offset = rng.uniform(0.0, spacing, size=2)
    shake = rng.uniform(-jitter, jitter, size=(2,) + x.shape) * spacing
    return (x + offset[0] + shake[0]).ravel(), (y + offset[1] + shake[1]).ravel()


def _sample(field: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``field`` at the pixels holding points ``(x, y)`` (clamped to the image)."""
    size = field.shape[0]
    return field[np.clip(y.astype(np.int64), 0, size - 1), np.clip(x.astype(np.int64), 0, size - 1)]


def _blob_region(rng: np.random.Generator, size: int, fraction: float, margin: float, width: float) -> np.ndarray:
    """A smooth blob-shaped ``bool`` region covering ``fraction`` of the square (to the pixel).

    Low-frequency noise plus a bump of standard deviation ``width`` (of the
    side) at a random centre at least ``margin`` of the side inside the edges,
    thresholded at the quantile that leaves the fraction above it.
    """
    s = float(size)
    field = 0.6 * smooth_noise(rng, (size, size), 0.18 * s)
    bx, by = rng.uniform(margin * s, (1.0 - margin) * s, size=2).tolist()
    coords = np.arange(size, dtype=np.float32) + np.float32(0.5)
    d2 = ((coords - np.float32(bx)) ** 2)[None, :] + ((coords - np.float32(by)) ** 2)[:, None]
    field = field + 2.0 * np.exp(d2 * np.float32(-1.0 / (2.0 * (width * s) ** 2)))
    n = size * size
    k = min(n - 1, int(round((1.0 - fraction) * n)))
    threshold = np.partition(field.ravel(), k)[k]
    return field >= threshold


def _tumour_region(rng: np.random.Generator, size: int) -> np.ndarray:
    """The tumour's ``bool`` region: a small focus (5-12 % of the patch, a fifth of the tumours, centred
    anywhere, often near an edge), a medium one (10-50 %, 35 %) or most of the patch (50-100 %, 45 %)."""
    kind = rng.random()
    if kind < 0.2:
        return _blob_region(rng, size, rng.uniform(0.05, 0.12), 0.03, 0.12)
    if kind < 0.55:
        return _blob_region(rng, size, rng.uniform(0.1, 0.5), 0.1, 0.25)
    return _blob_region(rng, size, rng.uniform(0.5, 1.0), 0.15, 0.35)


def _draw_lymph_node_stain(rng: np.random.Generator) -> _HeStain:
    """:func:`_draw_he` with the wider spread of a multi-centre collection: stain strength and hue, and focus
    (a quarter of the patches visibly soft)."""
    hematoxylin = _OD_HEMATOXYLIN * np.exp(rng.normal(0.0, 0.08, size=3)) * rng.uniform(0.75, 1.25)
    eosin = _OD_EOSIN * np.exp(rng.normal(0.0, 0.1, size=3)) * rng.uniform(0.65, 1.3)
    background = _HE_BACKGROUND * rng.uniform(0.93, 1.0) * np.exp(rng.normal(0.0, 0.015, size=3))
    blur = rng.uniform(0.0006, 0.002) if rng.random() < 0.75 else rng.uniform(0.002, 0.005)
    return _HeStain(_vec(hematoxylin), _vec(eosin), _vec(np.clip(background, 0, 255)), blur, rng.uniform(0.8, 2.5))


@dataclass
class _Canvases:
    """The ``uint8`` layers a lymph-node patch is drawn on (0-255 for densities 0-2.5, or opacity 0-1)."""

    nuclei: np.ndarray  # haematoxylin of nuclear interiors
    rims: np.ndarray  # darker membranes of vesicular nuclei
    nucleoli: np.ndarray
    cytoplasm: np.ndarray  # eosin of cell bodies (tumour cells, histiocytes)
    clear: np.ndarray  # opacity of macrophages' pale bodies, which hide the tissue behind them


_UNIT = 255.0 / 2.5


def _vesicular(
    rng: np.random.Generator,
    canvases: _Canvases,
    x: np.ndarray,
    y: np.ndarray,
    radius: np.ndarray,
    elongation: np.ndarray,
    irregular: float,
    density: np.ndarray,
    rim: float,
    nucleolus_share: float,
    peripheral: bool,
) -> None:
    """Draw open-chromatin nuclei: interiors of ``density``, membranes about ``rim`` denser, and in a
    ``nucleolus_share`` of them one to three nucleoli (near the centre, or near the membrane if ``peripheral``)."""
    n = len(x)
    size = canvases.nuclei.shape[0]
    polygons = _polygons(rng, x, y, radius, elongation, irregular)
    _fill(canvases.nuclei, polygons, np.clip(density * _UNIT, 0, 255))
    rim_width = max(1, int(round(0.004 * size)))
    rim_values = (rim * rng.uniform(0.7, 1.1, size=n) * _UNIT).tolist()
    for polygon, value in zip(polygons, rim_values):
        cv2.polylines(canvases.rims, [polygon], True, int(value), rim_width, cv2.LINE_AA, _POLYGON_SHIFT)
    counts = rng.choice([1, 1, 2, 3], size=n) * (rng.random(n) < nucleolus_share)
    owner = np.repeat(np.arange(n), counts)
    angle = rng.uniform(0.0, 2.0 * np.pi, size=len(owner))
    u = rng.random(len(owner))
    reach = radius[owner] * (0.5 + 0.2 * u if peripheral else 0.45 * np.sqrt(u))
    nx, ny = x[owner] + reach * np.cos(angle), y[owner] + reach * np.sin(angle)
    nr = radius[owner] * rng.uniform(0.13, 0.22, size=len(owner))
    _fill(canvases.nucleoli, _polygons(rng, nx, ny, nr, np.zeros(len(owner)), 0.02), np.full(len(owner), 1.4 * _UNIT))


def _points_in(rng: np.random.Generator, region: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` random points (pixel centres jittered within the pixel) inside ``region``."""
    size = region.shape[0]
    pixels = np.flatnonzero(region)
    where = rng.choice(pixels, size=count) if len(pixels) and count else np.zeros(0, np.int64)
    jitter = rng.random((2, len(where)))
    return (where % size).astype(np.float64) + jitter[0], (where // size).astype(np.float64) + jitter[1]


def _germinal_centre(rng: np.random.Generator, canvases: _Canvases, region: np.ndarray, r_lymph: float) -> None:
    """Tingible-body macrophages (pale bodies holding dark apoptotic debris) scattered over ``region``:
    the "starry sky" of a reactive germinal centre. Its centroblasts are drawn with the lymphocytes."""
    count = int(rng.uniform(0.5, 1.0) * region.sum() / (np.pi * (7.0 * r_lymph) ** 2) + rng.random())
    mx, my = _points_in(rng, region, count)
    body = r_lymph * rng.uniform(2.4, 3.6, size=count)
    _fill(canvases.clear, _polygons(rng, mx, my, body, rng.uniform(0.0, 0.25, size=count), 0.08), np.full(count, 255))
    # A pale nucleus near the edge of each, and two to seven dense round apoptotic bodies.
    angle = rng.uniform(0.0, 2.0 * np.pi, size=count)
    ox, oy = mx + 0.55 * body * np.cos(angle), my + 0.55 * body * np.sin(angle)
    _fill(canvases.nuclei, _polygons(rng, ox, oy, 1.2 * r_lymph * np.ones(count), np.full(count, 0.25), 0.05),
          rng.uniform(0.5, 0.75, size=count) * _UNIT)
    debris = rng.integers(2, 8, size=count)
    owner = np.repeat(np.arange(count), debris)
    angle = rng.uniform(0.0, 2.0 * np.pi, size=len(owner))
    reach = body[owner] * 0.5 * np.sqrt(rng.random(len(owner)))
    dx, dy = mx[owner] + reach * np.cos(angle), my[owner] + reach * np.sin(angle)
    dr = r_lymph * rng.uniform(0.3, 0.75, size=len(owner))
    _fill(canvases.nuclei, _polygons(rng, dx, dy, dr, np.zeros(len(owner)), 0.03),
          rng.uniform(2.0, 2.5, size=len(owner)) * _UNIT)


def render_tissue_patch(rng: np.random.Generator, tumour: bool, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw one H&E lymph-node patch, ``(image, mask)``: ``uint8`` ``(size, size, 3)`` RGB and ``bool`` ``(size, size)``.

    Lymphoid tissue, in about a third of the patches (of either class) with a
    benign tumour-like area (a germinal centre or a sinus with histiocytes);
    with ``tumour``, a smooth blob of metastatic carcinoma (see the module
    docstring) covering 5-100 % of the patch, where ``mask`` is True (all
    False for a normal patch, whatever it shows).

    Raises
    ------
    ValueError
        If ``size`` is below 32.
    """
    _check_size(size)
    s = float(size)
    stain = _draw_lymph_node_stain(rng)
    shape = (size, size)
    mask = _tumour_region(rng, size) if tumour else np.zeros(shape, bool)
    # A benign look-alike (0 none, 1 germinal centre, 2 sinus with histiocytes), outside the tumour.
    mimic_kind = int(rng.choice(3, p=[0.64, 0.18, 0.18]))
    mimic = _blob_region(rng, size, rng.uniform(0.1, 0.55), 0.1, 0.28) & ~mask if mimic_kind else np.zeros(shape, bool)
    centre = mimic if mimic_kind == 1 else np.zeros(shape, bool)
    sinus = mimic if mimic_kind == 2 else np.zeros(shape, bool)

    # The tumour's look: how atypical (1: large, pale, pleomorphic, nucleolated nuclei; 0: small, darker,
    # bland ones, near the lymphocytes), and cohesive nests in stroma or single cells among lymphocytes.
    cohesive = rng.random() < 0.85
    atypia = 1.0 - (0.6 if cohesive else 0.4) * rng.random() ** 2

    # -- Fields: lymphoid density, white gaps, tumour nests ------------------- #
    crowd = smooth_noise(rng, shape, 0.08 * s)  # denser and looser lymphoid areas
    gaps = smooth_noise(rng, shape, 0.05 * s)
    gap_level = rng.uniform(1.5, 2.3)
    nests = smooth_noise(rng, shape, 0.045 * s)
    nest_level = rng.uniform(-1.6, -0.2)  # nests cover about 55-95 % of a cohesive tumour
    in_nest = mask & (nests > nest_level) if cohesive else np.zeros(shape, bool)
    # Collagen: noise stretched four-fold along one axis, then wavy (streaks along the rows or columns).
    fibres = smooth_noise(rng, (size, max(2, size // 4)), 1.0)
    fibres = cv2.resize(fibres, shape, interpolation=cv2.INTER_CUBIC)
    if rng.random() < 0.5:
        fibres = np.ascontiguousarray(fibres.T)
    fine = smooth_noise(rng, shape, 0.004 * s)

    canvases = _Canvases(*(np.zeros(shape, np.uint8) for _ in range(5)))
    r_lymph = s * 0.022 * rng.uniform(0.85, 1.15)  # magnification varies a little between scanners
    if mimic_kind == 1:
        _germinal_centre(rng, canvases, centre, r_lymph)

    # -- Lymphocytes: small, round, dense, packed; thinned in look-alike areas, few in tumour ---- #
    lx, ly = _hex_grid(rng, size, 2.3 * r_lymph, 0.35)
    # Share of the packing kept: among single tumour cells, in a cohesive tumour's stroma (in its nests
    # hardly any), in a germinal centre, in a sinus; none under a macrophage.
    among_single, in_stroma, in_centre, in_sinus = rng.uniform([0.2, 0.1, 0.5, 0.1], [0.45, 0.5, 0.7, 0.3]).tolist()
    share = np.ones(len(lx))
    share[_sample(centre, lx, ly)] = in_centre
    share[_sample(sinus, lx, ly)] = in_sinus
    share[_sample(mask, lx, ly)] = in_stroma if cohesive else among_single
    share[_sample(in_nest, lx, ly)] = 0.03
    share[_sample(canvases.clear, lx, ly) >= 128] = 0.0
    keep_p = np.clip(rng.uniform(0.7, 0.9) + 0.25 * _sample(crowd, lx, ly), 0.3, 1.0) * share
    keep = rng.random(len(lx)) < keep_p
    lx, ly = lx[keep], ly[keep]
    n = len(lx)
    big = rng.random(n) < rng.uniform(0.02, 0.07)  # the odd histiocyte or endothelial cell: larger and paler
    radius = r_lymph * np.exp(rng.normal(0.0, 0.08, size=n)) * np.where(big, 1.6, 1.0)
    elongation = rng.uniform(0.0, 0.12, size=n) + np.where(big, 0.2, 0.0)
    density = rng.uniform(1.6, 2.1, size=n) * np.where(big, 0.45, 1.0)
    _fill(canvases.nuclei, _polygons(rng, lx, ly, radius, elongation, 0.03), np.clip(density * _UNIT, 0, 255))

    # -- Germinal centre: centroblasts, larger and paler, with nucleoli at the membrane --------- #
    if mimic_kind == 1:
        cx, cy = _hex_grid(rng, size, 2.8 * r_lymph, 0.4)
        kept = rng.random(len(cx)) < rng.uniform(0.3, 0.55)
        keep = _sample(centre, cx, cy) & (_sample(canvases.clear, cx, cy) < 128) & kept
        cx, cy = cx[keep], cy[keep]
        n = len(cx)
        _vesicular(rng, canvases, cx, cy, r_lymph * rng.uniform(1.3, 1.75) * np.exp(rng.normal(0.0, 0.1, size=n)),
                   rng.uniform(0.0, 0.18, size=n), 0.04, rng.uniform(0.6, 1.0, size=n), rng.uniform(0.25, 0.45),
                   rng.uniform(0.4, 0.8), True)

    # -- Sinus: histiocytes, large pale oval nuclei in abundant pale pink cytoplasm -------------- #
    if mimic_kind == 2:
        hx, hy = _hex_grid(rng, size, 4.6 * r_lymph, 0.4)
        keep = _sample(sinus, hx, hy) & (rng.random(len(hx)) < rng.uniform(0.45, 0.75))
        hx, hy = hx[keep], hy[keep]
        n = len(hx)
        body = r_lymph * rng.uniform(1.9, 2.6, size=n)
        _fill(canvases.cytoplasm, _polygons(rng, hx, hy, body, rng.uniform(0.0, 0.3, size=n), 0.1),
              rng.uniform(0.26, 0.38, size=n) * _UNIT)
        angle = rng.uniform(0.0, 2.0 * np.pi, size=n)
        ox, oy = hx + 0.3 * body * np.cos(angle), hy + 0.3 * body * np.sin(angle)
        _vesicular(rng, canvases, ox, oy, r_lymph * rng.uniform(1.3, 1.8, size=n), rng.uniform(0.1, 0.3, size=n), 0.08,
                   rng.uniform(0.45, 0.75, size=n), rng.uniform(0.1, 0.3), 0.2, False)

    # -- Tumour: nuclei from bland to large, pale, pleomorphic and nucleolated ----------------- #
    if tumour:
        r_tumour = r_lymph * (1.2 + 0.75 * atypia) * rng.uniform(0.92, 1.08)
        tx, ty = _hex_grid(rng, size, 2.15 * r_tumour * (1.0 if cohesive else 1.3), 0.3)
        keep = _sample(in_nest if cohesive else mask, tx, ty) & (rng.random(len(tx)) < (0.92 if cohesive else 0.5))
        tx, ty = tx[keep], ty[keep]
        n = len(tx)
        radius = r_tumour * np.exp(rng.normal(0.0, 0.07 + 0.11 * atypia, size=n))
        # Cell bodies: pink cytoplasm around each nucleus (filling the nests, a rim around single cells).
        _fill(canvases.cytoplasm, _polygons(rng, tx, ty, 1.55 * radius, rng.uniform(0.0, 0.2, size=n), 0.06),
              rng.uniform(0.25, 0.45, size=n) * _UNIT)
        density = rng.uniform(0.5, 0.8, size=n) + 0.7 * (1.0 - atypia)
        _vesicular(rng, canvases, tx, ty, radius, rng.uniform(0.05, 0.1 + 0.22 * atypia, size=n), 0.03 + 0.02 * atypia,
                   density, (0.15 + 0.85 * atypia) * rng.uniform(0.35, 0.6), 0.1 + 0.9 * atypia, False)
        # Spindle fibroblast nuclei in the stroma between the nests.
        stroma = mask & ~in_nest if cohesive else np.zeros(shape, bool)
        fx, fy = _hex_grid(rng, size, 5.0 * r_lymph, 0.45)
        keep = _sample(stroma, fx, fy) & (rng.random(len(fx)) < 0.5)
        fx, fy = fx[keep], fy[keep]
        n = len(fx)
        radius = r_lymph * rng.uniform(1.1, 1.5, size=n)
        _fill(canvases.nuclei, _polygons(rng, fx, fy, radius, rng.uniform(0.55, 0.7, size=n), 0.02), rng.uniform(1.2, 1.6, size=n) * _UNIT)

    # -- Densities --------------------------------------------------------------- #
    scale = np.float32(1.0 / _UNIT)
    nuc = canvases.nuclei.astype(np.float32) * scale
    nucleoli = canvases.nucleoli.astype(np.float32) * scale
    clear = canvases.clear.astype(np.float32) * np.float32(1.0 / 255.0)
    texture = 1.0 + 0.12 * fine
    h = nuc * texture + canvases.rims.astype(np.float32) * scale + nucleoli
    tumour_f = mask.astype(np.float32)
    nest_f = in_nest.astype(np.float32)
    stroma_f = tumour_f - nest_f if cohesive else np.zeros(shape, np.float32)
    sinus_f = sinus.astype(np.float32)
    lymphoid_f = 1.0 - nest_f - stroma_f - sinus_f
    # Faint pink among lymphocytes (a little more in a germinal centre), paler in sinuses; pink cytoplasm
    # in nests; denser fibrous pink in the tumour's stroma.
    e = lymphoid_f * (0.22 + 0.05 * crowd + 0.05 * centre.astype(np.float32)) + sinus_f * 0.12 + nest_f * 0.35
    e = e + stroma_f * rng.uniform(0.4, 0.55) * (1.0 + 0.15 * fibres)
    e = np.maximum(e, canvases.cytoplasm.astype(np.float32) * scale)
    e = e * (1.0 - clear) + clear * 0.14  # the macrophages' pale, slightly pink bodies
    e = e * (1.0 + 0.1 * fine) + 0.25 * nucleoli
    h = h + 0.07 * lymphoid_f * (1.0 - clear)  # haematoxylin haze of lymphoid tissue
    # White gaps: sinus lumen and tears, more of them (retraction) in some tumours.
    retraction = rng.uniform(0.0, 0.3)
    tissue = 1.0 - np.clip((gaps - np.float32(gap_level) + retraction * tumour_f + 0.3 * sinus_f) * 3.0, 0.0, 1.0)
    h = np.maximum(h * tissue, 0.0)
    e = np.maximum(e * tissue, 0.0)
    return _compose_he(rng, stain, h, e), mask


# --------------------------------------------------------------------------- #
# Kidney tiles
# --------------------------------------------------------------------------- #


def _draw_fronds(rng: np.random.Generator, size: int, cores: np.ndarray, vessels: np.ndarray) -> None:
    """Draw finger-like fibrovascular cores (random bent walks, tapering, with branches) and their capillaries."""
    s = float(size)
    shift = 1 << _POLYGON_SHIFT
    walks = []
    for _ in range(int(rng.integers(7, 13))):
        x, y = rng.uniform(-0.05 * s, 1.05 * s, size=2).tolist()
        walks.append((x, y, rng.uniform(0.0, 2.0 * np.pi), s * rng.uniform(0.4, 1.0), s * rng.uniform(0.025, 0.05), True))
    step = 0.02 * s
    while walks:
        x, y, heading, length, width, may_branch = walks.pop(0)
        turn = rng.normal(0.0, 0.05)  # a steady bend: gently curved fingers, rarely curling up
        n_steps = max(2, int(length / step))
        branch_at = int(rng.integers(1, n_steps)) if may_branch and rng.random() < 0.6 else -1
        for i in range(n_steps):
            heading += turn + rng.normal(0.0, 0.08)
            nx, ny = x + step * math.cos(heading), y + step * math.sin(heading)
            w = width * (1.0 - 0.45 * i / n_steps)  # tapering to a rounded tip
            p0 = (int(round(x * shift)), int(round(y * shift)))
            p1 = (int(round(nx * shift)), int(round(ny * shift)))
            cv2.line(cores, p0, p1, 255, max(1, int(round(2.0 * w))), cv2.LINE_8, _POLYGON_SHIFT)
            cv2.line(vessels, p0, p1, 255, max(1, int(round(0.3 * w))), cv2.LINE_AA, _POLYGON_SHIFT)
            if i == branch_at:
                side = 1.0 if rng.random() < 0.5 else -1.0
                walks.append((nx, ny, heading + side * rng.uniform(0.5, 1.1), length * rng.uniform(0.3, 0.5), w * 0.8, False))
            x, y = nx, ny
    # Papillae cut across: round cores.
    for _ in range(int(rng.integers(2, 8))):
        x, y = rng.uniform(0.0, s, size=2).tolist()
        r = s * rng.uniform(0.03, 0.06)
        centre = (int(round(x * shift)), int(round(y * shift)))
        cv2.circle(cores, centre, int(round(r * shift)), 255, -1, cv2.LINE_8, _POLYGON_SHIFT)
        cv2.circle(vessels, centre, int(round(0.3 * r * shift)), 255, -1, cv2.LINE_AA, _POLYGON_SHIFT)


def render_kidney_tile(rng: np.random.Generator, size: int) -> np.ndarray:
    """Draw one ``uint8`` ``(size, size, 3)`` H&E tile of papillary renal cell carcinoma (unlabelled).

    Fibrovascular cores are drawn as tapering bent strokes; the lining is the
    band within a cell height of them (a distance transform), its nuclei
    placed along the curve half-way through it; the rest is lumen.

    Raises
    ------
    ValueError
        If ``size`` is below 32.
    """
    _check_size(size)
    s = float(size)
    stain = _draw_he(rng)
    shape = (size, size)
    cores = np.zeros(shape, np.uint8)
    vessels = np.zeros(shape, np.uint8)
    _draw_fronds(rng, size, cores, vessels)
    core = cores > 0

    r_nucleus = s * rng.uniform(0.012, 0.016)
    height = r_nucleus * rng.uniform(3.2, 4.2)  # cuboidal cells: about two nuclei high
    outside = cv2.distanceTransform((~core).astype(np.uint8), cv2.DIST_L2, 5)
    lining = (~core) & (outside <= height)
    # Lining cytoplasm: eosinophilic (type 2-like) or pale lilac (type 1-like) per tile.
    eosinophilic = rng.random() < 0.5

    # -- Lining nuclei along the curve half-way through the lining --------------- #
    middle = (core | (outside <= 0.38 * height)).astype(np.uint8)  # nuclei nearer the base
    contours, _ = cv2.findContours(middle, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    spacing = max(2, int(round(2.0 * r_nucleus * rng.uniform(1.1, 1.35))))
    points = [c.reshape(-1, 2)[:: spacing] for c in contours if len(c) >= spacing]
    pts = np.concatenate(points).astype(np.float64) if points else np.zeros((0, 2))
    # Contour points on the image border are not on the lining.
    inner = (pts[:, 0] > 0) & (pts[:, 0] < size - 1) & (pts[:, 1] > 0) & (pts[:, 1] < size - 1)
    pts = pts[inner] + 0.5
    n = len(pts)
    nx = pts[:, 0] + rng.normal(0.0, 0.08 * r_nucleus, size=n)
    ny = pts[:, 1] + rng.normal(0.0, 0.08 * r_nucleus, size=n)
    radius = r_nucleus * np.exp(rng.normal(0.0, 0.1, size=n))
    nuclei = np.zeros(shape, np.uint8)
    unit = 255.0 / 2.5
    _fill(nuclei, _polygons(rng, nx, ny, radius, rng.uniform(0.0, 0.15, size=n), 0.03), rng.uniform(1.1, 1.5, size=n) * unit)

    # -- Foamy macrophages crowding some cores ------------------------------------ #
    foam = np.zeros(shape, np.uint8)
    walls = np.zeros(shape, np.uint8)  # cell membranes between crowded macrophages
    core_pixels = np.flatnonzero(core)
    if rng.random() < 0.5 and len(core_pixels):
        r_macro = s * rng.uniform(0.018, 0.026)
        count = int(rng.uniform(0.3, 0.8) * len(core_pixels) / (np.pi * r_macro**2))
        where = rng.choice(core_pixels, size=count)
        mx, my = (where % size).astype(np.float64) + 0.5, (where // size).astype(np.float64) + 0.5
        m_radius = r_macro * rng.uniform(0.85, 1.15, size=count)
        outlines = _polygons(rng, mx, my, m_radius, rng.uniform(0.0, 0.15, size=count), 0.04)
        _fill(foam, outlines, np.full(count, 255))
        cv2.polylines(walls, list(outlines), True, 255, 1, cv2.LINE_AA, _POLYGON_SHIFT)
        # A small dark nucleus off-centre in each.
        angle = rng.uniform(0.0, 2.0 * np.pi, size=count)
        ox, oy = mx + 0.4 * m_radius * np.cos(angle), my + 0.4 * m_radius * np.sin(angle)
        _fill(nuclei, _polygons(rng, ox, oy, 0.25 * m_radius, np.full(count, 0.1), 0.03), np.full(count, 1.5 * unit))
    foam_f = foam.astype(np.float32) * np.float32(1.0 / 255.0) * core
    walls_f = walls.astype(np.float32) * np.float32(1.0 / 255.0) * foam_f
    # Foamy cytoplasm: a pale mesh around small clear vacuoles.
    mesh = 1.0 - np.clip((smooth_noise(rng, shape, max(0.5, 0.0025 * s)) - 0.3) * 2.0, 0.0, 1.0)

    # -- Densities --------------------------------------------------------------- #
    fine = smooth_noise(rng, shape, 0.004 * s)
    streaks = smooth_noise(rng, shape, 0.01 * s)
    fluid = np.maximum(smooth_noise(rng, shape, 0.06 * s), 0.0)
    core_f = core.astype(np.float32)
    lining_f = lining.astype(np.float32)
    lumen_f = 1.0 - core_f - lining_f
    # Capillaries, seen only where they are cut open and hold red cells.
    vessel_f = vessels.astype(np.float32) * np.float32(1.0 / 255.0) * (core_f - foam_f) * np.clip(streaks + 0.3, 0.0, 1.0)
    stroma_e = (0.22 + 0.08 * streaks) * (1.0 - foam_f) + foam_f * 0.2 * mesh + walls_f * 0.25
    lining_e, lining_h = (0.55, 0.08) if eosinophilic else (0.3, 0.2)
    e = core_f * stroma_e + vessel_f * 0.6 + lining_f * lining_e * (1.0 + 0.1 * fine) + lumen_f * 0.05 * fluid
    h = (
        nuclei.astype(np.float32) * np.float32(1.0 / unit) * (1.0 + 0.15 * fine)
        + core_f * (0.05 + 0.03 * streaks) * (1.0 - foam_f)
        + foam_f * 0.07 * mesh
        + walls_f * 0.06
        + lining_f * lining_h
    )
    return _compose_he(rng, stain, np.maximum(h, 0.0), np.maximum(e, 0.0))
