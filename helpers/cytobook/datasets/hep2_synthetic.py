"""Seeded generators of look-alike HEp-2 data in each layout that :mod:`.hep2` reads.

Report 5's images (the "patterns" and "HEP Annot" fields of a Paris hospital
laboratory) and the ICPR contests' cells may not be redistributed, yet its
notebooks have to run without them. The cells and fields are drawn by
:mod:`.hep2_drawing`; this module writes them in three layouts:

* :func:`generate_i3a`, ICPR 2014 I3A task 1: ``training/``, ``validation/``
  and ``test/`` of ``%05d.png`` grayscale cells (contrast-stretched, as the
  release's), labelled in one ``gt_training.csv`` (``Image ID,Image class``,
  CRLF line ends as the release's); IDs are shuffled across the splits, as
  there; classes in the release's proportions (Golgi the rarest);
* :func:`generate_mivia`, ICPR 2012: ``training.csv`` (``ID;intensity;width;height``),
  ``gt_training.csv`` (``ID;pattern``), ``training/<ID>.png`` and the same for
  ``test``; cells cropped around their nucleus at the camera's levels, each
  well ``positive`` or ``intermediate``;
* :func:`generate_fields`, the report's field folders: ``patterns/pattern
  1`` ... ``pattern 14`` (each with an empty ``masks/`` folder, as the
  report received them; the classes they show are :data:`PATTERN_TRUTH`,
  unlabelled in the layout) and ``HEP Annot/<class>/`` for the 47 classes of
  :data:`~cytobook.datasets.hep2.HEP_ANNOT_CLASSES`, composite ones drawing
  both their patterns.

Cells come in specimens of :data:`SPECIMEN_CELLS` cells of one class that share
a field style (exposure, noise, blur), as a contest's cells come from a few
dozen slides. The same seed and spec give byte-identical files (same NumPy,
OpenCV and Pillow on one platform); each tree is built under a temporary
name, so an interrupted run leaves none.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..io import atomic_directory, csv_text, new_dataset_root
from ..profiles import Hep2Spec
from .hep2 import (FIELD_COLLECTIONS, HEP_ANNOT_CLASSES, I3A_CLASSES, I3A_CSV, I3A_CSV_COLUMNS, I3A_SPLITS,
                   MASKS_DIR, MIVIA_CLASSES, MIVIA_COLUMNS, MIVIA_INTENSITIES, MIVIA_PARTS)
from .hep2_drawing import FieldStyle, render_cell, render_field

__all__ = ["GENERATOR_VERSION", "I3A_SHARES", "PATTERN_TRUTH", "ROOT_NAMES", "SPECIMEN_CELLS", "generate_fields",
           "generate_i3a", "generate_mivia", "split_counts"]

#: Bump whenever the generated images, a layout or a profile's sizes change: it is part of the cache key.
GENERATOR_VERSION = 2
#: The top folder each generator writes.
ROOT_NAMES = {"hep2": "hep2_icpr2014", "hep2_mivia": "hep2_icpr2012", "hep2_fields": "hep2_fields"}
#: Cells per class in the ICPR 2014 task-1 release (13,596 in all): the generated classes keep these proportions.
I3A_SHARES: dict[str, int] = {"Homogeneous": 2494, "Speckled": 2831, "Nucleolar": 2598, "Centromere": 2741,
                              "NuMem": 2208, "Golgi": 724}
#: The class each of the 14 generated ``patterns`` shows (the folders are unlabelled, as in the report; its
#: pattern 10 looked speckled with anti-SAE1 cells, Figures 25-26).
PATTERN_TRUTH: dict[str, str] = {
    "pattern 1": "Homogene", "pattern 2": "mouchete fin", "pattern 3": "Centromere", "pattern 4": "nucleole fibrillarine",
    "pattern 5": "Dot sp100", "pattern 6": "Cyto Golgi", "pattern 7": "Cyto Fibreux", "pattern 8": "CytoD PL7",
    "pattern 9": "DFS70", "pattern 10": "mouchete SAE1", "pattern 11": "Cyto Ponctue GW",
    "pattern 12": "MCA perichromine", "pattern 13": "pleomorphe PCNA", "pattern 14": "NUMA1",
}
#: Cells of one class sharing a field style (a specimen).
SPECIMEN_CELLS = 20

# Stream codes: one per layout and part, so adding images to one part moves no other.
_STREAMS = {"i3a": 1, "i3a_ids": 2, "mivia": 3, "patterns": 4, "annot": 5, "annot_counts": 6, "i3a_style": 7,
            "mivia_style": 8}


def split_counts(total: int, shares: dict[str, int] | None = None) -> dict[str, int]:
    """``total`` cells over the I3A classes in proportion to ``shares`` (largest remainders), at least one each."""
    shares = shares or I3A_SHARES
    weights = np.array(list(shares.values()), dtype=np.float64)
    exact = total * weights / weights.sum()
    counts = np.maximum(1, np.floor(exact).astype(int))
    for index in np.argsort(-(exact - np.floor(exact)), kind="stable"):
        if counts.sum() >= total:
            break
        counts[index] += 1
    return dict(zip(shares, (int(c) for c in counts)))


def generate_i3a(dest: str | Path, spec: Hep2Spec, seed: int = 0) -> Path:
    """Write the ICPR 2014 I3A task-1 layout to ``dest/hep2_icpr2014``.

    Returns its root. Raises ``FileExistsError`` if it exists (never
    overwritten) and ``ValueError`` for an invalid spec or seed.
    """
    final = _start(dest, "hep2", spec, seed)
    plan = [(folder, name) for folder, total in zip(I3A_SPLITS, spec.i3a_cells)
            for name, count in split_counts(total).items() for _ in range(count)]
    # IDs shuffled across the splits, as the release's (training 1, 4, 8...; validation 6, 12...).
    ids = np.random.default_rng([seed, _STREAMS["i3a_ids"]]).permutation(len(plan)) + 1
    rows = []
    with atomic_directory(final) as root:
        for folder in I3A_SPLITS:
            (root / folder).mkdir()
        seen: dict[tuple[str, str], int] = {}
        for (folder, name), image_id in zip(plan, ids):
            index = seen[(folder, name)] = seen.get((folder, name), -1) + 1
            split_index, label = list(I3A_SPLITS).index(folder), I3A_CLASSES.index(name)
            style = _specimen_style(seed, split_index, label, index)
            rng = np.random.default_rng([seed, _STREAMS["i3a"], split_index, label, index])
            Image.fromarray(render_cell(rng, name, spec.cell_size, style)).save(root / folder / f"{image_id:05d}.png")
            rows.append((int(image_id), name))
        text = csv_text(I3A_CSV_COLUMNS, sorted(rows))
        (root / I3A_CSV).write_bytes(text.replace("\n", "\r\n").encode())
    return final


def generate_mivia(dest: str | Path, spec: Hep2Spec, seed: int = 0) -> Path:
    """Write the ICPR 2012 (MIVIA) layout to ``dest/hep2_icpr2012``: CSVs and ``training/``, ``test/`` cells.

    Cells are spread evenly over the six classes; IDs run on from training to
    test. Raises as :func:`generate_i3a`.
    """
    final = _start(dest, "hep2_mivia", spec, seed)
    next_id = 1
    with atomic_directory(final) as root:
        for split_index, ((_, folder, info_name, gt_name), total) in enumerate(zip(MIVIA_PARTS, spec.mivia_cells)):
            (root / folder).mkdir()
            info, truth = [], []
            for index in range(total):
                label = index % len(MIVIA_CLASSES)
                within = index // len(MIVIA_CLASSES)
                specimen = np.random.default_rng([seed, _STREAMS["mivia_style"], split_index, label,
                                                  within // SPECIMEN_CELLS])
                intensity = MIVIA_INTENSITIES[int(specimen.integers(2))]
                style = FieldStyle.draw(specimen, intensity)
                rng = np.random.default_rng([seed, _STREAMS["mivia"], split_index, label, within])
                side = int(round(spec.cell_size * rng.uniform(0.85, 1.15)))
                cell = render_cell(rng, MIVIA_CLASSES[label], side, style, stretch=False)
                # A bounding box of the cell: its own width and height.
                height = side - int(rng.integers(0, max(1, side // 8)))
                cell = cell[(side - height) // 2:(side - height) // 2 + height]
                Image.fromarray(cell).save(root / folder / f"{next_id}.png")
                info.append((next_id, intensity, cell.shape[1], cell.shape[0]))
                truth.append((next_id, MIVIA_CLASSES[label]))
                next_id += 1
            (root / info_name).write_text(_semicolon(MIVIA_COLUMNS, info))
            (root / gt_name).write_text(_semicolon(("ID", "pattern"), truth))
    return final


def generate_fields(dest: str | Path, spec: Hep2Spec, seed: int = 0) -> Path:
    """Write the report's field folders (``patterns/``, ``HEP Annot/``) to ``dest/hep2_fields``.

    ``patterns/pattern <n>/`` holds ``patterns_per_class`` fields of
    :data:`PATTERN_TRUTH`'s class and an empty ``masks/`` folder; ``HEP
    Annot/<class>/`` a number of fields drawn in ``annot_per_class``, skewed
    towards the low end as the report's Figure 1. Raises as :func:`generate_i3a`.
    """
    final = _start(dest, "hep2_fields", spec, seed)
    patterns_dir, annot_dir = list(FIELD_COLLECTIONS)
    counts = np.random.default_rng([seed, _STREAMS["annot_counts"]])
    with atomic_directory(final) as root:
        for index, (folder, name) in enumerate(PATTERN_TRUTH.items()):
            rng = np.random.default_rng([seed, _STREAMS["patterns"], index])
            (root / patterns_dir / folder / MASKS_DIR).mkdir(parents=True)
            for k in range(int(rng.integers(spec.patterns_per_class[0], spec.patterns_per_class[1] + 1))):
                field_rng = np.random.default_rng([seed, _STREAMS["patterns"], index, k, 1])
                _save_field(root / patterns_dir / folder / f"{k + 1:03d}.png",
                            render_field(field_rng, name, spec.field_size, spec.nucleus_radius))
        low, high = spec.annot_per_class
        for index, name in enumerate(HEP_ANNOT_CLASSES):
            # u² skews towards few fields: most classes hold a handful, a few dozens.
            n = int(round(low * (high / low) ** (counts.uniform() ** 2)))
            (root / annot_dir / name).mkdir(parents=True)
            for k in range(min(max(n, low), high)):
                field_rng = np.random.default_rng([seed, _STREAMS["annot"], index, k])
                _save_field(root / annot_dir / name / f"{k + 1:03d}.png",
                            render_field(field_rng, name, spec.field_size, spec.nucleus_radius))
    return final


# --------------------------------------------------------------------------- shared


def _start(dest: str | Path, layout: str, spec: Hep2Spec, seed: int) -> Path:
    _check_spec(spec)
    return new_dataset_root(dest, ROOT_NAMES[layout], seed)


def _check_spec(spec: Hep2Spec) -> None:
    if spec.cell_size < 32 or spec.field_size < 64:
        raise ValueError(f"cells must be at least 32 px and fields 64 px, got {spec.cell_size} and {spec.field_size}")
    if len(spec.i3a_cells) != len(I3A_SPLITS) or min(spec.i3a_cells) < len(I3A_CLASSES):
        raise ValueError(f"i3a_cells gives (training, validation, test), each at least {len(I3A_CLASSES)} (one per "
                         f"class), got {spec.i3a_cells}")
    if len(spec.mivia_cells) != len(MIVIA_PARTS) or min(spec.mivia_cells) < len(MIVIA_CLASSES):
        raise ValueError(f"mivia_cells gives (training, test), each at least {len(MIVIA_CLASSES)}, got "
                         f"{spec.mivia_cells}")
    if not 4 <= spec.nucleus_radius <= spec.field_size / 4:
        raise ValueError(f"nucleus_radius must be 4 px to a quarter of the field, got {spec.nucleus_radius}")
    for name, (low, high) in (("patterns_per_class", spec.patterns_per_class),
                              ("annot_per_class", spec.annot_per_class)):
        if not 1 <= low <= high:
            raise ValueError(f"{name} is an inclusive range (low, high) with 1 <= low <= high, got {(low, high)}")


def _specimen_style(seed: int, split_index: int, label: int, index: int) -> FieldStyle:
    specimen = index // SPECIMEN_CELLS
    return FieldStyle.draw(np.random.default_rng([seed, _STREAMS["i3a_style"], split_index, label, specimen]))


def _semicolon(header: tuple[str, ...], rows: list[tuple]) -> str:
    return "\n".join(";".join(str(v) for v in row) for row in [header, *rows]) + "\n"


def _save_field(path: Path, image: np.ndarray) -> None:
    # PNG: lossless, as a fluorescence camera's export; inside a tree built under a temporary name.
    Image.fromarray(image).save(path, format="PNG")
