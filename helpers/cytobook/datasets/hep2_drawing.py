"""Look-alike indirect immunofluorescence (IIF) images of HEp-2 cells for report 5's chapter.

Antinuclear antibodies bound to HEp-2 cells are shown by a green (FITC)
secondary antibody: the images hold signal in the green channel only, on a
dark background, with low contrast and grey levels, and a pattern that
depends on the antigen. None of the report's images may be redistributed, so
this module draws arrays that behave alike; :mod:`.hep2_synthetic` writes them
into the official layouts.

**A field** (:func:`render_field`) is a confluent monolayer: dozens of cells
on a jittered hexagonal grid (some gaps), each an irregular oval nucleus
(outline in polar coordinates) in a larger, fainter cytoplasm, 1-4 nucleoli
per nucleus, and about one cell in twenty in mitosis (a metaphase plate in a
rounded cell). A class name is turned into a :class:`Recipe` of *components*
through :func:`~cytobook.datasets.hep2.class_tokens` (a composite class such
as ``Mou CytoD PL7`` draws two patterns on the same cells):

* nuclear: ``homogeneous`` (the whole nucleus, finely textured, positive
  metaphase plate), ``speckled`` (many dots on a weaker nucleus, nucleoli
  spared; ``fine`` and ``coarse`` set the dot size, otherwise it varies per
  cell), ``dense fine speckled`` (DFS70: tiny dots of uneven density, positive
  plate), ``nucleolar`` (bright nucleoli; clumpy, smooth or punctate by
  antigen), ``centromere`` (30-70 sharp dots on a dark nucleus, aligned on the
  plate in mitosis), nuclear ``dots`` (3-15 larger dots), ``nuclear membrane``
  (a thin granular ring), ``spindle`` (the mitotic spindle, faint in interphase);
* cytoplasmic: diffuse ``cytoplasmic``, ``cytoplasmic dense`` (fine dense
  speckles), ``fibrous`` (straight or wavy filaments), ``golgi`` (perinuclear
  clumps on one side of the nucleus), cytoplasmic ``dots``, ``granular``,
  ``centrosome`` (one or two dots beside the nucleus), ``midbody``;
* modifiers on the cells' brightness: ``pleomorphic``/``heterogeneous``
  (varies widely between cells), ``atypical`` (a few cells much brighter),
  ``negative`` (hardly above the background).

Antigen names without a drawing of their own (``sae1``, ``pl7``, ``ssa``...)
set a *flavour*: fixed factors on dot size, dot density, diffuse level and
nucleolar sparing, derived from the name itself, so that ``mouchete SAE1``
and ``mouchete SSA`` differ consistently but subtly (the report's classifier
confused such neighbours most). Every parameter also varies per cell, and a
share of cells is weakly stained, so no single cue (mean brightness, dot count)
separates the classes.

**The field style** (:class:`FieldStyle`, class-independent) sets the
exposure (a wide spread between fields, as positive and intermediate wells),
the autofluorescence, the optical blur, the camera noise and a faint leak into
red and blue.

Each function consumes its random stream in a fixed order and computes in
``float32``: the same stream state and arguments give byte-identical arrays
(same NumPy and OpenCV on one platform).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import cv2
import numpy as np

from .drawing import AngleTable, local_grid
from .hep2 import class_tokens

__all__ = ["COMPONENTS", "FieldStyle", "Recipe", "recipe", "render_cell", "render_field"]

#: Components a recipe may hold (see the module's docstring).
COMPONENTS: tuple[str, ...] = (
    "homogeneous", "speckled", "dense fine speckled", "nucleolar", "centromere", "nuclear dots", "nuclear membrane",
    "spindle", "cytoplasmic", "cytoplasmic dense", "fibrous", "golgi", "cytoplasmic dots", "granular", "centrosome",
    "midbody",
)
#: Modifiers of the cells' brightness.
MODIFIERS: tuple[str, ...] = ("pleomorphic", "atypical", "negative")

# Labels of class_tokens that are drawn as such (``dots`` depends on ``cytoplasmic``, below).
_DIRECT = {"homogeneous", "speckled", "nucleolar", "centromere", "nuclear membrane", "cytoplasmic dense", "fibrous",
           "golgi", "granular", "centrosome", "midbody"}
# Antigens whose pattern is known: the components they imply (*our reading* of the ICAP patterns).
_IMPLIED: dict[str, tuple[str, ...]] = {
    "dfs70": ("dense fine speckled",),
    "ki67": ("nucleolar", "pleomorphic"),
    "pcna": ("speckled", "pleomorphic"),
    "msa2": ("spindle",), "msa3": ("spindle", "centrosome"), "numa2": ("spindle",),
    "numa1": ("speckled", "spindle"),
    "kinesin": ("spindle",),
    "vinculin": ("cytoplasmic dots", "fibrous"),
    "actin": ("fibrous",), "vimentin": ("fibrous",),
    "perichromin": ("nuclear membrane",),
    "apl": ("cytoplasmic dots",),
    "jo1": ("cytoplasmic dense",), "pl7": ("cytoplasmic dense",), "pl12": ("cytoplasmic dense",),
    "ej": ("cytoplasmic dense",), "srp": ("cytoplasmic dense",), "ribop": ("cytoplasmic dense",),
    "mda5": ("cytoplasmic",), "hmcoar": ("cytoplasmic",),
    "gw": ("cytoplasmic dots",), "somes": ("cytoplasmic dots",),
    "sp100": ("nuclear dots",), "p80": ("nuclear dots",),
    "thto": ("nucleolar",), "fibrillarin": ("nucleolar",), "rnapol": (),
}
# Labels that are neither drawn nor antigens: they only qualify others.
_QUALIFIERS = {"fine", "coarse", "dots", "cytoplasmic", "pleomorphic", "heterogeneous", "atypical", "negative"}

# 120 angles: nuclei are at most ~60 px across.
_OUTLINE = AngleTable(120)
#: Share of cells in mitosis.
MITOTIC_SHARE = 0.05
#: Share of weakly stained cells (a fifth to a half of their field's brightness).
WEAK_SHARE = 0.15
#: Share of the cells of an ``atypical`` class that are atypical, and their brightness against the others'
#: (2.2 against 0.45 of the field's; the report found 4 % of its MDA5 cells atypical, a share too small
#: to show among the few hundred cells of a generated class).
ATYPICAL_SHARE = 0.12
ATYPICAL_BRIGHTNESS = (2.2, 0.45)


@dataclass(frozen=True)
class Recipe:
    """What a class draws: its components, brightness modifiers and antigen flavour.

    Attributes
    ----------
    components
        Names from :data:`COMPONENTS`, drawn on every cell and summed.
    modifiers
        Names from :data:`MODIFIERS`.
    dot_size, density, diffuse, sparing
        The flavour: factors on dot size, dot count and diffuse level, and
        how dark nucleoli stay in nuclear patterns (0 unstained to 1 as the rest).
    nucleolar_style
        ``"clumpy"``, ``"smooth"`` or ``"punctate"`` nucleoli; ``None``: any, per cell.
    """

    components: tuple[str, ...]
    modifiers: tuple[str, ...] = ()
    dot_size: float = 1.0
    density: float = 1.0
    diffuse: float = 1.0
    sparing: float = 0.2
    nucleolar_style: str | None = None
    fine: bool | None = None  # speckles fine (True), coarse (False) or either per cell (None)


def recipe(class_name: str) -> Recipe:
    """The :class:`Recipe` of a class name (any layout's: ``Speckled``, ``fine_speckled``, ``Mou CytoD PL7``...)."""
    labels = class_tokens(class_name)
    components: list[str] = []
    modifiers: list[str] = []
    antigens = sorted(labels - _DIRECT - _QUALIFIERS)
    for label in sorted(labels & _DIRECT):
        components.append(label)
    if "dots" in labels:
        components.append("cytoplasmic dots" if "cytoplasmic" in labels else "nuclear dots")
    for antigen in antigens:
        for implied in _IMPLIED.get(antigen, ()):
            (modifiers if implied in MODIFIERS else components).append(implied)
    if "cytoplasmic" in labels and not any(c in components for c in ("cytoplasmic dense", "fibrous", "golgi",
                                                                      "cytoplasmic dots", "granular")):
        components.append("cytoplasmic")
    modifiers += sorted(labels & {"pleomorphic", "atypical", "negative"})
    if "heterogeneous" in labels:
        modifiers.append("pleomorphic")
    if "negative" in labels:
        components = ["homogeneous"]
    if not components:  # an antigen of unknown pattern: a speckled nucleus, flavoured by its name
        components = ["speckled"]
    flavour = np.random.default_rng(zlib.crc32(" ".join(antigens).encode()))
    dot_size, density, diffuse = np.exp(flavour.uniform(-0.3, 0.3, size=3))
    return Recipe(
        components=tuple(dict.fromkeys(components)),
        modifiers=tuple(dict.fromkeys(modifiers)),
        dot_size=float(dot_size) if antigens else 1.0,
        density=float(density) if antigens else 1.0,
        diffuse=float(diffuse) if antigens else 1.0,
        sparing=float(flavour.uniform(0.0, 0.5)) if antigens else 0.2,
        nucleolar_style=("clumpy" if "fibrillarin" in antigens else "punctate" if "rnapol" in antigens
                         else ("smooth", "clumpy", "punctate")[int(flavour.integers(3))] if antigens else None),
        fine=True if "fine" in labels else False if "coarse" in labels else None,
    )


@dataclass(frozen=True)
class FieldStyle:
    """Exposure and optics of one field (drawn by :meth:`draw`); nothing here depends on the class.

    Attributes
    ----------
    exposure
        Factor on the stained signal: fields differ up to five-fold (positive
        and intermediate wells, fading).
    autofluorescence
        Signal of unstained cells, relative to a stained nucleus.
    offset
        Camera offset on the 0-255 scale.
    blur
        Optical blur (Gaussian sigma) as a fraction of the nucleus radius.
    noise
        Camera noise: factor on the shot noise of the signal.
    leak
        Share of the green signal seen in red and blue (filter bleed-through).
    """

    exposure: float
    autofluorescence: float
    offset: float
    blur: float
    noise: float
    leak: float

    @classmethod
    def draw(cls, rng: np.random.Generator, intensity: str | None = None) -> FieldStyle:
        """Draw a style; ``intensity`` ``"positive"`` or ``"intermediate"`` restricts the exposure (MIVIA's levels)."""
        low, high = {"positive": (0.55, 1.1), "intermediate": (0.22, 0.5)}.get(intensity or "", (0.22, 1.1))
        return cls(
            exposure=float(math.exp(rng.uniform(math.log(low), math.log(high)))),
            autofluorescence=float(rng.uniform(0.03, 0.09)),
            offset=float(rng.uniform(4.0, 14.0)),
            blur=float(rng.uniform(0.03, 0.08)),
            noise=float(rng.uniform(0.6, 1.4)),
            leak=float(rng.uniform(0.0, 0.02)),
        )


# --------------------------------------------------------------------------- one cell


@dataclass
class _Cell:
    """Geometry of one cell in its pixel box: offsets, nucleus and cytoplasm fields."""

    rows: slice
    cols: slice
    dy: np.ndarray
    dx: np.ndarray
    radius: float  # nucleus radius, px
    nucleus: np.ndarray  # soft mask 0-1
    sdf: np.ndarray  # distance outside the nucleus outline, px (negative inside)
    cytoplasm: np.ndarray  # soft mask 0-1 of the cytoplasm (nucleus excluded)
    nucleoli: np.ndarray  # soft mask 0-1
    nucleoli_at: list[tuple[float, float, float]] = field(default_factory=list)
    mitotic: bool = False
    angle: float = 0.0


def _soft(sdf: np.ndarray) -> np.ndarray:
    return np.clip(np.float32(0.5) - sdf, 0.0, 1.0)


def _disc(dx: np.ndarray, dy: np.ndarray, x: float, y: float, r: float) -> np.ndarray:
    return _soft(np.sqrt((dx - np.float32(x)) ** 2 + (dy - np.float32(y)) ** 2) - np.float32(r))


def _make_cell(rng: np.random.Generator, cx: float, cy: float, radius: float, size: int, mitotic: bool) -> _Cell | None:
    angle = float(rng.uniform(0.0, math.pi))
    elongation = float(rng.uniform(1.0, 1.35))
    cyto_scale = float(rng.uniform(1.5, 1.9)) if not mitotic else float(rng.uniform(1.2, 1.4))
    ripple = _OUTLINE.harmonics(rng, np.array([0.05, 0.03, 0.02], dtype=np.float64), 2)
    cyto_ripple = _OUTLINE.harmonics(rng, np.array([0.12, 0.08, 0.05], dtype=np.float64), 2)
    reach = radius * cyto_scale * 1.4 + 2.0
    grid = local_grid(cx, cy, reach, size)
    if grid is None:
        return None
    rows, cols, dy, dx = grid
    # An ellipse in polar form: r(theta) = radius / sqrt((cos/a)^2 + (sin/b)^2), then rippled.
    a, b = radius * math.sqrt(elongation), radius / math.sqrt(elongation)
    theta = _OUTLINE.angles - angle
    ellipse = 1.0 / np.sqrt((np.cos(theta) / a) ** 2 + (np.sin(theta) / b) ** 2)
    if mitotic:  # the nucleus is gone: the plate is drawn by the components
        nucleus_table = ellipse * 0.0 + 1e-3
    else:
        nucleus_table = ellipse * (1.0 + ripple)
    cyto_table = radius * cyto_scale * (1.0 + cyto_ripple)
    rho, (r_n, r_c) = _OUTLINE.interpolate(dx, dy, [nucleus_table.astype(np.float32), cyto_table.astype(np.float32)])
    sdf = rho - r_n
    nucleus = _soft(sdf) if not mitotic else np.zeros_like(rho)
    cytoplasm = np.clip(_soft(rho - r_c) - nucleus, 0.0, 1.0)
    nucleoli = np.zeros_like(rho)
    spots = []
    if not mitotic:
        for _ in range(int(rng.integers(1, 5))):
            t, u = rng.uniform(0.0, 2.0 * math.pi), math.sqrt(rng.uniform(0.0, 1.0)) * 0.5
            x, y = u * a * math.cos(t + angle), u * b * math.sin(t + angle)
            r = radius * float(rng.uniform(0.1, 0.18))
            nucleoli = np.maximum(nucleoli, _disc(dx, dy, x, y, r))
            spots.append((x, y, r))
    return _Cell(rows, cols, dy, dx, radius, nucleus, sdf, cytoplasm, nucleoli, spots, mitotic, angle)


def _points(rng: np.random.Generator, weight: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` pixel positions drawn with probability ``weight`` (a box array)."""
    flat = weight.ravel().astype(np.float64)
    total = flat.sum()
    if count <= 0 or total <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    index = rng.choice(flat.size, size=count, p=flat / total)
    return index // weight.shape[1], index % weight.shape[1]


def _spots(rng: np.random.Generator, weight: np.ndarray, count: int, sigma: float, spread: float = 0.3) -> np.ndarray:
    """Gaussian spots of peak about 1 (brightness spread by ``spread``), placed as :func:`_points`."""
    out = np.zeros(weight.shape, np.float32)
    ys, xs = _points(rng, weight, count)
    amplitude = np.exp(rng.normal(0.0, spread, size=len(ys))).astype(np.float32)
    np.add.at(out, (ys, xs), amplitude * np.float32(2.0 * math.pi * sigma * sigma))
    return cv2.GaussianBlur(out, (0, 0), max(sigma, 0.4), borderType=cv2.BORDER_CONSTANT)


def _texture(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    noise = rng.standard_normal(shape, dtype=np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), max(sigma, 0.4))
    std = float(noise.std())
    return noise / std if std > 0 else noise


def _plate(cell: _Cell) -> np.ndarray:
    """Soft mask of a metaphase plate across the rounded mitotic cell."""
    c, s = math.cos(cell.angle), math.sin(cell.angle)
    u = cell.dx * np.float32(c) + cell.dy * np.float32(s)
    v = -cell.dx * np.float32(s) + cell.dy * np.float32(c)
    a, b = cell.radius * 0.95, cell.radius * 0.28
    return _soft((np.sqrt((u / a) ** 2 + (v / b) ** 2) - 1.0) * np.float32(b))


def _component(rng: np.random.Generator, name: str, cell: _Cell, rec: Recipe) -> np.ndarray:
    """One component's signal on one cell (peak about 1)."""
    r = cell.radius
    shape = cell.nucleus.shape
    # Each cell varies around the class's flavour: overlapping ranges between classes.
    size = rec.dot_size * float(np.exp(rng.normal(0.0, 0.15)))
    density = rec.density * float(np.exp(rng.normal(0.0, 0.25)))
    nucleus_area = float(cell.nucleus.sum())
    spared = cell.nucleus * (1.0 - (1.0 - rec.sparing) * cell.nucleoli)
    if cell.mitotic:
        plate = _plate(cell)
        glow = cell.cytoplasm
        if name in ("homogeneous", "dense fine speckled"):
            return plate * np.float32(1.1) * (1 + 0.15 * _texture(rng, shape, 0.6)) + glow * np.float32(0.05)
        if name == "centromere":
            return _spots(rng, plate, int(rng.integers(30, 70)), 0.05 * r, 0.2)
        if name == "spindle":
            c, s = math.cos(cell.angle + math.pi / 2), math.sin(cell.angle + math.pi / 2)
            u = cell.dx * np.float32(c) + cell.dy * np.float32(s)
            v = -cell.dx * np.float32(s) + cell.dy * np.float32(c)
            body = np.clip(1.0 - np.abs(v) / (0.45 * r * (1.0 - np.abs(u) / (1.1 * r)) + 1e-3), 0.0, 1.0)
            return body * (np.abs(u) < 1.1 * r) * np.float32(0.8)
        if name in ("speckled", "nucleolar", "nuclear dots", "nuclear membrane"):
            return glow * np.float32(0.25) + plate * np.float32(0.08)
        # Cytoplasmic components are drawn as in interphase below.
    if name == "homogeneous":
        base = cell.nucleus * (1.0 - 0.3 * cell.nucleoli)
        grain = float(rng.uniform(0.05, 0.3))  # the most textured come near fine speckles
        return base * (np.float32(0.85) + np.float32(grain) * _texture(rng, shape, float(rng.uniform(0.04, 0.1)) * r))
    if name in ("speckled", "dense fine speckled"):
        fine = rec.fine if rec.fine is not None else bool(rng.random() < 0.5)
        if name == "dense fine speckled":
            sigma, count, base = 0.035 * r * size, 3.0, 0.3
            weight = spared * np.exp(0.8 * _texture(rng, shape, 0.35 * r))  # uneven density
        else:
            sigma, count, base = ((0.035, 2.2, rng.uniform(0.2, 0.55)) if fine else (0.065, 0.55, rng.uniform(0.08, 0.35)))
            sigma *= r * size
            weight = spared
        n = int(count * density * nucleus_area / (r * r) * 12)
        return base * rec.diffuse * spared + _spots(rng, weight, n, sigma, 0.35)
    if name == "nucleolar":
        out = np.zeros(shape, np.float32)
        for x, y, radius in cell.nucleoli_at:
            disc = _disc(cell.dx, cell.dy, x, y, radius * 1.25)
            style = rec.nucleolar_style or ("smooth", "clumpy", "punctate")[int(rng.integers(3))]
            if style == "clumpy":
                out += _spots(rng, disc, int(rng.integers(4, 9)), 0.05 * r * size, 0.3) * 0.9
            elif style == "punctate":
                out += _spots(rng, disc, int(rng.integers(2, 5)), 0.035 * r * size, 0.3)
            else:
                out += cv2.GaussianBlur(disc, (0, 0), 0.04 * r)
        return out + cell.nucleus * np.float32(rng.uniform(0.05, 0.25) * rec.diffuse)
    if name == "centromere":
        n = int(rng.integers(30, 70) * min(density, 1.5))
        return _spots(rng, cell.nucleus * (1.0 - cell.nucleoli), n, 0.04 * r * size, 0.2) \
            + cell.nucleus * np.float32(rng.uniform(0.02, 0.12))
    if name == "nuclear dots":
        n = int(rng.integers(3, 16) * density)
        return _spots(rng, cell.nucleus, n, 0.08 * r * size, 0.3) + cell.nucleus * np.float32(0.05)
    if name == "nuclear membrane":
        width = float(rng.uniform(0.04, 0.09)) * r * size
        ring = np.exp(-(cell.sdf / np.float32(width)) ** 2).astype(np.float32)
        grain = np.clip(1.0 + 0.35 * _texture(rng, shape, 0.05 * r), 0.2, None)
        return ring * grain + cell.nucleus * np.float32(rng.uniform(0.1, 0.5) * rec.diffuse)
    if name == "spindle":
        return cell.nucleus * np.float32(0.05)  # interphase: faint
    if name == "cytoplasmic":
        return cell.cytoplasm * (np.float32(0.5 * rec.diffuse) + np.float32(0.12) * _texture(rng, shape, 0.15 * r))
    if name == "cytoplasmic dense":
        n = int(3.0 * density * float(cell.cytoplasm.sum()) / (r * r) * 12)
        return _spots(rng, cell.cytoplasm, n, 0.035 * r * size, 0.3) + cell.cytoplasm * np.float32(0.25 * rec.diffuse)
    if name == "fibrous":
        out = np.zeros(shape, np.float32)
        wavy = rng.random() < 0.5 * rec.diffuse
        base_angle = rng.uniform(0.0, math.pi)
        for _ in range(int(rng.integers(6, 14) * density)):
            t = base_angle + rng.normal(0.0, 0.25 if not wavy else 0.9)
            offset = rng.uniform(-1.6, 1.6) * r
            c, s = math.cos(t), math.sin(t)
            dist = cell.dx * np.float32(-s) + cell.dy * np.float32(c) - np.float32(offset)
            if wavy:
                along = cell.dx * np.float32(c) + cell.dy * np.float32(s)
                dist = dist + np.float32(0.15 * r) * np.sin(along / np.float32(0.4 * r))
            out += np.exp(-(dist / np.float32(0.035 * r * size)) ** 2) * np.float32(rng.uniform(0.5, 1.0))
        return np.clip(out, 0.0, 1.2) * cell.cytoplasm
    if name == "golgi":
        side = rng.uniform(0.0, 2.0 * math.pi)
        along = cell.dx * np.float32(math.cos(side)) + cell.dy * np.float32(math.sin(side))
        near = np.exp(-((cell.sdf - np.float32(0.25 * r)) / np.float32(0.3 * r)) ** 2) * (along > 0.2 * r)
        weight = near * np.clip(cell.cytoplasm + 0.3 * cell.nucleus, 0.0, 1.0)
        return _spots(rng, weight, int(rng.integers(5, 14) * density), 0.08 * r * size, 0.4) \
            + cell.cytoplasm * np.float32(0.05)
    if name == "cytoplasmic dots":
        return _spots(rng, cell.cytoplasm, int(rng.integers(4, 20) * density), 0.06 * r * size, 0.3)
    if name == "granular":
        return _spots(rng, cell.cytoplasm, int(rng.integers(25, 60) * density), 0.07 * r * size, 0.5) \
            + cell.cytoplasm * np.float32(0.1)
    if name == "centrosome":
        t = rng.uniform(0.0, 2.0 * math.pi)
        weight = _disc(cell.dx, cell.dy, 1.25 * r * math.cos(t), 1.25 * r * math.sin(t), 0.15 * r)
        return _spots(rng, weight, int(rng.integers(1, 3)), 0.06 * r, 0.1) * np.float32(1.2)
    if name == "midbody":
        if rng.random() > 0.25:
            return cell.cytoplasm * np.float32(0.03)
        t = rng.uniform(0.0, 2.0 * math.pi)
        x, y = 1.4 * r * math.cos(t), 1.4 * r * math.sin(t)
        weight = _disc(cell.dx, cell.dy, x, y, 0.12 * r)
        return _spots(rng, weight, 3, 0.06 * r, 0.1)
    raise ValueError(f"unknown component {name!r}; expected one of {', '.join(COMPONENTS)}")


def _cell_signal(rng: np.random.Generator, cell: _Cell, rec: Recipe) -> np.ndarray:
    """The stained signal of one cell, its bright parts at about the cell's brightness (class-independent)."""
    signal = np.zeros(cell.nucleus.shape, np.float32)
    for name in rec.components:
        signal += _component(rng, name, cell, rec)
    peak = float(np.percentile(signal, 99.5)) if signal.size else 0.0
    # Exposure-like scaling: the bright parts of a cell at its brightness. Not for mitotic cells, whose faint
    # glow (in most patterns) would become as bright as a stained nucleus.
    if peak > 0 and not cell.mitotic:
        signal /= np.float32(peak)
    brightness = float(np.exp(rng.normal(0.0, 0.2)))
    if rng.random() < WEAK_SHARE:
        brightness *= float(rng.uniform(0.2, 0.5))
    if "pleomorphic" in rec.modifiers:
        brightness *= float(np.exp(rng.uniform(-1.6, 0.3)))
    if "atypical" in rec.modifiers:
        brightness *= ATYPICAL_BRIGHTNESS[0] if rng.random() < ATYPICAL_SHARE else ATYPICAL_BRIGHTNESS[1]
    if "negative" in rec.modifiers:
        brightness *= 0.08
    return signal * np.float32(brightness)


# --------------------------------------------------------------------------- fields and cells


def _layout(rng: np.random.Generator, size: int, radius: float, centred: bool) -> list[tuple[float, float, float]]:
    """Cell centres and nucleus radii on a jittered hexagonal grid (a confluent monolayer with gaps)."""
    spacing = 2.0 * radius * float(rng.uniform(1.45, 1.75))
    origin = (size / 2.0, size / 2.0) if centred else (rng.uniform(0, spacing), rng.uniform(0, spacing))
    cells = []
    n_rows = int(size / (spacing * 0.866)) + 3
    n_cols = int(size / spacing) + 3
    for i in range(-n_rows, n_rows + 1):
        for j in range(-n_cols, n_cols + 1):
            x = origin[0] + (j + 0.5 * (i % 2)) * spacing
            y = origin[1] + i * spacing * 0.866
            if not (-radius * 2 < x < size + radius * 2 and -radius * 2 < y < size + radius * 2):
                continue
            centre = centred and i == 0 and j == 0
            jitter = rng.normal(0.0, 0.12 * spacing, size=2)
            keep = rng.random() > 0.15
            r = radius * float(np.exp(rng.normal(0.0, 0.1)))
            if centre:
                cells.insert(0, (x, y, radius * float(rng.uniform(0.92, 1.08))))
            elif keep:
                cells.append((x + float(jitter[0]), y + float(jitter[1]), r))
    return cells


def _draw(rng: np.random.Generator, rec: Recipe, size: int, radius: float, style: FieldStyle,
          centred: bool) -> np.ndarray:
    """The green signal of a field on the 0-255 scale, ``float32`` (before rounding)."""
    stained = np.zeros((size, size), np.float32)
    autofluorescence = np.zeros((size, size), np.float32)
    for index, (cx, cy, r) in enumerate(_layout(rng, size, radius, centred)):
        # The centred cell of a single-cell crop is never mitotic: I3A's cells are interphase cells.
        mitotic = not (centred and index == 0) and rng.random() < MITOTIC_SHARE
        cell = _make_cell(rng, cx, cy, r, size, mitotic)
        if cell is None:
            continue
        stained[cell.rows, cell.cols] += _cell_signal(rng, cell, rec)
        autofluorescence[cell.rows, cell.cols] += cell.cytoplasm * np.float32(0.6) + cell.nucleus
    signal = stained * np.float32(style.exposure) + autofluorescence * np.float32(style.autofluorescence)
    signal = cv2.GaussianBlur(signal, (0, 0), max(0.4, style.blur * radius))
    level = np.float32(style.offset) + np.float32(170.0) * signal
    shot = np.sqrt(np.maximum(level, 0.0)) * np.float32(0.55 * style.noise)
    return level + shot * rng.standard_normal((size, size), dtype=np.float32) \
        + np.float32(1.5) * rng.standard_normal((size, size), dtype=np.float32)


def render_field(rng: np.random.Generator, class_name: str, size: int, radius: float,
                 style: FieldStyle | None = None) -> np.ndarray:
    """An IIF field of class ``class_name``: ``uint8`` RGB ``(size, size, 3)``, the signal in green.

    Parameters
    ----------
    rng
        The field's random stream.
    class_name
        Any class name :func:`recipe` reads (composite ones draw all their patterns).
    size
        Side in pixels (at least 32).
    radius
        Median nucleus radius in pixels (at least 4): a field holds about
        ``(size / (3.2 * radius))**2`` cells.
    style
        Exposure and optics; drawn from ``rng`` when ``None``.
    """
    _check(size, radius)
    style = style or FieldStyle.draw(rng)
    green = np.clip(np.rint(_draw(rng, recipe(class_name), size, radius, style, centred=False)), 0, 255)
    leak = np.clip(np.rint(green * np.float32(style.leak)), 0, 255)
    return np.stack([leak, green, leak], axis=-1).astype(np.uint8)


def render_cell(rng: np.random.Generator, class_name: str, size: int, style: FieldStyle | None = None, *,
                stretch: bool = True, fill: float = 0.72) -> np.ndarray:
    """A single-cell crop of class ``class_name``: ``uint8`` grayscale ``(size, size)``, as ICPR's cell images.

    The cell is centred, its nucleus about ``fill`` of the side across, with
    parts of its neighbours at the edges. ``stretch`` maps the crop's range
    to 0-255, as I3A's released cells are; otherwise the camera's levels are kept (MIVIA).
    """
    _check(size, 4.0, minimum=16)
    style = style or FieldStyle.draw(rng)
    radius = size * fill / 2.0
    margin = int(round(radius * 1.2))
    big = size + 2 * margin
    signal = _draw(rng, recipe(class_name), big, radius, style, centred=True)[margin:margin + size, margin:margin + size]
    if stretch:
        low, high = float(signal.min()), float(signal.max())
        signal = (signal - np.float32(low)) * np.float32(255.0 / max(high - low, 1e-3))
    return np.clip(np.rint(signal), 0, 255).astype(np.uint8)


def _check(size: int, radius: float, minimum: int = 32) -> None:
    if size < minimum:
        raise ValueError(f"size must be at least {minimum} pixels, got {size}")
    if radius < 4:
        raise ValueError(f"nucleus radius must be at least 4 pixels, got {radius}")
