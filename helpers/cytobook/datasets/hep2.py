"""HEp-2 antinuclear-antibody data sets of report 5's chapter, each in its own layout.

**ICPR 2014 I3A, task 1** (cells), as released::

    gt_training.csv            Image ID,Image class      (one file for every split; IDs unpadded: 1, 4, 6 ...)
    training/00001.png ...     78×78 grayscale cells, named %05d.png
    validation/00006.png ...
    test/...                   (read when present; its cells must have rows too)

with the classes of :data:`I3A_CLASSES` (``NuMem`` the nuclear membrane).

**ICPR 2012 (MIVIA)** (cells): semicolon-separated ``training.csv``
(``ID;intensity;width;height``, intensity ``positive`` or ``intermediate``)
and ``gt_training.csv`` (``ID;pattern``), classes :data:`MIVIA_CLASSES`. The
CSVs do not say where the images lie; *our choice*: ``training/<ID>.png``
beside them (``<ID>`` as written in the CSV, or zero-padded when numeric,
e.g. ``training/00012.png`` for ID 12), and likewise ``test.csv``,
``gt_test.csv`` and ``test/`` when a test part is present.

**Field images** (the report's "patterns" and "HEP Annot" folders): one
folder per class, each holding whole immunofluorescence fields (dozens of
cells, signal in the green channel)::

    patterns/pattern 10/<image>.png            14 unlabelled patterns, 4-5 fields each
    patterns/pattern 10/masks/<image>.png      optional masks named as their image (empty in the report)
    HEP Annot/Mouchete SAE1/<image>.png        47 classes, some composite, 1-70 fields each
    HEP Annot/<group>/<class>/<image>.png      a grouping level is allowed (the report's ten sub-folders)

A class name can combine several labels (``Mou CytoD PL7`` is speckled,
cytoplasmic dense and anti-PL7): :func:`class_tokens` splits it through
:data:`LABEL_SYNONYMS` for the multi-label models, and :func:`multi_hot`
turns a column of class names into a 0/1 table.

Each ``load_*`` reads a copy into one table of :data:`COLUMNS` and stops at the
first layout problem (:class:`Hep2LayoutError`, naming the path); each
``check_*`` runs the same scan, collects every problem and can decode every image.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd
from PIL import Image

from .check import CheckReport, ProblemCollector, checked_scan, class_counts, read_csv_table, visible

#: The six I3A task-1 classes, in the order of their labels 0-5 (the spellings of ``gt_training.csv``).
I3A_CLASSES: tuple[str, ...] = ("Homogeneous", "Speckled", "Nucleolar", "Centromere", "NuMem", "Golgi")
#: I3A's split folders and the ``split`` they are given in the table, in order.
I3A_SPLITS: dict[str, str] = {"training": "train", "validation": "val", "test": "test"}
I3A_CSV = "gt_training.csv"
I3A_CSV_COLUMNS: tuple[str, str] = ("Image ID", "Image class")
#: The six ICPR 2012 classes, in label order (lower case with underscores, as in the MIVIA CSVs; matched
#: ignoring case).
MIVIA_CLASSES: tuple[str, ...] = ("homogeneous", "fine_speckled", "coarse_speckled", "nucleolar", "centromere",
                                  "cytoplasmatic")
#: The report's 47 "HEP Annot" classes, as its Figure 23 numbers them (0-46); some are composite.
HEP_ANNOT_CLASSES: tuple[str, ...] = (
    "Centromere", "Controle Neg", "Cyto APL", "Cyto Fibreux", "Cyto Golgi", "Cyto Ponctue GW", "Cyto Ponctue Jo1",
    "Cyto Ponctue Somes", "Cyto atypique HMCOAR", "Cyto atypique MDA5", "Cyto filamenteux Vimentine",
    "Cyto filamenteux actine", "Cyto granuleux", "CytoD EJ", "CytoD PL12", "CytoD PL7", "CytoD SRP RiboP", "DFS70",
    "Dot p80", "Dot sp100", "Homogene", "KI67", "MCA perichromine", "MSA2", "MSA3", "Mou CytoD PL7", "Mouchete SSA",
    "NUMA1", "NUMA2", "atypique OPT", "atypique pleomorphe heterogene", "centromere cytoD", "centrosome", "kinesine",
    "kinesine midbody", "mouchete M0", "mouchete NXP2", "mouchete RNApol", "mouchete SAE1", "mouchete TIF1",
    "mouchete dot RNP", "mouchete fin", "nucleole RNA pol", "nucleole ThTo", "nucleole fibrillarine", "pleomorphe PCNA",
    "vinculine",
)
#: MIVIA's fluorescence intensity levels of a well.
MIVIA_INTENSITIES: tuple[str, ...] = ("positive", "intermediate")
#: MIVIA's parts: ``(split, images folder, CSV of intensity and size, CSV of the pattern)``; training is required.
MIVIA_PARTS: tuple[tuple[str, str, str, str], ...] = (("train", "training", "training.csv", "gt_training.csv"),
                                                        ("test", "test", "test.csv", "gt_test.csv"))
MIVIA_COLUMNS: tuple[str, ...] = ("ID", "intensity", "width", "height")
#: The field-image collections of the report, by folder name, and the ``source`` they get.
FIELD_COLLECTIONS: dict[str, str] = {"patterns": "patterns", "HEP Annot": "hep_annot"}
#: Folder of optional masks inside a class folder of field images.
MASKS_DIR = "masks"
#: Image files the loaders read (case-insensitive).
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
#: Columns of every table returned here, in order: ``source`` is ``i3a``, ``mivia``, ``patterns``,
#: ``hep_annot`` (or a field folder's own name), ``image_id`` the CSV's ID (cells) or the file's stem
#: (fields), ``intensity`` MIVIA's intensity level (else missing).
COLUMNS: tuple[str, ...] = ("path", "mask_path", "source", "split", "image_id", "label", "label_name", "intensity")

DATASET_NAMES = {
    "hep2": "HEp-2 cells, ICPR 2014 I3A task 1",
    "hep2_mivia": "HEp-2 cells, ICPR 2012 (MIVIA)",
    "hep2_fields": "HEp-2 field images (patterns, HEP Annot)",
}

#: Folder of the real I3A sample inside ``$CYTOBOOK_REAL_DATA``.
REAL_FOLDER = "hep2_icpr2014"

# --------------------------------------------------------------------------- class names as labels

#: Words of class names (lower case, accents removed) and the labels they stand for. The report
#: (2.4) turned HEP Annot's 47 classes into labels that may co-occur by parsing their names ("all
#: classes containing Mouchete, speckled or Mou" share one label); this is that table, with English
#: label names. A word missing here is a label of its own (an antigen: ``sae1``, ``pl7``, ``ssa``...).
LABEL_SYNONYMS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("mouchete", "mou", "speckled", "speckle"), ("speckled",)),
    **dict.fromkeys(("homogene", "homogeneous"), ("homogeneous",)),
    **dict.fromkeys(("nucleole", "nucleolaire", "nucleolar", "nucleoli"), ("nucleolar",)),
    **dict.fromkeys(("centromere", "centromeres"), ("centromere",)),
    **dict.fromkeys(("cyto", "cytoplasmique", "cytoplasmic", "cytoplasmatic"), ("cytoplasmic",)),
    # CytoD: *our reading*, the dense (fine speckled) cytoplasm of anti-synthetase and SRP antibodies.
    "cytod": ("cytoplasmic", "cytoplasmic dense"),
    **dict.fromkeys(("fibreux", "filamenteux", "fibrous", "filamentous"), ("fibrous",)),
    **dict.fromkeys(("ponctue", "dot", "dots", "dotted"), ("dots",)),
    **dict.fromkeys(("granuleux", "granular"), ("granular",)),
    **dict.fromkeys(("atypique", "atypical"), ("atypical",)),
    **dict.fromkeys(("pleomorphe", "pleomorphic"), ("pleomorphic",)),
    **dict.fromkeys(("heterogene", "heterogeneous"), ("heterogeneous",)),
    **dict.fromkeys(("controle", "control", "neg", "negative"), ("negative",)),
    **dict.fromkeys(("numem", "membrane"), ("nuclear membrane",)),
    **dict.fromkeys(("fin", "fine"), ("fine",)),
    "coarse": ("coarse",),
    "golgi": ("golgi",),
    "fibrillarine": ("fibrillarin",),
    "kinesine": ("kinesin",),
    "vimentine": ("vimentin",),
    "actine": ("actin",),
    "vinculine": ("vinculin",),
    "perichromine": ("perichromin",),
}
# Multi-word spellings joined before the names are split into words.
_PHRASES: dict[str, str] = {"rna pol": "rnapol", "nuclear membrane": "numem"}


def class_tokens(name: str) -> frozenset[str]:
    """The labels a class name stands for: its words through :data:`LABEL_SYNONYMS`.

    Case, accents, underscores and hyphens are ignored; a word missing from
    the table is a label of its own, in lower case.

    Examples
    --------
    >>> sorted(class_tokens("Mouchete SAE1"))
    ['sae1', 'speckled']
    >>> sorted(class_tokens("Mou CytoD PL7"))
    ['cytoplasmic', 'cytoplasmic dense', 'pl7', 'speckled']
    >>> class_tokens("NuMem") == class_tokens("nuclear membrane")
    True
    """
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower().strip()
    for phrase, joined in _PHRASES.items():
        text = re.sub(rf"\b{re.escape(phrase)}\b", joined, text)
    labels: set[str] = set()
    for word in re.split(r"[\s_\-/]+", text):
        if word:
            labels.update(LABEL_SYNONYMS.get(word, (word,)))
    return frozenset(labels)


def multi_hot(names: Iterable[str]) -> pd.DataFrame:
    """A 0/1 table with one row per class name and one column per label of :func:`class_tokens` (sorted)."""
    names = list(names)
    tokens = [class_tokens(name) for name in names]
    columns = sorted(set().union(*tokens)) if tokens else []
    return pd.DataFrame([[int(c in t) for c in columns] for t in tokens], columns=columns, dtype="int64")


def real_folder(real_data: str | os.PathLike | None = None) -> Path | None:
    """The real I3A sample (``hep2_icpr2014``) in ``real_data`` or ``$CYTOBOOK_REAL_DATA``, or ``None`` if absent."""
    root = real_data or os.environ.get("CYTOBOOK_REAL_DATA")
    if not root:
        return None
    folder = Path(root) / REAL_FOLDER
    return folder if folder.is_dir() else None


def fields_label(fields_dir: str | None, profile: str, seed: int) -> str:
    """How results on field images are labelled: the user's fields, or generated ones (a pipeline check).

    The chapter's run-level ``data_dir`` is its I3A copy; the fields come
    from notebook 40's own ``fields_dir``, so their results say which they are.
    """
    if fields_dir:
        return f"fields at {fields_dir}"
    return f"generated fields (profile {profile}, seed {seed}): a pipeline check, not comparable with published numbers"


class Hep2LayoutError(ValueError):
    """A copy that does not follow its layout; the message starts with the offending path."""

    problem = None


# --------------------------------------------------------------------------- loaders and checks


def load_i3a(root: str | os.PathLike) -> pd.DataFrame:
    """Read an ICPR 2014 I3A task-1 copy (``gt_training.csv`` and the split folders) into one table.

    Parameters
    ----------
    root
        The folder holding ``gt_training.csv`` and at least one of
        ``training/``, ``validation/`` and ``test/`` (flat ``%05d.png`` files).

    Returns
    -------
    pandas.DataFrame
        One row per image, columns :data:`COLUMNS`: ``source`` ``i3a``,
        ``split`` ``train``, ``val`` or ``test`` (:data:`I3A_SPLITS`),
        ``image_id`` the CSV's ID (an ``int``), ``label`` 0-5 in
        :data:`I3A_CLASSES`; no masks, no intensity.

    Raises
    ------
    Hep2LayoutError
        At the first departure from the layout (no CSV, an image without a
        row, a row without an image, an unknown class...), naming the file
        and what was expected; :func:`check_i3a` lists them all.
    """
    return _scan_i3a(Path(root), _strict())


def check_i3a(root: str | os.PathLike, decode: bool = True, workers: int = 8) -> CheckReport:
    """Check an I3A copy and report every problem; counts by split × class (see :func:`load_i3a`)."""
    return _check("hep2", root, _scan_i3a, _split_counts, decode, workers)


def load_mivia(root: str | os.PathLike) -> pd.DataFrame:
    """Read an ICPR 2012 (MIVIA) copy into one table.

    Parameters
    ----------
    root
        The folder holding ``training.csv``, ``gt_training.csv`` and
        ``training/<ID>.png`` (and, when present, ``test.csv``,
        ``gt_test.csv`` and ``test/``; see the module's note on where the
        images lie, which the release's CSVs do not say).

    Returns
    -------
    pandas.DataFrame
        One row per image, columns :data:`COLUMNS`: ``source`` ``mivia``,
        ``split`` ``train`` or ``test``, ``image_id`` the CSV's ID (text),
        ``label`` 0-5 in :data:`MIVIA_CLASSES`, ``intensity`` ``positive``
        or ``intermediate``.

    Raises
    ------
    Hep2LayoutError
        As :func:`load_i3a`; a row whose width and height do not match its
        image is found by :func:`check_mivia` with ``decode``.
    """
    return _scan_mivia(Path(root), _strict())


def check_mivia(root: str | os.PathLike, decode: bool = True, workers: int = 8) -> CheckReport:
    """Check a MIVIA copy and report every problem; counts by split × class and by intensity.

    With ``decode``, every image is read and its size compared with the
    row's ``width`` and ``height``.
    """
    report = _check("hep2_mivia", root, _scan_mivia, _mivia_counts, decode, workers)
    if decode:
        problems = ProblemCollector(strict=False, error_type=Hep2LayoutError)
        _check_mivia_sizes(Path(root), problems)
        report.problems += problems.items
    return report


def load_fields(root: str | os.PathLike) -> pd.DataFrame:
    """Read field images stored one folder per class (the report's ``patterns`` and ``HEP Annot``).

    Parameters
    ----------
    root
        Either a folder holding ``patterns/`` and/or ``HEP Annot/`` (each read
        as a collection, ``source`` ``patterns`` or ``hep_annot``), or one
        collection itself (``source`` its folder's name). In a collection,
        a folder holding images is a class; a folder holding only folders
        is a group of classes (one level).

    Returns
    -------
    pandas.DataFrame
        One row per field image, columns :data:`COLUMNS`: ``split`` ``all``
        (the report draws its own split), ``image_id`` the file's stem,
        ``label`` the class's index in the collection's classes by name,
        ``label_name`` the class folder's name (composite names split with
        :func:`class_tokens`), ``mask_path`` the image's mask in the class's
        ``masks/`` folder, if any.

    Raises
    ------
    Hep2LayoutError
        At the first problem: an empty class folder (named with its path),
        a mask without its image, a file that is not an image.
    """
    return _scan_fields(Path(root), _strict())


def check_fields(root: str | os.PathLike, decode: bool = True, workers: int = 8) -> CheckReport:
    """Check field images (see :func:`load_fields`); counts of classes and images by collection."""
    return _check("hep2_fields", root, _scan_fields, _field_counts, decode, workers)


# --------------------------------------------------------------------------- scans


def _strict() -> ProblemCollector:
    return ProblemCollector(strict=True, error_type=Hep2LayoutError)


def _check(name: str, root: str | os.PathLike, scan: Callable[[Path, ProblemCollector], pd.DataFrame],
           counts: Callable[[pd.DataFrame], dict], decode: bool, workers: int) -> CheckReport:
    return checked_scan(DATASET_NAMES[name], root, scan, counts, Hep2LayoutError, decode, workers)


def _split_counts(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {"images by split × class": class_counts(table, "split")}


def _mivia_counts(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {"images by split × class": class_counts(table, "split"),
            "images by intensity × class": class_counts(table, "intensity")}


def _field_counts(table: pd.DataFrame) -> dict[str, pd.DataFrame | dict]:
    by_source = table.groupby("source", sort=False)
    return {
        "classes and images by collection": {
            source: {"classes": rows["label_name"].nunique(), "images": len(rows),
                     "fewest images in a class": int(rows.groupby("label_name").size().min()),
                     "most images in a class": int(rows.groupby("label_name").size().max()),
                     "masks": int(rows["mask_path"].notna().sum())}
            for source, rows in by_source},
        "images by class": {f"{source} / {name}": {"images": n}
                            for (source, name), n in table.groupby(["source", "label_name"], sort=False).size().items()},
    }


def _is_image(entry: os.DirEntry) -> bool:
    return entry.is_file() and os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES


def _row(path: str, source: str, split: str, image_id: object, label: int | None, label_name: str | None,
         mask_path: str | None = None, intensity: str | None = None) -> dict:
    return {"path": str(path), "mask_path": mask_path, "source": source, "split": split, "image_id": image_id,
            "label": label, "label_name": label_name, "intensity": intensity}


def _table(rows: list[dict]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    return table.astype({"label": "Int64"})


def _flat_images(folder: Path, problems: ProblemCollector, expected: str) -> dict[str, os.DirEntry]:
    """The image files of a flat folder by stem: a problem for anything else in it."""
    found: dict[str, os.DirEntry] = {}
    for entry in visible(folder):
        if _is_image(entry):
            found[Path(entry.name).stem] = entry
        else:
            problems.add(entry.path, f"expected only {expected} here, found "
                         f"{'a folder' if entry.is_dir() else 'another file'}")
    return found


def _scan_i3a(root: Path, problems: ProblemCollector) -> pd.DataFrame:
    root = root.expanduser().absolute()
    rows: list[dict] = []
    csv = root / I3A_CSV
    splits = [folder for folder in I3A_SPLITS if (root / folder).is_dir()]
    if not csv.is_file():
        problems.add(csv, f"missing; expected the labels of every image ({', '.join(I3A_CSV_COLUMNS)}) beside "
                     "training/ and validation/")
        return _table(rows)
    if not splits:
        problems.add(root / "training", f"missing; expected at least one of {', '.join(f + '/' for f in I3A_SPLITS)} "
                     "with %05d.png cells beside gt_training.csv")
        return _table(rows)
    table = read_csv_table(csv, I3A_CSV_COLUMNS, problems)
    if table is None:
        return _table(rows)
    labels: dict[int, str] = {}
    for number, (image_id, name) in enumerate(zip(table["Image ID"], table["Image class"]), start=1):
        at = f"row {number} (line {number + 1})"
        image_id, name = image_id.strip(), name.strip()
        if not image_id.isdigit():
            problems.add(csv, f"{at}: image ID {image_id!r}; expected a whole number")
        elif name not in I3A_CLASSES:
            problems.add(csv, f"{at}: image {image_id} has class {name!r}; expected one of {', '.join(I3A_CLASSES)}")
        elif int(image_id) in labels:
            problems.add(csv, f"{at}: image {image_id} is labelled twice; expected one row per image")
        else:
            labels[int(image_id)] = name
    seen: set[int] = set()
    for folder in splits:
        for stem, entry in sorted(_flat_images(root / folder, problems, "%05d.png cell images").items()):
            if not stem.isdigit():
                problems.add(entry.path, "not named by a number; expected %05d.png, the image ID zero-padded")
                continue
            image_id = int(stem)
            if image_id in seen:
                problems.add(entry.path, f"image ID {image_id} is also in another split folder; expected each image "
                             "in one split")
                continue
            seen.add(image_id)
            if image_id not in labels:
                problems.add(entry.path, f"no row of {I3A_CSV} labels image {image_id}; expected every image labelled")
                continue
            name = labels[image_id]
            rows.append(_row(entry.path, "i3a", I3A_SPLITS[folder], image_id, I3A_CLASSES.index(name), name))
    for image_id in sorted(set(labels) - seen):
        problems.add(csv, f"image {image_id} has a row but no file; expected {image_id:05d}.png in one of "
                     f"{', '.join(f + '/' for f in splits)}")
    return _table(rows)


def _mivia_class(text: str) -> str | None:
    key = text.strip().lower().replace(" ", "_")
    return key if key in MIVIA_CLASSES else None


def _scan_mivia(root: Path, problems: ProblemCollector) -> pd.DataFrame:
    root = root.expanduser().absolute()
    rows: list[dict] = []
    for split, folder_name, info_name, gt_name in MIVIA_PARTS:
        info_csv, gt_csv, folder = root / info_name, root / gt_name, root / folder_name
        present = [p for p in (info_csv, gt_csv, folder) if p.exists()]
        if split != "train" and not present:
            continue
        missing = [p for p in (info_csv, gt_csv, folder) if not p.exists()]
        for path in missing:
            problems.add(path, f"missing; expected {info_name} ({';'.join(MIVIA_COLUMNS)}), {gt_name} (ID;pattern) "
                         f"and {folder_name}/<ID>.png together")
        if missing:
            continue
        rows += _scan_mivia_part(split, folder, info_csv, gt_csv, problems)
    return _table(rows)


def _read_semicolon_csv(csv: Path, columns: tuple[str, ...], problems: ProblemCollector) -> pd.DataFrame | None:
    try:
        # utf-8-sig: a CSV re-saved by Excel starts with a byte-order mark.
        table = pd.read_csv(csv, sep=";", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        problems.add(csv, f"cannot be read as a semicolon-separated CSV ({error}); expected columns "
                     f"{';'.join(columns)}")
        return None
    table.columns = [str(column).strip() for column in table.columns]
    missing = [column for column in columns if column not in table.columns]
    if missing:
        problems.add(csv, f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; expected a "
                     f"semicolon-separated header {';'.join(columns)}, found {';'.join(table.columns) or 'none'}")
        return None
    return table


def _mivia_images(folder: Path, problems: ProblemCollector) -> dict[str, os.DirEntry]:
    """Images of a MIVIA folder by ID: the stem, and its number without zero padding when numeric."""
    images = _flat_images(folder, problems, "<ID>.png cell images")
    keyed = dict(images)
    keyed.update({str(int(stem)): entry for stem, entry in images.items() if stem.isdigit()})
    return keyed


def _scan_mivia_part(split: str, folder: Path, info_csv: Path, gt_csv: Path,
                     problems: ProblemCollector) -> list[dict]:
    info = _read_semicolon_csv(info_csv, MIVIA_COLUMNS, problems)
    truth = _read_semicolon_csv(gt_csv, ("ID", "pattern"), problems)
    if info is None or truth is None:
        return []
    images = _mivia_images(folder, problems)
    patterns: dict[str, str] = {}
    for number, (image_id, pattern) in enumerate(zip(truth["ID"], truth["pattern"]), start=1):
        image_id, name = _mivia_key(image_id), _mivia_class(pattern)
        if name is None:
            problems.add(gt_csv, f"row {number} (line {number + 1}): image {image_id} has pattern {pattern.strip()!r}; "
                         f"expected one of {', '.join(MIVIA_CLASSES)}")
        else:
            patterns[image_id] = name
    rows, used = [], set()
    for number, record in enumerate(info.itertuples(index=False), start=1):
        at = f"row {number} (line {number + 1})"
        image_id, intensity = _mivia_key(record.ID), record.intensity.strip().lower()
        if intensity not in MIVIA_INTENSITIES or not (record.width.strip().isdigit() and record.height.strip().isdigit()):
            problems.add(info_csv, f"{at}: image {image_id} has intensity {record.intensity!r}, width "
                         f"{record.width!r}, height {record.height!r}; expected {' or '.join(MIVIA_INTENSITIES)} "
                         "and sizes in pixels")
            continue
        if image_id not in patterns:
            problems.add(gt_csv, f"no row for image {image_id} of {info_csv.name}; expected a pattern for every image")
            continue
        entry = images.get(image_id)
        if entry is None:
            problems.add(folder / f"{image_id}.png", f"missing; {at} of {info_csv.name} names image {image_id}")
            continue
        used.add(entry.path)
        name = patterns[image_id]
        rows.append(_row(entry.path, "mivia", split, image_id, MIVIA_CLASSES.index(name), name, intensity=intensity))
    listed = {_mivia_key(i) for i in info["ID"]}
    for image_id in sorted(set(patterns) - listed):
        problems.add(gt_csv, f"image {image_id} has a pattern but no row in {info_csv.name}; expected both CSVs "
                     "to list the same images")
    for entry in sorted({e.path: e for e in images.values()}.values(), key=lambda e: e.name):
        if entry.path not in used:
            problems.add(entry.path, f"no row of {info_csv.name} names it; expected every image listed")
    return rows


def _mivia_key(text: str) -> str:
    text = text.strip()
    return str(int(text)) if text.isdigit() else text


def _check_mivia_sizes(root: Path, problems: ProblemCollector) -> None:
    """A problem per image whose size differs from its row's ``width`` × ``height``."""
    quiet = ProblemCollector(strict=False, error_type=Hep2LayoutError)  # layout problems are reported already
    table = _scan_mivia(root.expanduser().absolute(), quiet)
    for split, _, info_name, _ in MIVIA_PARTS:
        info_csv = root.expanduser().absolute() / info_name
        part = table[table["split"] == split]
        if part.empty:
            continue
        info = _read_semicolon_csv(info_csv, MIVIA_COLUMNS, quiet)
        sizes = {_mivia_key(i): (w.strip(), h.strip()) for i, w, h in zip(info["ID"], info["width"], info["height"])}
        for path, image_id in zip(part["path"], part["image_id"]):
            try:
                with Image.open(path) as image:
                    width, height = image.size
            except Exception:  # unreadable: reported by the decode step
                continue
            if (str(width), str(height)) != sizes[image_id]:
                problems.add(path, f"is {width}×{height} px; {info_name} gives width {sizes[image_id][0]} and "
                             f"height {sizes[image_id][1]} for image {image_id}")


def _scan_fields(root: Path, problems: ProblemCollector) -> pd.DataFrame:
    root = root.expanduser().absolute()
    rows: list[dict] = []
    if not root.is_dir():
        problems.add(root, "no such folder; expected field images, one folder per class (or patterns/ and HEP Annot/)")
        return _table(rows)
    collections = [(root / name, source) for name, source in FIELD_COLLECTIONS.items() if (root / name).is_dir()]
    for folder, source in collections or [(root, root.name)]:
        rows += _scan_collection(folder, source, problems)
    return _table(rows)


def _scan_collection(folder: Path, source: str, problems: ProblemCollector) -> list[dict]:
    classes: list[Path] = []
    for entry in visible(folder):
        if not entry.is_dir():
            problems.add(entry.path, "expected only class folders here (or groups of class folders), found a file")
            continue
        inner = [e for e in visible(Path(entry.path)) if e.name != MASKS_DIR]
        if inner and all(e.is_dir() for e in inner):  # a group of classes, as HEP Annot's ten sub-folders
            for sub in inner:
                classes.append(Path(sub.path))
        else:
            classes.append(Path(entry.path))
    if not classes:
        problems.add(folder, "no class folder; expected one folder of field images per class")
        return []
    names = sorted({path.name for path in classes})
    for name in names:
        twins = [path for path in classes if path.name == name]
        for twin in twins[1:]:
            problems.add(twin, f"a second folder of class {name!r} (first: {twins[0]}); expected class names unique")
    rows = []
    for path in sorted(classes):
        rows += _scan_field_class(path, source, names.index(path.name), problems)
    return rows


def _scan_field_class(folder: Path, source: str, label: int, problems: ProblemCollector) -> list[dict]:
    images = {}
    for entry in visible(folder):
        if _is_image(entry):
            images[Path(entry.name).stem] = entry.path
        elif not (entry.is_dir() and entry.name == MASKS_DIR):
            problems.add(entry.path, f"expected only field images ({', '.join(IMAGE_SUFFIXES)}) and a {MASKS_DIR}/ "
                         f"folder here, found {'a folder' if entry.is_dir() else 'another file'}")
    if not images:
        problems.add(folder, f"empty; expected field images of class {folder.name!r}")
        return []
    masks: dict[str, str] = {}
    if (folder / MASKS_DIR).is_dir():
        for entry in visible(folder / MASKS_DIR):
            stem = Path(entry.name).stem
            if not _is_image(entry):
                problems.add(entry.path, "expected only mask images here, named as their field image")
            elif stem not in images:
                problems.add(entry.path, f"no image named {stem}.* in {folder}; expected every mask to have its image")
            else:
                masks[stem] = entry.path
    return [_row(path, source, "all", stem, label, folder.name, masks.get(stem))
            for stem, path in sorted(images.items())]
