"""A deterministic, seeded generator of look-alike DLMI 2023 lymphocytosis data in the challenge layout.

The challenge data (blood smears and clinical attributes of patients with a
malignant or reactive lymphocytosis) may not be redistributed, yet the report-4
notebooks have to run without it. This module writes a tree that
:func:`cytobook.datasets.dlmi.load_dlmi` cannot tell apart from the real one::

    dlmi/
      clinical_annotation.csv          ,ID,LABEL,GENDER,DOB,LYMPH_COUNT  (unnamed index column)
      trainset/trainset_true.csv       ID,LABEL,GENDER,DOB,LYMPH_COUNT   (training patients)
      trainset/P<id>/000000.jpg ...    one folder per training patient
      testset/testset_data.csv         ID,LABEL,GENDER,DOB,LYMPH_COUNT   (LABEL -1)
      testset/P<id>/000000.jpg ...
    dlmi_test_labels.csv               ID,LABEL: the test patients' true classes

with every quirk of the real CSV (the unnamed index column, dates of birth in
two formats, one ``GENDER`` written ``f``, ``LABEL`` -1 for test patients, a
float ``LYMPH_COUNT``, ``P`` numbers shuffled over both sets and the rows). The
test patients' true classes go *beside* the tree, in :data:`TEST_LABELS_NAME`,
so notebooks can score honestly while a loader of the tree never sees them.

Every image is a 224×224 JPEG of a stained smear, drawn as optical densities:
a pinkish-beige (or greyish-lilac) background, pale red cells with a lighter
centre, now and then a platelet, and one lymphocyte near the centre. The
classes differ as follows.

* **Malignant (LABEL 1, CLL-like).** Tumoral cells are small mature
  lymphocytes with a scant, pale cytoplasm rim and slightly coarser, denser
  chromatin; a few are smudge cells (a ruptured, pale, streaky nucleus and no
  cytoplasm).
* **Reactive (LABEL 0).** Abundant cytoplasm with a deep-blue (basophilic)
  skirt along its scalloped edge, an often eccentric, now and then indented
  nucleus, slightly larger, with slightly finer chromatin. Nuclear outlines
  (irregularity, indentations) do not depend on the class.
* **What the handmade features see.** The class shows mostly *outside the
  nucleus's convex hull* (the amount of cytoplasm and its basophilic edge),
  where the report's handmade features (:mod:`cytobook.handmade`: nucleus
  shape, and colour inside the hull) do not look; inside it the classes differ
  little. So the images carry evidence that the handmade features miss, as the
  report's image expert assumes (generator version 2; version 1 put the
  differences in the nucleus, where the handmade features alone nearly
  classified the patients).
* **Overlap.** A latent *tumoral-likeness* per patient (mean +0.6 malignant,
  -0.6 reactive, spread 0.6) sets its bag's mix: typically 60 % tumoral, 30 %
  normal and 8 % reactive-looking cells for a malignant patient, 55 %
  reactive, 35 % normal and 8 % tumoral-looking for a reactive one; about one
  patient in six leans the wrong way or not at all.
* **Clinical attributes.** ``LYMPH_COUNT`` (10⁹/L) is log-normal, median 30
  (malignant) against 8 (reactive), clipped to 2-295; malignant patients are
  older (71 ± 11 against 57 ± 17 years) and more often male (60 % against 45 %).
* **Complementary evidence.** Within each class, how typical a patient's
  count and its morphology are correlate at -0.5, so neither alone
  classifies every patient. In notebook 31 on the ``demo`` profile's set
  (84 + 36 labelled patients, seed 0, ImageNet MobileNetV2 features), the
  logistic regression on age and count and the scalar expert each reached
  about 0.82 cross-validated balanced accuracy, the image expert alone 0.76
  and the MultiTask mixture 0.86.

Nothing else depends on the class: bag sizes, stain, background,
illumination, blur, noise, red-cell density and cell scale make a patient's
images recognisable, not its class. Test patients come from the same mixture.
Everything is drawn from streams derived from the seed and the patient's
split, class and rank, so the same seed and spec give byte-identical files
(same NumPy, OpenCV and Pillow on one platform), and adding a patient moves
only the shuffled ``P`` numbers.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from ..io import atomic_directory, csv_text, new_dataset_root, write_text
from ..profiles import DlmiSpec
from .dlmi import (
    CLINICAL_CSV,
    CSV_COLUMNS,
    REFERENCE_DATE,
    TEST_CSV,
    TEST_DIR,
    TRAIN_CSV,
    TRAIN_DIR,
    TREE_NAME,
)
from .drawing import AngleTable, local_grid, pixel_box, sigmoid, smooth_noise

__all__ = [
    "GENERATOR_VERSION",
    "ROOT_NAME",
    "TEST_LABELS_NAME",
    "PatientStyle",
    "PlannedPatient",
    "draw_patient",
    "generate_dlmi",
    "hidden_labels_path",
    "load_test_labels",
    "plan_patients",
    "render_image",
]

#: Bump whenever the generated images or the layout change: it is part of the cache key.
GENERATOR_VERSION = 2

#: Name of the generated tree's top folder (the challenge's files unpack into any folder).
ROOT_NAME = TREE_NAME

#: File written *beside* the tree with the test patients' true classes, columns ``ID,LABEL``.
TEST_LABELS_NAME = "dlmi_test_labels.csv"

#: JPEG quality of the generated images (the challenge's are of similar quality).
JPEG_QUALITY = 90

# Stream identifiers mixed into the seed; fixed numbers (not hash()) so that the
# streams do not depend on PYTHONHASHSEED.
_STREAM_LAYOUT = 1
_STREAM_PATIENT = 2
_SPLIT_CODE = {"train": 0, "test": 1}

# Colours of a May-Grünwald-Giemsa smear as in CellaVision images (measured by
# k-means on real lymphocyte images): the background is multiplied by
# exp(-optical density) of whatever lies on it, channel by channel (R, G, B).
_BACKGROUND = np.array([251.0, 227.0, 202.0])  # pinkish beige
_BACKGROUND_LILAC = np.array([236.0, 229.0, 241.0])  # the greyish-lilac of other stainings
_OD_NUCLEUS = np.array([1.0, 1.6, 0.38])  # dark purple-violet chromatin, about (80, 45, 138)
_OD_RBC = np.array([0.20, 0.32, 0.18])  # pale red, about (205, 165, 168)
_OD_CYTO = np.array([0.26, 0.20, -0.06])  # pale sky blue
_OD_CYTO_BASOPHILIC = np.array([0.58, 0.40, -0.02])  # deeper blue of reactive cytoplasm

#: Correlation between how typical of its class a patient's lymphocyte count
#: is and how typical its morphology is (negative: one tends to make up for the other).
COUNT_MORPHOLOGY_CORRELATION = -0.5


# --------------------------------------------------------------------------- #
# Per-patient attributes
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class PatientStyle:
    """Everything drawn once per patient (by :func:`draw_patient`).

    Attributes
    ----------
    malignant
        True class.
    tumoral
        Latent tumoral-likeness of the cells (mean +0.6 malignant, -0.6 reactive, spread 0.6).
    p_tumoral, p_reactive, p_smudge
        Probabilities that a cell is tumoral or reactive (the rest look normal), and a tumoral one a smudge cell.
    lymph_count, age, male
        Count in 10⁹/L (2 decimals), age at :data:`~cytobook.datasets.dlmi.REFERENCE_DATE`, sex.
    n_images
        Bag size, uniform in the spec's ``images_per_patient``.
    background
        RGB of the empty smear (before illumination), 0-255.
    stain, rbc_stain
        Factors on the (R, G, B) optical densities of nucleus and cytoplasm, and of the red cells.
    rbc_per_image
        Mean number of red cells whose centre falls in or near a frame.
    blur, noise, scale
        Focus blur (sigma per image side), pixel noise (0-255) and the lymphocyte's size factor.
    """

    malignant: bool
    tumoral: float
    p_tumoral: float
    p_reactive: float
    p_smudge: float
    lymph_count: float
    age: float
    male: bool
    n_images: int
    background: tuple[float, float, float]
    stain: tuple[float, float, float]
    rbc_stain: tuple[float, float, float]
    rbc_per_image: float
    blur: float
    noise: float
    scale: float


def draw_patient(
    rng: np.random.Generator, malignant: bool, images_per_patient: tuple[int, int]
) -> PatientStyle:
    """Draw the clinical attributes, cell mixture and imaging style of one patient.

    ``rng`` is the patient's own stream (as many values drawn for both classes);
    ``images_per_patient`` the inclusive range of the bag size.
    """
    sign = 1.0 if malignant else -1.0
    # How typical of its class the patient's count and morphology are, each
    # standard normal, negatively correlated (see the module docstring).
    rho = COUNT_MORPHOLOGY_CORRELATION
    g1, g2 = rng.standard_normal(2).tolist()
    count_typical = g1
    morph_typical = rho * g1 + math.sqrt(1.0 - rho * rho) * g2

    # Typical malignant counts are high, typical reactive ones low.
    if malignant:
        log_count = math.log(30.0) + 0.8 * count_typical
    else:
        log_count = math.log(8.0) - 0.55 * count_typical
    lymph_count = round(float(np.clip(math.exp(log_count), 2.0, 295.0)), 2)

    tumoral = sign * (0.6 + 0.6 * morph_typical)
    p_tumoral = 0.9 * sigmoid(2.5 * (tumoral - 0.3))
    p_reactive = 0.8 * sigmoid(2.5 * (-tumoral - 0.3))
    p_smudge = float(rng.uniform(0.0, 0.05))

    age_mean, age_sd = (71.0, 11.0) if malignant else (57.0, 17.0)
    age = float(np.clip(rng.normal(age_mean, age_sd), 18.5, 97.5))
    male = bool(rng.random() < (0.6 if malignant else 0.45))

    low, high = images_per_patient
    n_images = int(rng.integers(low, high + 1))

    # Imaging style: class-independent.
    lilac = float(rng.uniform(0.0, 1.0) ** 3)  # mostly beige, a few greyish-lilac smears
    background = (1.0 - lilac) * _BACKGROUND + lilac * _BACKGROUND_LILAC
    background = background * rng.uniform(0.97, 1.015) * np.exp(rng.normal(0.0, 0.012, size=3))
    stain = np.exp(rng.normal(0.0, 0.07, size=3)) * rng.uniform(0.85, 1.12)
    rbc_stain = np.exp(rng.normal(0.0, 0.08, size=3)) * rng.uniform(0.75, 1.2)
    rbc_per_image = float(rng.uniform(5.0, 11.0))
    blur = float(rng.uniform(0.0012, 0.0045))
    noise = float(rng.uniform(0.8, 2.5))
    scale = float(math.exp(rng.normal(0.0, 0.05)))
    return PatientStyle(
        malignant=bool(malignant),
        tumoral=float(tumoral),
        p_tumoral=float(p_tumoral),
        p_reactive=float(p_reactive),
        p_smudge=p_smudge,
        lymph_count=lymph_count,
        age=age,
        male=male,
        n_images=n_images,
        background=tuple(float(v) for v in np.clip(background, 0.0, 255.0)),  # type: ignore[arg-type]
        stain=tuple(float(v) for v in stain),  # type: ignore[arg-type]
        rbc_stain=tuple(float(v) for v in rbc_stain),  # type: ignore[arg-type]
        rbc_per_image=rbc_per_image,
        blur=blur,
        noise=noise,
        scale=scale,
    )


# --------------------------------------------------------------------------- #
# Drawing one image
# --------------------------------------------------------------------------- #

# 360 angles: one step spans about a pixel on the outline of a 224-px image's cells.
_OUTLINE = AngleTable(360)


def _draw_red_cells(rng: np.random.Generator, style: PatientStyle, size: int, out: np.ndarray) -> None:
    """Add the optical-density profile of the frame's red blood cells to ``out`` (in place).

    Each cell is a slightly elliptic disc, thicker (darker) towards its rim
    with a pale centre; overlapping cells add up, as in a real smear.
    """
    s = float(size)
    count = int(rng.poisson(style.rbc_per_image))
    placed: list[tuple[float, float, float]] = []
    for _ in range(count):
        # Red cells in a smear touch or overlap a little, rarely much: a
        # candidate too close to one already placed is moved (a few tries).
        for _attempt in range(4):
            cx, cy = rng.uniform(-0.12 * s, 1.12 * s, size=2).tolist()
            radius = s * rng.uniform(0.15, 0.185)
            if all(math.hypot(cx - x, cy - y) > 0.8 * (radius + r) for x, y, r in placed):
                break
        placed.append((cx, cy, radius))
        ratio = rng.uniform(1.0, 1.12)
        angle = rng.uniform(0.0, np.pi)
        pallor = rng.uniform(0.5, 0.85)
        weight = rng.uniform(0.85, 1.15)
        reach = radius * ratio + 2.0
        grid = local_grid(cx, cy, reach, size)
        if grid is None:
            continue
        rows, columns, dy, dx = grid
        c, si = np.float32(math.cos(angle)), np.float32(math.sin(angle))
        u = (dx * c + dy * si) / np.float32(radius * ratio)
        v = (dy * c - dx * si) / np.float32(radius)
        d = np.sqrt(u * u + v * v)
        body = np.clip((1.0 - d) * np.float32(radius / 1.2), 0.0, 1.0)  # about a pixel of anti-aliasing
        # Biconcave: thin pale centre, thick rim.
        thickness = 1.0 - np.float32(pallor) * np.exp(-((d / np.float32(0.5)) ** 3)) + 0.25 * np.exp(
            -(((d - np.float32(0.9)) / np.float32(0.07)) ** 2)
        )
        out[rows, columns] += np.float32(weight) * body * thickness


def _draw_platelets(rng: np.random.Generator, size: int, out: np.ndarray) -> None:
    """Now and then one to three small granular purple platelets (added to the nucleus density)."""
    s = float(size)
    if rng.random() >= 0.3:
        return
    for _ in range(int(rng.integers(1, 4))):
        cx, cy = rng.uniform(0.0, s, size=2).tolist()
        radius = s * rng.uniform(0.01, 0.02)
        reach = radius * 2.0 + 2.0
        grid = local_grid(cx, cy, reach, size)
        if grid is None:
            continue
        rows, columns, dy, dx = grid
        d = np.sqrt(dx * dx + dy * dy) / np.float32(radius)
        grain = 0.6 + 0.4 * rng.random(d.shape, dtype=np.float32)
        out[rows, columns] = np.maximum(out[rows, columns], 0.55 * np.clip(1.5 - d, 0.0, 1.0) * grain)


def _cell_kind(rng: np.random.Generator, style: PatientStyle) -> tuple[str, float]:
    """Kind of the frame's lymphocyte and its morphology value ``m`` (+1 tumoral, 0 normal, -1 reactive)."""
    u = rng.random()
    smudge = rng.random() < style.p_smudge
    if u < style.p_tumoral:
        m = float(np.clip(rng.normal(0.85, 0.2), 0.35, 1.3))
        return ("smudge" if smudge else "tumoral"), m
    if u < style.p_tumoral + style.p_reactive:
        return "reactive", float(np.clip(rng.normal(-0.85, 0.25), -1.4, -0.35))
    return "normal", float(np.clip(rng.normal(0.0, 0.2), -0.45, 0.45))


