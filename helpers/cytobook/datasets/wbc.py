"""White-blood-cell data sets of report 3's chapter, each in its own layout.

**The course copy** the report used (Raabin-WBC cells, CAMELYON16 patches and
pRCC tiles) unpacks to::

    WBC_100/train/data/<Class>/<name>.jpg     575×575, Class one of WBC_CLASSES
    WBC_100/train/mask/<Class>/<name>.jpg     binary {0, 1}, for ~10 % of the images
    WBC_100/val/data/<Class>/<name>.jpg       no masks
    WBC_50/train/...  WBC_10/train/...  WBC_1/train/...   nested subsets of WBC_100/train
    CAM16_100cls_10mask/{train,val,test}/data/{normal,tumor}/<name>.jpg   384×384
    CAM16_100cls_10mask/train/mask/...        tumour masks only (in tumor/ or flat)
    pRCC_nolabel/<name>.jpg                   2000×2000, unlabelled

**Raabin-WBC** as released: ``Train/``, ``TestA/``, ``TestB/``, each with the
five class folders. **PBC** (Acevedo et al. 2020): one lower-case folder per
class, of which the five white-cell types are read (``basophil`` ...
``neutrophil``; ``erythroblast``, ``ig`` and ``platelet`` are left out).
**Zheng et al. 2018**: ``Dataset N/NNN.bmp`` with the expert mask
``Dataset N/NNN.png`` (nucleus 255, cytoplasm 128, background 0) and labels in
``Class Labels of Dataset N.csv`` (1 neutrophil, 2 lymphocyte, 3 monocyte,
4 eosinophil, 5 basophil; the second column is ``class label`` in one file and
``class`` in the other).

Each ``load_*`` reads a copy into one table of :data:`COLUMNS` and stops at the
first layout problem; each ``check_*`` runs the same scan, collects every
problem and can decode every image. :func:`read_binary_mask` and
:func:`read_zheng_mask` read the two kinds of masks.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import read_image
from .check import CheckReport, ProblemCollector, checked_scan, class_counts, read_csv_table, visible

#: The five white-cell types, in the order of their labels 0-4 (the course copy's folder names).
WBC_CLASSES: tuple[str, ...] = ("Basophil", "Eosinophil", "Lymphocyte", "Monocyte", "Neutrophil")
#: The course copy's nested training fractions, in per cent of WBC_100.
FRACTIONS: tuple[int, ...] = (1, 10, 50, 100)
CAM16_DIR = "CAM16_100cls_10mask"
#: CAMELYON16 classes in label order (1 = tumour).
CAM16_CLASSES: tuple[str, ...] = ("normal", "tumor")
CAM16_SPLITS: tuple[str, ...] = ("train", "val", "test")
PRCC_DIR = "pRCC_nolabel"
RAABIN_SPLITS: dict[str, str] = {"Train": "train", "TestA": "test_a", "TestB": "test_b"}
#: Zheng et al.'s label numbers.
ZHENG_LABELS: dict[int, str] = {1: "Neutrophil", 2: "Lymphocyte", 3: "Monocyte", 4: "Eosinophil", 5: "Basophil"}
ZHENG_CSV = "Class Labels of {dataset}.csv"
#: Image files the loaders read (case-insensitive).
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
#: Columns of every table returned here, in order: ``source`` names the data set (``wbc``, ``cam16``,
#: ``prcc``, ``raabin``, ``pbc``, ``zheng``), ``split`` its part, ``fraction`` the course copy's WBC_<n>.
COLUMNS: tuple[str, ...] = ("path", "mask_path", "source", "split", "fraction", "label", "label_name")

DATASET_NAMES = {
    "wbc": "WBC course copy (Raabin-WBC, CAMELYON16, pRCC)",
    "raabin": "Raabin-WBC",
    "pbc": "PBC white cells (Acevedo et al. 2020)",
    "zheng": "WBC segmentation (Zheng et al. 2018)",
}


#: Environment variable naming the folder of real samples (``pbc/``, ``wbc_seg_zheng2018/``, ...).
REAL_DATA_ENV = "CYTOBOOK_REAL_DATA"
#: Folders of the real white-cell sets inside that folder.
REAL_FOLDERS: dict[str, str] = {"pbc": "pbc", "zheng": "wbc_seg_zheng2018"}


def real_data_folders(real_data: str | os.PathLike | None = None) -> dict[str, Path]:
    """The real white-cell sets that are present: ``{"pbc": path, "zheng": path}`` or fewer.

    They are looked for in ``real_data``, else in ``$CYTOBOOK_REAL_DATA``; a
    set whose folder is absent is left out (none at all when neither is set).
    """
    root = real_data or os.environ.get(REAL_DATA_ENV)
    if not root:
        return {}
    folders = {name: Path(root) / folder for name, folder in REAL_FOLDERS.items()}
    return {name: folder for name, folder in folders.items() if folder.is_dir()}


class WbcLayoutError(ValueError):
    """A copy that does not follow its layout; the message starts with the offending path."""

    problem = None


# --------------------------------------------------------------------------- masks


def read_binary_mask(path: str | os.PathLike) -> np.ndarray:
    """A course-copy mask as ``bool`` ``(H, W)``: stored as {0, 1} (or {0, 255}), JPEG noise rounded away.

    Raises
    ------
    cytobook.io.ImageReadError
        If the file cannot be decoded (the message names it).
    """
    mask = read_image(path, mode="L")
    # {0, 1} masks saved as JPEG come back as 0-2 near edges; {0, 255} ones as 0-255.
    return mask >= (128 if mask.max() > 2 else 1)


def read_zheng_mask(path: str | os.PathLike) -> np.ndarray:
    """Zheng et al.'s expert mask as ``uint8`` labels: 0 background, 1 cytoplasm, 2 nucleus.

    The files store 0, 128 and 255; the few stray values are rounded to the nearest of the three.
    """
    mask = read_image(path, mode="L").astype(np.int16)
    levels = np.array([0, 128, 255], dtype=np.int16)
    return np.abs(mask[..., None] - levels).argmin(axis=-1).astype(np.uint8)


# --------------------------------------------------------------------------- loaders and checks


def load_wbc_course(root: str | os.PathLike) -> pd.DataFrame:
    """Read the course copy (``WBC_<n>``, ``CAM16_100cls_10mask``, ``pRCC_nolabel``) into one table.

    Parameters
    ----------
    root
        The folder holding ``WBC_100/`` (required) and, for pretraining,
        ``CAM16_100cls_10mask/`` and ``pRCC_nolabel/`` (read when present).

    Returns
    -------
    pandas.DataFrame
        One row per image and fraction, columns :data:`COLUMNS`: WBC rows
        (``source`` ``wbc``) with ``split`` ``train`` (one row in each
        ``WBC_<n>`` holding the image, ``fraction`` n) or ``val`` (fraction
        100), ``label`` 0-4 in :data:`WBC_CLASSES` and ``mask_path`` where a
        mask exists; CAMELYON16 rows (``cam16``, label 1 = tumor); pRCC rows
        (``prcc``, no label).

    Raises
    ------
    WbcLayoutError
        At the first departure from the layout (a missing class folder, an
        empty one, a mask without its image, fractions that are not nested...),
        naming the path and what was expected; :func:`check_wbc_course` lists them all.
    """
    return _scan_course(Path(root), _strict())


def check_wbc_course(root: str | os.PathLike, decode: bool = True, workers: int = 8) -> CheckReport:
    """Check a course copy and report every problem; counts by fraction/split × class (see :func:`load_wbc_course`)."""
    return _check("wbc", root, _scan_course, _course_counts, decode, workers)


def _course_counts(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    wbc = table[table["source"] == "wbc"]
    others = table[table["source"] != "wbc"]
    return {
        "WBC images by part × class": class_counts(
            wbc.assign(part="WBC_" + wbc["fraction"].astype(str) + " " + wbc["split"]), "part"),
        "WBC masks by part": (wbc.assign(mask=wbc["mask_path"].notna()).groupby(["fraction", "split"])["mask"]
                              .sum().astype(int).to_frame("masks")),
        "pretraining images by source/split × class": class_counts(
            others.assign(part=others["source"] + " " + others["split"]), "part"),
    }


def load_raabin(root: str | os.PathLike) -> pd.DataFrame:
    """Read Raabin-WBC as released (``Train/``, ``TestA/``, ``TestB/`` with the five class folders).

    ``split`` is ``train``, ``test_a`` or ``test_b``; the folders present are
    read (``Train/`` is required). Raises :class:`WbcLayoutError` as :func:`load_wbc_course`.
    """
    return _scan_raabin(Path(root), _strict())


def check_raabin(root: str | os.PathLike, decode: bool = True, workers: int = 8) -> CheckReport:
    """Check a Raabin-WBC copy and report every problem; counts by split × class."""
    return _check("raabin", root, _scan_raabin, _split_counts, decode, workers)


def load_pbc(root: str | os.PathLike) -> pd.DataFrame:
    """Read the five white-cell classes of a PBC copy (one lower-case folder per class).

    ``split`` is ``all`` (PBC has no split; the notebooks draw one). The
    other PBC classes (``erythroblast``, ``ig``, ``platelet``) are left out.
    Raises :class:`WbcLayoutError` as :func:`load_wbc_course`.
    """
    return _scan_pbc(Path(root), _strict())


def check_pbc(root: str | os.PathLike, decode: bool = True, workers: int = 8) -> CheckReport:
    """Check a PBC copy and report every problem; counts by class, and the folders left out."""
    report = _check("pbc", root, _scan_pbc, _split_counts, decode, workers)
    folder = Path(root)
    left_out = [e for e in visible(folder) if e.is_dir() and e.name.capitalize() not in WBC_CLASSES] \
        if folder.is_dir() else []
    report.counts["folders left out (not one of the five white-cell types)"] = {
        e.name: {"images": len(visible(Path(e.path)))} for e in left_out}
    return report


def load_zheng(root: str | os.PathLike) -> pd.DataFrame:
    """Read Zheng et al.'s white cells with expert masks (``Dataset N/`` and their label CSVs).

    ``split`` is the data set's name (``Dataset 1``, ``Dataset 2``: two
    laboratories, scanners and stains); ``mask_path`` the expert mask (read
    it with :func:`read_zheng_mask`). Raises :class:`WbcLayoutError` as :func:`load_wbc_course`.
    """
    return _scan_zheng(Path(root), _strict())


def check_zheng(root: str | os.PathLike, decode: bool = True, workers: int = 8) -> CheckReport:
    """Check a Zheng et al. copy and report every problem; counts by data set × class."""
    return _check("zheng", root, _scan_zheng, _split_counts, decode, workers)


# --------------------------------------------------------------------------- scans


def _strict() -> ProblemCollector:
    return ProblemCollector(strict=True, error_type=WbcLayoutError)


def _check(name: str, root: str | os.PathLike, scan: Callable[[Path, ProblemCollector], pd.DataFrame],
           counts: Callable[[pd.DataFrame], dict], decode: bool, workers: int) -> CheckReport:
    return checked_scan(DATASET_NAMES[name], root, scan, counts, WbcLayoutError, decode, workers)


def _split_counts(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {"images by split × class": class_counts(table, "split")}


def _is_image(entry: os.DirEntry) -> bool:
    return entry.is_file() and os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES


def _images(folder: Path, problems: ProblemCollector, expected: str) -> list[os.DirEntry]:
    """The image files of ``folder``: a problem for anything else in it, and for an empty folder."""
    found = []
    for entry in visible(folder):
        if _is_image(entry):
            found.append(entry)
        else:
            problems.add(entry.path, f"expected only image files ({', '.join(IMAGE_SUFFIXES)}) here, found "
                         f"{'a folder' if entry.is_dir() else 'another file'}")
    if not found:
        problems.add(folder, f"empty; expected {expected}")
    return found


def _class_folders(folder: Path, classes: Iterable[str], problems: ProblemCollector, what: str,
                   name_of: Callable[[str], str] = str) -> list[tuple[int, Path]]:
    """``(label, folder)`` of each class folder ``name_of(class)`` under ``folder``; a problem per missing one."""
    found = []
    for label, name in enumerate(classes):
        path = folder / name_of(name)
        if path.is_dir():
            found.append((label, path))
        else:
            problems.add(path, f"missing; expected a folder per class ({', '.join(map(name_of, classes))}) {what}")
    return found


def _row(path: str, source: str, split: str, label: int | None, label_name: str | None,
         mask_path: str | None = None, fraction: int | None = None) -> dict:
    return {"path": str(path), "mask_path": mask_path, "source": source, "split": split, "fraction": fraction,
            "label": label, "label_name": label_name}


def _table(rows: list[dict]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    return table.astype({"fraction": "Int64", "label": "Int64"})


def _scan_course(root: Path, problems: ProblemCollector) -> pd.DataFrame:
    root = root.expanduser().absolute()
    rows: list[dict] = []
    if not (root / "WBC_100").is_dir():
        problems.add(root / "WBC_100", "missing; expected the course copy's folder holding WBC_100/ (and WBC_50/, "
                     f"WBC_10/, WBC_1/, {CAM16_DIR}/, {PRCC_DIR}/)")
        return _table(rows)
    names: dict[int, set[tuple[str, str]]] = {}
    for fraction in FRACTIONS:
        folder = root / f"WBC_{fraction}"
        if not folder.is_dir():
            if fraction != 100:
                problems.add(folder, f"missing; expected the nested training fractions WBC_{{1,10,50}} beside WBC_100")
            continue
        splits = ("train", "val") if fraction == 100 else ("train",)
        for split in splits:
            found = _labelled_with_masks(folder / split, WBC_CLASSES, problems, mask_classes=WBC_CLASSES,
                                         what=f"in WBC_{fraction}/{split}/data/")
            rows += [_row(path, "wbc", split, label, WBC_CLASSES[label], mask, fraction)
                     for label, path, mask in found]
            if split == "train":
                names[fraction] = {(WBC_CLASSES[label], os.path.basename(path)) for label, path, _ in found}
    _check_nested(root, names, problems)
    cam16 = root / CAM16_DIR
    if cam16.is_dir():
        for split in CAM16_SPLITS:
            found = _labelled_with_masks(cam16 / split, CAM16_CLASSES, problems,
                                         mask_classes=("tumor",) if split == "train" else (),
                                         what=f"in {CAM16_DIR}/{split}/data/")
            rows += [_row(path, "cam16", split, label, CAM16_CLASSES[label], mask) for label, path, mask in found]
    prcc = root / PRCC_DIR
    if prcc.is_dir():
        rows += [_row(e.path, "prcc", "train", None, None) for e in _images(prcc, problems, "unlabelled pRCC tiles")]
    return _table(rows)


def _labelled_with_masks(split_folder: Path, classes: tuple[str, ...], problems: ProblemCollector, *,
                         mask_classes: tuple[str, ...], what: str) -> list[tuple[int, str, str | None]]:
    """``(label, image, mask or None)`` under ``split_folder/data/<class>/``, masks from ``split_folder/mask/``.

    A mask has its image's name (any image suffix) in ``mask/<class>/`` or
    directly in ``mask/``; only ``mask_classes`` may have masks.
    """
    data = split_folder / "data"
    if not data.is_dir():
        problems.add(data, f"missing; expected a folder per class ({', '.join(classes)}) {what}")
        return []
    images: list[tuple[int, str]] = []
    for label, folder in _class_folders(data, classes, problems, what):
        images += [(label, e.path) for e in _images(folder, problems, f"{classes[label]} images")]
    masks = _masks(split_folder / "mask", classes, problems)
    by_stem = {(classes[label], Path(path).stem): path for label, path in images}
    for (name, stem), mask in masks.items():
        if name is not None and name not in mask_classes or name is None and not mask_classes:
            problems.add(mask, f"a mask of class {name}; expected masks only for {', '.join(mask_classes) or 'none'} "
                         f"images here")
        elif not any((cls, stem) in by_stem for cls in ([name] if name else mask_classes)):
            problems.add(mask, f"no image named {stem}.* in {data}/{name or '<class>'}/; expected every mask to have "
                         "its image")
    found = []
    for label, path in images:
        stem = Path(path).stem
        mask = masks.get((classes[label], stem)) or masks.get((None, stem))
        found.append((label, path, mask if classes[label] in mask_classes else None))
    return found


def _masks(folder: Path, classes: tuple[str, ...], problems: ProblemCollector) -> dict[tuple[str | None, str], str]:
    """Masks under ``folder``, by (class folder or None when flat, file stem)."""
    if not folder.is_dir():
        return {}
    masks: dict[tuple[str | None, str], str] = {}
    for entry in visible(folder):
        if entry.is_dir():
            if entry.name not in classes:
                problems.add(entry.path, f"unknown class folder; expected masks in one of {', '.join(classes)}")
                continue
            masks.update({(entry.name, Path(e.name).stem): e.path for e in visible(Path(entry.path)) if _is_image(e)})
        elif _is_image(entry):
            masks[(None, Path(entry.name).stem)] = entry.path
    return masks


def _check_nested(root: Path, names: dict[int, set[tuple[str, str]]], problems: ProblemCollector) -> None:
    present = sorted(names)
    for smaller, larger in zip(present, present[1:]):
        extra = sorted(names[smaller] - names[larger])
        if extra:
            cls, name = extra[0]
            problems.add(root / f"WBC_{smaller}" / "train" / "data" / cls / name,
                         f"not in WBC_{larger}/train ({len(extra)} such image(s) in WBC_{smaller}); expected the "
                         "fractions nested (WBC_1 in WBC_10 in WBC_50 in WBC_100)")


def _scan_raabin(root: Path, problems: ProblemCollector) -> pd.DataFrame:
    root = root.expanduser().absolute()
    rows: list[dict] = []
    if not (root / "Train").is_dir():
        problems.add(root / "Train", "missing; expected Raabin-WBC's Train/ (and TestA/, TestB/) with the five class "
                     "folders")
        return _table(rows)
    for folder_name, split in RAABIN_SPLITS.items():
        if not (root / folder_name).is_dir():
            continue
        for label, folder in _class_folders(root / folder_name, WBC_CLASSES, problems, f"in {folder_name}/"):
            rows += [_row(e.path, "raabin", split, label, WBC_CLASSES[label])
                     for e in _images(folder, problems, f"{WBC_CLASSES[label]} images")]
    return _table(rows)


def _scan_pbc(root: Path, problems: ProblemCollector) -> pd.DataFrame:
    root = root.expanduser().absolute()
    rows: list[dict] = []
    if not root.is_dir():
        problems.add(root, "no such folder; expected PBC's class folders (basophil/, eosinophil/, lymphocyte/, ...)")
        return _table(rows)
    for label, folder in _class_folders(root, WBC_CLASSES, problems, "(PBC's lower-case names)", name_of=str.lower):
        rows += [_row(e.path, "pbc", "all", label, WBC_CLASSES[label])
                 for e in _images(folder, problems, f"{WBC_CLASSES[label].lower()} images")]
    return _table(rows)


def _scan_zheng(root: Path, problems: ProblemCollector) -> pd.DataFrame:
    root = root.expanduser().absolute()
    rows: list[dict] = []
    folders = sorted((Path(e.path) for e in visible(root) if e.is_dir() and re.fullmatch(r"Dataset \d+", e.name)),
                     key=lambda p: int(p.name.split()[1])) if root.is_dir() else []
    if not folders:
        problems.add(root, "no 'Dataset <n>' folder; expected Zheng et al.'s Dataset 1/ and Dataset 2/ with "
                     "NNN.bmp images, NNN.png masks and 'Class Labels of Dataset <n>.csv' beside them")
    for folder in folders:
        rows += _scan_zheng_dataset(root, folder, problems)
    return _table(rows)


def _scan_zheng_dataset(root: Path, folder: Path, problems: ProblemCollector) -> list[dict]:
    csv = root / ZHENG_CSV.format(dataset=folder.name)
    if not csv.is_file():
        problems.add(csv, f"missing; expected the labels of {folder.name} (image ID, class label 1-5)")
        return []
    table = read_csv_table(csv, ("image ID",), problems, note=" and a class column ('class label' or 'class')")
    if table is None:
        return []
    label_column = next((c for c in ("class label", "class") if c in table.columns), None)
    if label_column is None:
        problems.add(csv, f"no class column; expected 'class label' or 'class', found {', '.join(table.columns)}")
        return []
    images = {Path(e.name).stem: e for e in visible(folder) if e.is_file() and e.name.lower().endswith(".bmp")}
    rows, listed = [], set()
    for number, (image_id, label_text) in enumerate(zip(table["image ID"], table[label_column]), start=1):
        at = f"row {number} (line {number + 1})"
        image_id, label_text = image_id.strip(), label_text.strip()
        if not image_id.isdigit() or not label_text.isdigit() or int(label_text) not in ZHENG_LABELS:
            problems.add(csv, f"{at}: image ID {image_id!r}, class {label_text!r}; expected a number and a class 1-5 "
                         f"({', '.join(f'{k} {v}' for k, v in ZHENG_LABELS.items())})")
            continue
        stem = f"{int(image_id):03d}"
        listed.add(stem)
        image, mask = folder / f"{stem}.bmp", folder / f"{stem}.png"
        if not image.is_file() or not mask.is_file():
            problems.add(image if not image.is_file() else mask,
                         f"{at} of {csv.name} names image {image_id}; expected {stem}.bmp and its mask {stem}.png")
            continue
        name = ZHENG_LABELS[int(label_text)]
        rows.append(_row(str(image), "zheng", folder.name, WBC_CLASSES.index(name), name, str(mask)))
    for stem, entry in sorted(images.items()):
        if stem not in listed:
            problems.add(entry.path, f"no row of {csv.name} labels it; expected every image labelled")
    return rows
