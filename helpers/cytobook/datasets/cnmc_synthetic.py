"""A deterministic, seeded generator of look-alike C-NMC 2019 data in the official layout.

The real release (ALL lymphoblasts against normal "HEM" B cells) may not be
redistributed, yet every notebook has to run without it. This module writes a
tree that a loader cannot tell apart from the real one by its layout::

    C-NMC_Leukemia/
      training_data/fold_{0,1,2}/{all,hem}/UID_<subject>_<image>_<cell>_<all|hem>.bmp
      validation_data/C-NMC_test_prelim_phase_data/1.bmp ... N.bmp
      validation_data/C-NMC_test_prelim_phase_data_labels.csv   (Patient_ID,new_names,labels)
      testing_data/C-NMC_test_final_phase_data/1.bmp ... M.bmp

and whose images carry the kind of signal the reports rely on:

* **Class morphology, overlapping between classes.** ALL blasts have a larger
  nucleus-to-cytoplasm ratio, more irregular nuclear outlines (larger harmonic
  amplitudes, occasional clefts), fine dispersed chromatin and frequent
  nucleoli; HEM cells are rounder and smoother, with coarse clumped chromatin,
  rare nucleoli and a slightly wider cytoplasm rim.
* **No give-away statistic.** Cell area and mean brightness inside the cell
  follow the same distribution in both classes (area is set exactly, brightness
  is renormalised per cell), so a model has to look at shape and texture.
* **Recognisable subjects.** Each subject has its own stain tint, focus blur,
  noise level, cell-size scale and a latent "blast-likeness" that shifts its
  morphology, so some ALL subjects look HEM-like and vice versa. A split that
  shares subjects between training and test data therefore scores higher than
  a subject-level split, as on the real data.

Everything is drawn from streams derived from the seed and the subject's
identity, so the same seed and spec give byte-identical files (with the same
NumPy and OpenCV on one platform), and one subject's cells do not change when
another subject is added.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import cv2
import numpy as np

from ..io import atomic_directory, csv_text, new_dataset_root, write_image
from ..profiles import CnmcSpec
from .drawing import AngleTable, local_grid, sigmoid, smooth_noise

__all__ = [
    "GENERATOR_VERSION",
    "ROOT_NAME",
    "STRATIFIED_FIELDS",
    "SubjectStyle",
    "draw_subject",
    "generate_cnmc",
    "render_cell",
]

#: Bump whenever the generated images or the layout change: it is part of the cache key.
GENERATOR_VERSION = 4

#: Name of the top folder of the release.
ROOT_NAME = "C-NMC_Leukemia"

PRELIM_DIR = "C-NMC_test_prelim_phase_data"
PRELIM_LABELS = "C-NMC_test_prelim_phase_data_labels.csv"
FINAL_DIR = "C-NMC_test_final_phase_data"

# Stream identifiers mixed into the seed; fixed numbers (not hash()) so that the
# streams do not depend on PYTHONHASHSEED.
_STREAM_LAYOUT = 1
_STREAM_SUBJECT = 2
_SPLIT_CODE = {"train": 0, "prelim": 1, "final": 2}

# Palette of a May-Grünwald-Giemsa stained lymphocyte as it appears in C-NMC
# after the release's own stain normalisation: mean chromatin colour, the
# lighter pink-lilac of cytoplasm and nucleoli, and the dark blue-purple of
# condensed chromatin. The measured in-cell mean of real cells is about
# (70, 33, 82); the brightness is renormalised per cell anyway.
_BASE = np.array([72.0, 34.0, 86.0])
_LIGHT = np.array([128.0, 74.0, 132.0])
_DARK = np.array([44.0, 17.0, 72.0])


# --------------------------------------------------------------------------- #
# Per-subject style
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class SubjectStyle:
    """What makes one subject's cells recognisable (drawn by :func:`draw_subject`).

    Only ``blastness`` depends on the class, so no other field is a shortcut to the label.

    Attributes
    ----------
    blastness
        Latent blast-likeness: positive pushes the morphology towards ALL,
        negative towards HEM; class means +-0.7, spread 0.5 (overlapping).
    brightness
        Target mean intensity inside the cell (0-255) before per-image jitter.
    tint, saturation
        Factors on the stain palette's (R, G, B) and on its distance from grey.
    blur
        Focus blur as a Gaussian sigma in units of the image side.
    noise
        Standard deviation of the pixel noise, in 0-255 grey levels.
    scale
        Factor on the cell radius (1: a cell covering about 19 % of the frame).
    """

    blastness: float
    brightness: float
    tint: tuple[float, float, float]
    saturation: float
    blur: float
    noise: float
    scale: float


#: Class-independent subject fields that :func:`generate_cnmc` stratifies
#: within each class and subject group (see :func:`draw_subject`). The stain
#: (tint per channel, saturation) is among them: left to chance, the few
#: subjects of a subject-level training part differed in stain by class
#: (a colour-only logistic regression reached AUC 0.70 on them, 0.51 on new
#: subjects), and a CNN trained from scratch learnt that instead of the cells.
STRATIFIED_FIELDS = ("brightness", "scale", "blur", "noise", "tint_red", "tint_green", "tint_blue", "saturation")


def draw_subject(
    rng: np.random.Generator, is_all: bool, quantiles: Mapping[str, float] | None = None
) -> SubjectStyle:
    """Draw the style of one subject (ALL when ``is_all``, else HEM).

    ``rng`` gives the same number of values for both classes, with or without
    ``quantiles``: quantiles in (0, 1) for some of :data:`STRATIFIED_FIELDS`,
    used instead of random ones, so that a handful of subjects per class
    cannot differ in, say, cell size by chance (a model would learn that accident).
    """
    # v4: +-0.7 and a cell shift of +-0.35 (were 0.55 and 0.25): with the weaker signal, networks trained from
    # random weights in the demo's few epochs (VGG16 above all) stayed near chance and predicted one class.
    centre = 0.7 if is_all else -0.7
    blastness = float(rng.normal(centre, 0.5))
    drawn = dict(zip(STRATIFIED_FIELDS, rng.random(len(STRATIFIED_FIELDS)).tolist()))
    u = {**drawn, **(quantiles or {})}
    unknown = set(u) - set(STRATIFIED_FIELDS)
    if unknown:
        raise ValueError(f"quantiles for unknown fields {sorted(unknown)}; expected some of {STRATIFIED_FIELDS}")

    def z(name: str) -> float:  # standard normal quantile
        return _NORMAL.inv_cdf(min(max(u[name], 1e-6), 1.0 - 1e-6))

    tint = tuple(math.exp(0.05 * z(f"tint_{channel}")) for channel in ("red", "green", "blue"))
    saturation = 0.85 + 0.3 * u["saturation"]
    brightness = float(np.clip(62.0 + 4.5 * z("brightness"), 48.0, 78.0))
    scale = math.exp(0.06 * z("scale"))
    blur = 0.005 * u["blur"]
    noise = 1.0 + 3.0 * u["noise"]
    return SubjectStyle(blastness, brightness, tint, saturation, blur, noise, scale)  # type: ignore[arg-type]


_NORMAL = NormalDist()


# --------------------------------------------------------------------------- #
# Drawing one cell
# --------------------------------------------------------------------------- #

# 720 angles: one step spans about a pixel on the outline of a 450-px cell.
_OUTLINE = AngleTable(720)


def render_cell(rng: np.random.Generator, is_all: bool, subject: SubjectStyle, size: int) -> np.ndarray:
    """Draw one segmented cell on a black ``(size, size, 3)`` ``uint8`` square, like a C-NMC image.

    In polar coordinates around a slightly off-centre point: a nucleus outline
    of random harmonics, an optional cleft and a thin, partly visible
    cytoplasm rim; chromatin, nucleoli and shading are blurred-noise fields
    mixed by the cell's blast-likeness (the subject's, shifted a little by
    ``is_all``); the subject's tint, blur and noise follow, and the brightness
    inside the cell is set to the subject's level plus a per-image jitter.
    Pixels outside the cell are exactly 0, those inside at least 1, so
    ``image.max(axis=2) > 0`` is the cell mask.
    """
    s = float(size)

    # -- Latent morphology of this cell ------------------------------------ #
    # The subject's latent value plus a small class shift plus a large
    # per-cell spread: within one subject cells still vary, and both classes
    # produce ambiguous cells.
    beta = subject.blastness + (0.35 if is_all else -0.35) + rng.normal(0.0, 0.7)
    w = sigmoid(2.0 * beta)  # 0 = typical HEM, 1 = typical ALL

    # -- Outline ---------------------------------------------------------- #
    # The area is drawn from one class-independent distribution and imposed
    # exactly below, so irregular (ALL-like) outlines do not make cells larger.
    area_fraction = float(np.clip(rng.normal(0.19, 0.03), 0.12, 0.27)) * subject.scale**2
    area_fraction = min(max(area_fraction, 0.10), 0.30)
    r_equiv = s * math.sqrt(area_fraction / math.pi)

    # Nuclear outline: elongation (order 2) is class-independent; higher orders
    # grow with blast-likeness and fall off with the order, giving lobed,
    # irregular blasts and round, smooth normal lymphocytes.
    elongation = rng.uniform(0.0, 0.12)
    irregularity = (0.015 + 0.038 * w) * math.exp(rng.normal(0.0, 0.25))
    orders = np.arange(3, 9)
    # Capped so that no outline turns star-shaped (real blasts are not).
    amps = np.minimum(np.abs(rng.normal(0.0, 1.0, size=len(orders))), 2.0) * irregularity / (orders / 3.0) ** 1.5
    radius_n = 1.0 + _OUTLINE.harmonics(rng, np.array([elongation]), 2) + _OUTLINE.harmonics(rng, amps, 3)
    # A nuclear cleft or notch, mostly in blasts.
    if rng.random() < 0.05 + 0.35 * w:
        depth = rng.uniform(0.08, 0.25)
        width = rng.uniform(0.12, 0.3)
        radius_n = radius_n * _OUTLINE.notch(rng, depth, width)
    radius_n = np.maximum(radius_n, 0.4)

    # Cytoplasm rim: thicker in normal cells (lower nucleus-to-cytoplasm
    # ratio), and only partly visible because it is thin and uneven.
    rim_fraction = float(np.clip(0.075 - 0.045 * w + rng.normal(0.0, 0.015), 0.005, 0.15))
    rim_shape = 1.0 + _OUTLINE.harmonics(rng, rng.normal(0.0, 0.7, size=3), 1)
    radius_c = radius_n + rim_fraction * np.clip(rim_shape, 0.0, None)

    # Impose the drawn area: area of a polar curve = pi * mean(r^2).
    unit = r_equiv / math.sqrt(float(np.mean(radius_c**2)))
    table_n = (radius_n * unit).astype(np.float32)
    table_c = (radius_c * unit).astype(np.float32)
    extent = float(table_c.max())

    # -- Position: not always centred, always inside the frame with a margin #
    margin = 0.03 * s + 2.0
    room = s / 2.0 - margin - extent
    if room < 0:  # only for extreme draws: shrink rather than crop the cell
        shrink = (s / 2.0 - margin) / extent
        table_n, table_c, extent, room = table_n * shrink, table_c * shrink, extent * shrink, 0.0
    cx, cy = (s / 2.0 + np.clip(rng.normal(0.0, 0.05 * s, size=2), -room, room)).tolist()

    # Work on the cell's bounding box only (3 pixels to spare): for a 450-px
    # frame it is a third of the pixels.
    grid = local_grid(cx, cy, extent, size, pad=3)
    assert grid is not None  # the cell lies inside the frame (see room above)
    rows, columns, dy, dx = grid
    # Linear interpolation between the angle samples keeps large outlines smooth.
    rho, (rn, rc) = _OUTLINE.interpolate(dx, dy, [table_n, table_c])
    inside = rho <= rc
    shape = rho.shape

    # -- Texture ("t": positive = lighter, towards the pink-lilac of
    # cytoplasm and nucleoli; negative = darker, condensed chromatin) ------ #
    fine = smooth_noise(rng, shape, 0.007 * s)
    coarse = smooth_noise(rng, shape, 0.018 * s)
    specks = np.maximum(smooth_noise(rng, shape, 0.006 * s) - 1.8, 0.0)
    shading = smooth_noise(rng, shape, 0.12 * s)
    # Fine dispersed chromatin (ALL) against clumps of condensed chromatin
    # with lighter gaps (HEM); both share small lighter specks and a gentle
    # illumination gradient, so neither texture is exclusive to one class.
    clumps = -0.40 * np.maximum(coarse - 0.1, 0.0) + 0.15 * np.maximum(-coarse - 0.6, 0.0)
    t_nucleus = w * 0.25 * fine + (1.0 - w) * (clumps + 0.10 * fine) + 0.35 * specks + 0.10 * shading

    # Nucleoli: 1-3 lighter round spots, frequent in blasts, rare otherwise.
    n_nucleoli = int(min(3, rng.poisson(0.15 + 1.6 * w)))
    for _ in range(n_nucleoli):
        angle = rng.uniform(0.0, 2.0 * np.pi)
        dist = 0.55 * r_equiv * math.sqrt(rng.random())
        radius = r_equiv * rng.uniform(0.06, 0.11)
        strength = rng.uniform(0.35, 0.7)
        ex, ey = dx - np.float32(dist * math.cos(angle)), dy - np.float32(dist * math.sin(angle))
        d = np.sqrt(ex * ex + ey * ey) / np.float32(radius)
        t_nucleus = t_nucleus + strength * np.clip(1.3 - d, 0.0, 1.0) ** 0.8

    # Soft nucleus/cytoplasm boundary; the cytoplasm is lighter and smoother.
    edge = 0.008 * s + 0.5
    nucleus = np.clip((rn - rho) / edge + 0.5, 0.0, 1.0)
    t_cyto = 0.40 + 0.06 * fine
    t = np.clip(nucleus * t_nucleus + (1.0 - nucleus) * t_cyto, -1.0, 1.3)

    # -- Colour: the subject's stain palette ------------------------------ #
    tint = np.asarray(subject.tint)
    palette = []
    for colour in (_BASE, _LIGHT, _DARK):
        tinted = colour * tint
        grey = tinted.mean()
        palette.append((grey + subject.saturation * (tinted - grey)).astype(np.float32))
    base, light, dark = palette
    lighter = np.maximum(t, 0.0)
    darker = np.maximum(-t, 0.0)
    # Slight darkening of the outermost pixel ring, as anti-aliasing would give.
    rim_light = np.clip((rc - rho) / max(1.0, 0.004 * s) + 0.5, 0.5, 1.0)
    sigma = subject.blur * s
    # Channel by channel: NumPy is slow on (H, W, 3) arrays broadcast against
    # 3-vectors, fast on plain 2-D arrays.
    channels = []
    for c in range(3):
        channel = base[c] + lighter * (light[c] - base[c]) + darker * (dark[c] - base[c])
        # Focus blur acts on the whole optical image (the colour field extends
        # beyond the outline); the segmentation mask below stays sharp as in
        # the release, whose cells were cut out after imaging.
        if sigma > 0.3:
            channel = cv2.GaussianBlur(channel, (0, 0), sigma)
        channel = channel + np.float32(subject.noise) * rng.standard_normal(shape, dtype=np.float32)
        channels.append(channel * rim_light)

    # -- Brightness: per-subject level plus per-image jitter, never class --- #
    target = subject.brightness + rng.normal(0.0, 4.0)
    current = sum(float(channel[inside].mean()) for channel in channels) / 3.0
    gain = np.float32(target / current)

    out = np.zeros((size, size, 3), dtype=np.uint8)
    outside = ~inside
    for c, channel in enumerate(channels):
        box = np.clip(np.rint(channel * gain), 1, 255).astype(np.uint8)
        box[outside] = 0
        out[rows, columns, c] = box
    return out


# --------------------------------------------------------------------------- #
# Layout
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class _Subject:
    split: str  # "train", "prelim" or "final"
    fold: int | None  # training fold, None for the test sets
    is_all: bool
    number: int  # 1-based, counted separately for ALL and HEM

    @property
    def uid(self) -> str:
        return str(self.number) if self.is_all else f"H{self.number}"


def _plan_subjects(spec: CnmcSpec, seed: int) -> list[_Subject]:
    """Subject numbers of the folds (shuffled over them, as in the release), then of the test sets."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_LAYOUT]))
    n_all, n_hem = spec.subjects_per_fold
    subjects: list[_Subject] = []
    for is_all, per_fold in ((True, n_all), (False, n_hem)):
        numbers = rng.permutation(3 * per_fold) + 1
        for fold in range(3):
            for number in sorted(numbers[fold * per_fold : (fold + 1) * per_fold].tolist()):
                subjects.append(_Subject("train", fold, is_all, number))
    next_number = {True: 3 * n_all + 1, False: 3 * n_hem + 1}
    for split, counts in (("prelim", spec.prelim_subjects), ("final", spec.final_subjects)):
        for is_all, count in zip((True, False), counts):
            for _ in range(count):
                subjects.append(_Subject(split, None, is_all, next_number[is_all]))
                next_number[is_all] += 1
    return subjects