def render_image(rng: np.random.Generator, style: PatientStyle, size: int) -> np.ndarray:
    """Draw one ``(size, size, 3)`` ``uint8`` smear image centred on a lymphocyte, from the patient's stream.

    Red cells, platelets, cytoplasm and nucleus are optical-density maps, each
    times its colour's OD vector; the image is the background times
    ``exp(-OD)``, then focus blur and pixel noise. The lymphocyte hides what lies under it.
    """
    s = float(size)
    kind, m = _cell_kind(rng, style)
    p, r = max(m, 0.0), max(-m, 0.0)  # how tumoral, how reactive

    rbc = np.zeros((size, size), np.float32)
    _draw_red_cells(rng, style, size, rbc)
    platelets = np.zeros((size, size), np.float32)
    _draw_platelets(rng, size, platelets)

    # -- Geometry of the lymphocyte ------------------------------------------ #
    r_nucleus = s * style.scale * (0.165 - 0.006 * p + 0.008 * r) * math.exp(rng.normal(0.0, 0.06))
    smudged = kind == "smudge"
    if smudged:
        r_nucleus *= rng.uniform(1.2, 1.6)  # spread out when the cell ruptured
        rim = 0.0
    else:
        rim = (0.25 - 0.15 * p + 0.42 * r) * math.exp(rng.normal(0.0, 0.2))
    # Nucleus outline: slight elongation, irregularity growing with reactivity
    # (smudge cells: very irregular), and sometimes an indentation.
    elongation = rng.uniform(0.0, 0.2 if smudged else 0.08)
    irregular = 0.06 if smudged else 0.016
    orders = np.arange(3, 8)
    amps = np.abs(rng.normal(0.0, 1.0, size=len(orders))) * irregular / (orders / 3.0)
    table_n = 1.0 + _OUTLINE.harmonics(rng, np.array([elongation]), 2) + _OUTLINE.harmonics(rng, amps, 3)
    if rng.random() < 0.06 and not smudged:
        table_n = table_n * _OUTLINE.notch(rng, rng.uniform(0.15, 0.35), rng.uniform(0.25, 0.5))
    table_n = np.maximum(table_n, 0.5) * r_nucleus
    # Cytoplasm outline around the cell centre; the nucleus sits off-centre
    # (more so in reactive cells), and reactive cytoplasm is scalloped.
    cyto_amps = np.abs(rng.normal(0.0, 1.0, size=5)) * (0.015 + 0.035 * r)
    table_c = (1.0 + _OUTLINE.harmonics(rng, cyto_amps, 2)) * r_nucleus * (1.0 + rim)
    offset = (r_nucleus * rim) * rng.uniform(0.0, 0.25 + 0.45 * r)
    direction = rng.uniform(0.0, 2.0 * np.pi)
    extent = max(float(table_c.max()), float(table_n.max()) + offset) + 3.0
    # The cell centre, near the frame centre and fully in view where possible.
    room = max(0.0, s / 2.0 - extent - 2.0)
    cx, cy = (s / 2.0 + np.clip(rng.normal(0.0, 0.03 * s, size=2), -room, room)).tolist()
    nx, ny = cx + offset * math.cos(direction), cy + offset * math.sin(direction)

    cell_box = pixel_box(cx, cy, extent, size)
    assert cell_box is not None  # the cell centre lies in the frame
    rows, columns = cell_box
    box = (rows.stop - rows.start, columns.stop - columns.start)
    # Pixel centres, offset from the nucleus and from the cell centre below.
    xs = np.arange(columns.start, columns.stop, dtype=np.float32) + np.float32(0.5)
    ys = np.arange(rows.start, rows.stop, dtype=np.float32) + np.float32(0.5)
    rho_n, (rn,) = _OUTLINE.nearest((xs - np.float32(nx))[None, :], (ys - np.float32(ny))[:, None], [table_n])
    edge = 0.004 * s + 0.4
    if smudged:
        edge *= 4.0  # ragged, smeared border
    alpha_n = np.clip((rn - rho_n) / np.float32(edge) + 0.5, 0.0, 1.0)

    # -- Chromatin ------------------------------------------------------------- #
    # Coarse clumps with pale gaps (tumoral, mature) against finer, more even
    # chromatin (reactive); a darker band along the nuclear membrane.
    coarse = float(np.clip(0.5 + 0.15 * p - 0.15 * r + rng.normal(0.0, 0.1), 0.0, 1.0))
    fine = smooth_noise(rng, box, 0.0045 * s)
    if smudged:
        # Faint strands of spilled chromatin: noise blurred along a random
        # direction, with pale blotches; the whole nucleus pale.
        streak = cv2.GaussianBlur(rng.standard_normal(box, dtype=np.float32), (0, 0), sigmaX=0.02 * s, sigmaY=0.005 * s)
        turn = cv2.getRotationMatrix2D((box[1] / 2.0, box[0] / 2.0), float(rng.uniform(0.0, 180.0)), 1.0)
        streak = cv2.warpAffine(streak, turn, (box[1], box[0]), borderMode=cv2.BORDER_REFLECT)
        streak /= np.float32(max(float(streak.std()), 1e-6))
        texture = 0.25 * streak + 0.3 * smooth_noise(rng, box, 0.02 * s) + 0.1 * fine
        density = rng.uniform(0.3, 0.5)
    else:
        clumps = np.tanh(1.6 * smooth_noise(rng, box, 0.011 * s))
        texture = np.float32(0.36 * coarse) * clumps + np.float32(0.1 + 0.08 * (1.0 - coarse)) * fine
        texture = texture + 0.18 * np.exp(-(rn - rho_n) / np.float32(0.02 * s))
        density = (1.0 + 0.04 * p - 0.04 * r) * math.exp(rng.normal(0.0, 0.05))
    nucleus = alpha_n * np.float32(density) * np.maximum(1.0 + texture, 0.05)

    # -- Cytoplasm ------------------------------------------------------------- #
    # Pale blue near the nucleus in every cell; reactive cells add a deep-blue
    # (basophilic) skirt along the cytoplasm's edge, outside the nucleus's hull.
    if smudged:
        alpha_c = alpha_n
        cytoplasm = basophilic = np.zeros(box, np.float32)
    else:
        rho_c, (rc,) = _OUTLINE.nearest((xs - np.float32(cx))[None, :], (ys - np.float32(cy))[:, None], [table_c])
        alpha_c = np.maximum(np.clip((rc - rho_c) / np.float32(edge) + 0.5, 0.0, 1.0), alpha_n)
        skirt = np.exp(-np.maximum(rc - rho_c, 0.0) / np.float32(0.03 * s))
        cyto_density = np.float32(rng.uniform(0.8, 1.1) * (1.0 - 0.05 * p))
        cytoplasm = (alpha_c - alpha_n) * cyto_density * (1.0 + 0.08 * fine)
        basophilic = (alpha_c - alpha_n) * np.float32(min(1.0, 1.1 * r)) * skirt
    cyto_od, skirt_od = _OD_CYTO, _OD_CYTO_BASOPHILIC

    # -- Composition ----------------------------------------------------------- #
    stain = np.asarray(style.stain)
    nucleus_od = _OD_NUCLEUS * stain
    cyto_od = cyto_od * stain
    skirt_od = skirt_od * stain
    rbc_od = _OD_RBC * np.asarray(style.rbc_stain)
    illumination = 1.0 + 0.025 * smooth_noise(rng, (size, size), 0.15 * s)
    rbc[rows, columns] *= 1.0 - alpha_c  # the lymphocyte lies on top
    platelets[rows, columns] *= 1.0 - alpha_c
    channels = []
    for c in range(3):
        od = rbc * np.float32(rbc_od[c]) + platelets * np.float32(nucleus_od[c])
        od[rows, columns] += nucleus * np.float32(nucleus_od[c]) + cytoplasm * np.float32(cyto_od[c]) + basophilic * np.float32(skirt_od[c])
        channels.append(np.float32(style.background[c]) * illumination * np.exp(-od))
    image = np.stack(channels, axis=2)
    sigma = style.blur * s
    if sigma > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    # Uniform pixel noise of the patient's standard deviation (a normal one
    # costs six times as much to draw and looks the same after JPEG coding).
    image += np.float32(style.noise * math.sqrt(12.0)) * (rng.random(image.shape, dtype=np.float32) - np.float32(0.5))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- #
# Layout
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class PlannedPatient:
    """One patient of a generated tree, before anything is drawn.

    ``patient_id`` is ``"P<number>"`` (numbers ``0 ... n-1`` dealt out by a
    shuffle), ``split`` ``"train"`` or ``"test"``; ``rank``, the position
    among the patients of the same split and class, keys its random stream.
    """

    patient_id: str
    split: str
    malignant: bool
    rank: int

    @property
    def label(self) -> int:
        """True class, 1 malignant or 0 reactive."""
        return int(self.malignant)


def _test_malignant(spec: DlmiSpec) -> int:
    """Malignant test patients: the training proportion, at least one of each class when possible."""
    n_malignant, n_reactive = spec.train_patients
    n = spec.test_patients
    count = int(math.floor(n * n_malignant / (n_malignant + n_reactive) + 0.5))
    if n >= 2:
        count = min(max(count, 1), n - 1)
    return count


def plan_patients(spec: DlmiSpec, seed: int = 0) -> list[PlannedPatient]:
    """Patients of the tree :func:`generate_dlmi` writes, in ``clinical_annotation.csv`` row order.

    The test set's malignant share is the training share, rounded (at least
    one patient of each class from two test patients on); ``P`` numbers and
    rows are shuffled, so test patients are interleaved with training ones.
    """
    _check_spec(spec)
    n_malignant, n_reactive = spec.train_patients
    test_malignant = _test_malignant(spec)
    groups = (
        ("train", True, n_malignant),
        ("train", False, n_reactive),
        ("test", True, test_malignant),
        ("test", False, spec.test_patients - test_malignant),
    )
    keys = [(split, malignant, rank) for split, malignant, count in groups for rank in range(count)]
    rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_LAYOUT]))
    numbers = rng.permutation(len(keys)).tolist()
    order = rng.permutation(len(keys)).tolist()
    return [PlannedPatient(f"P{numbers[i]}", *keys[i]) for i in order]