def _cell_ids(rng: np.random.Generator, count: int) -> list[tuple[int, int]]:
    """``count`` (image, cell) number pairs as in the release's names: several cells per image, gaps between images."""
    ids: list[tuple[int, int]] = []
    image = int(rng.integers(1, 4))
    while len(ids) < count:
        cells = 1 + int(rng.random() < 0.25) + int(rng.random() < 0.08)
        for cell in range(1, cells + 1):
            if len(ids) < count:
                ids.append((image, cell))
        image += int(rng.integers(1, 4))
    return ids


def _subject_rng(seed: int, subject: _Subject) -> np.random.Generator:
    key = [seed, _STREAM_SUBJECT, _SPLIT_CODE[subject.split], int(subject.is_all), subject.number]
    return np.random.default_rng(np.random.SeedSequence(key))


def _stratified_quantiles(subjects: list[_Subject], seed: int) -> dict[_Subject, dict[str, float]]:
    """Quantiles of the class-independent subject fields, balanced between classes.

    Within each group (fold or test set) and class, the ``n`` subjects get the
    midpoints ``(k + 0.5) / n`` of ``n`` strata in a random order per field, so
    both classes span the same range of brightness, cell size, blur, noise and stain.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_LAYOUT, 2]))
    groups: dict[tuple[str, int | None, bool], list[_Subject]] = {}
    for subject in subjects:
        groups.setdefault((subject.split, subject.fold, subject.is_all), []).append(subject)
    result: dict[_Subject, dict[str, float]] = {s: {} for s in subjects}
    for members in groups.values():
        n = len(members)
        for name in STRATIFIED_FIELDS:
            for subject, k in zip(members, rng.permutation(n).tolist()):
                result[subject][name] = (k + 0.5) / n
    return result


def _check_spec(spec: CnmcSpec) -> None:
    low, high = spec.cells_per_subject
    if not 1 <= low <= high:
        raise ValueError(f"cells_per_subject must satisfy 1 <= low <= high, got {spec.cells_per_subject}")
    if spec.image_size < 32:
        raise ValueError(f"image_size must be at least 32 pixels, got {spec.image_size}")
    counts = (*spec.subjects_per_fold, *spec.prelim_subjects, *spec.final_subjects)
    if any(c < 0 for c in counts) or min(spec.subjects_per_fold) < 1:
        raise ValueError(f"subject counts must be non-negative, with at least one per class and fold: {spec}")


def generate_cnmc(dest: str | Path, spec: CnmcSpec, seed: int = 0) -> Path:
    """Write a generated C-NMC 2019 tree to ``dest/C-NMC_Leukemia`` and return that folder.

    ``spec`` (:class:`~cytobook.profiles.CnmcSpec`) sets the image size and
    the subject and cell counts; the same non-negative ``seed`` and spec give
    byte-identical files. The tree is built under a temporary name, so an
    interrupted run leaves nothing. Training ALL subjects are ``1..3a``, HEM
    subjects ``H1..H3h`` (shuffled over the folds), and the test sets continue
    both numberings; a few files of one HEM subject write ``h``, as in the release.

    Raises
    ------
    FileExistsError
        If ``dest/C-NMC_Leukemia`` already exists (it is never overwritten).
    ValueError
        If the spec or the seed is invalid.
    """
    _check_spec(spec)
    final = new_dataset_root(dest, ROOT_NAME, seed)

    size = spec.image_size
    low, high = spec.cells_per_subject
    subjects = _plan_subjects(spec, seed)
    quantiles = _stratified_quantiles(subjects, seed)
    # The first HEM subject of the last fold gets lowercase "h" in a few names,
    # so loaders have to normalise the prefix to group its cells.
    lowercase = next(s for s in subjects if s.split == "train" and not s.is_all and s.fold == 2)

    # First each subject's style, cell count and file names, and the test
    # sets' shuffled running numbers, so that each image can be written as
    # soon as it is drawn (a full-size test set would not fit in memory).
    plans = []
    pooled: dict[str, list[tuple[int, int]]] = {"prelim": [], "final": []}  # (plan, cell) indices
    for subject in subjects:
        rng = _subject_rng(seed, subject)
        style = draw_subject(rng, subject.is_all, quantiles[subject])
        count = int(rng.integers(low, high + 1))
        label = "all" if subject.is_all else "hem"
        n_lower = min(count - 1, max(2, count // 10)) if subject == lowercase else 0
        names = []
        for k, (image_no, cell_no) in enumerate(_cell_ids(rng, count)):
            # The last few files, as if from one batch typed differently.
            uid = subject.uid.lower() if k >= count - n_lower else subject.uid
            names.append(f"UID_{uid}_{image_no}_{cell_no}_{label}.bmp")
        if subject.split != "train":
            pooled[subject.split].extend((len(plans), k) for k in range(count))
        plans.append((subject, rng, style, names))
    order_rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_LAYOUT, 1]))
    new_name: dict[tuple[int, int], str] = {}
    for split in ("prelim", "final"):
        for number, index in enumerate(order_rng.permutation(len(pooled[split])).tolist(), start=1):
            new_name[pooled[split][index]] = f"{number}.bmp"

    with atomic_directory(final) as root:
        prelim_dir = root / "validation_data" / PRELIM_DIR
        final_dir = root / "testing_data" / FINAL_DIR
        prelim_dir.mkdir(parents=True)
        final_dir.mkdir(parents=True)
        rows = []
        for p, (subject, rng, style, names) in enumerate(plans):
            label = "all" if subject.is_all else "hem"
            for k, name in enumerate(names):
                cell = render_cell(rng, subject.is_all, style, size)
                if subject.split == "train":
                    write_image(root / "training_data" / f"fold_{subject.fold}" / label / name, cell)
                elif subject.split == "prelim":
                    write_image(prelim_dir / new_name[p, k], cell)
                    rows.append((name, new_name[p, k], int(subject.is_all)))
                else:
                    write_image(final_dir / new_name[p, k], cell)

        # Labels in the order of the new numbers, 1 = ALL, 0 = HEM.
        rows.sort(key=lambda row: int(row[1].split(".")[0]))
        (root / "validation_data" / PRELIM_LABELS).write_text(csv_text(["Patient_ID", "new_names", "labels"], rows))
    return final