def _patient_rng(seed: int, patient: PlannedPatient) -> np.random.Generator:
    key = [seed, _STREAM_PATIENT, _SPLIT_CODE[patient.split], int(patient.malignant), patient.rank]
    return np.random.default_rng(np.random.SeedSequence(key))


def _check_spec(spec: DlmiSpec) -> None:
    low, high = spec.images_per_patient
    if not 1 <= low <= high:
        raise ValueError(f"images_per_patient must satisfy 1 <= low <= high, got {spec.images_per_patient}")
    if spec.image_size < 64:
        raise ValueError(f"image_size must be at least 64 pixels, got {spec.image_size}")
    if min(spec.train_patients) < 1 or spec.test_patients < 0:
        raise ValueError(
            f"expected at least one malignant and one reactive training patient and a non-negative "
            f"number of test patients, got train_patients={spec.train_patients}, "
            f"test_patients={spec.test_patients}"
        )


def _format_dob(date: _dt.date, slashed: bool) -> str:
    """``M/D/YYYY`` unpadded (``11/3/1933``) or ``DD-MM-YYYY`` (``27-08-1951``), as in the real file."""
    if slashed:
        return f"{date.month}/{date.day}/{date.year}"
    return f"{date.day:02d}-{date.month:02d}-{date.year}"


def _write_jpeg(path: Path, image: np.ndarray) -> None:
    # Inside the tree being built under a temporary name: no per-file rename needed.
    Image.fromarray(image).save(path, format="JPEG", quality=JPEG_QUALITY)


def generate_dlmi(dest: str | Path, spec: DlmiSpec, seed: int = 0) -> Path:
    """Write a generated DLMI 2023 tree to ``dest/dlmi``, the test labels beside it; return the tree.

    ``spec`` (:class:`~cytobook.profiles.DlmiSpec`) sets the patient counts,
    bag sizes and image size; the same non-negative ``seed`` and spec give
    byte-identical files. The tree is built under a temporary name, so an
    interrupted run leaves none. About half the dates of birth are written
    ``M/D/YYYY``, half ``DD-MM-YYYY`` (both from two patients on), and the
    first female patient's ``GENDER`` is ``f``.

    Raises
    ------
    FileExistsError
        If ``dest/dlmi`` already exists (it is never overwritten).
    ValueError
        If the spec or the seed is invalid.
    """
    _check_spec(spec)
    dest = Path(dest)
    final = new_dataset_root(dest, ROOT_NAME, seed)

    plans = plan_patients(spec, seed)
    patients = []
    for plan in plans:
        rng = _patient_rng(seed, plan)
        patients.append((plan, rng, draw_patient(rng, plan.malignant, spec.images_per_patient)))

    # Quirks of the CSV, decided per row from the layout stream.
    layout = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_LAYOUT, 1]))
    slashed = (layout.random(len(plans)) < 0.5).tolist()
    if len(plans) >= 2 and len(set(slashed)) == 1:
        slashed[-1] = not slashed[-1]
    lowercase = next((i for i, (_, _, style) in enumerate(patients) if not style.male), None)

    rows = []
    for index, (plan, _, style) in enumerate(patients):
        dob = REFERENCE_DATE - _dt.timedelta(days=int(round(style.age * 365.2425)))
        gender = "M" if style.male else ("f" if index == lowercase else "F")
        label = plan.label if plan.split == "train" else -1
        rows.append([plan.patient_id, label, gender, _format_dob(dob, slashed[index]), repr(style.lymph_count)])

    with atomic_directory(final) as root:
        folders = {"train": root / TRAIN_DIR, "test": root / TEST_DIR}
        for folder in folders.values():
            folder.mkdir()
        for plan, rng, style in patients:
            folder = folders[plan.split] / plan.patient_id
            folder.mkdir()
            for k in range(style.n_images):
                _write_jpeg(folder / f"{k:06d}.jpg", render_image(rng, style, spec.image_size))

        header = list(CSV_COLUMNS)
        (root / CLINICAL_CSV).write_text(
            csv_text(["", *header], [[i, *row] for i, row in enumerate(rows)])
        )
        for split, name in (("train", TRAIN_CSV), ("test", TEST_CSV)):
            subset = [row for (plan, _, _), row in zip(patients, rows) if plan.split == split]
            (folders[split] / name).write_text(csv_text(header, subset))
        # Beside the tree, not in it: the challenge layout hides these labels.
        truth = sorted(((int(plan.patient_id[1:]), plan) for plan, _, _ in patients if plan.split == "test"))
        write_text(
            dest / TEST_LABELS_NAME,
            csv_text(["ID", "LABEL"], [[plan.patient_id, plan.label] for _, plan in truth]),
        )
    return final


def hidden_labels_path(root: str | Path) -> Path:
    """Where :func:`generate_dlmi` put the test labels of the tree ``root`` (beside it)."""
    return Path(root).parent / TEST_LABELS_NAME


def load_test_labels(root: str | Path) -> pd.DataFrame:
    """True classes of the test patients of the generated tree ``root``: ``patient_id`` and ``label`` (1 malignant).

    Raises
    ------
    FileNotFoundError
        If there is no :data:`TEST_LABELS_NAME` beside ``root`` (real data has none).
    ValueError
        If the file lacks the ``ID`` and ``LABEL`` columns.
    """
    path = hidden_labels_path(root)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist; expected the test labels written beside a generated {ROOT_NAME} "
            "tree (real DLMI data has no test labels)"
        )
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if list(table.columns) != ["ID", "LABEL"]:
        raise ValueError(f"{path}: expected columns ID, LABEL, found {', '.join(map(str, table.columns))}")
    return pd.DataFrame({"patient_id": table["ID"].astype("str"), "label": table["LABEL"].astype(int).astype("int64")})

