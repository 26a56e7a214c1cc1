"""The C-NMC 2019 data set (ALL lymphoblasts vs normal "HEM" B cells), official tree.

The release unpacks to::

    C-NMC_Leukemia/
        training_data/fold_0/all/UID_1_3_1_all.bmp        (fold_0, fold_1, fold_2;
        training_data/fold_0/hem/UID_H6_14_1_hem.bmp       folds share no subject)
        validation_data/C-NMC_test_prelim_phase_data/1.bmp ... 1867.bmp
        validation_data/C-NMC_test_prelim_phase_data_labels.csv
        testing_data/C-NMC_test_final_phase_data/1.bmp ... 2586.bmp   (unlabelled)

Training file names carry subject, image and cell numbers and the class:
``UID_<subject>_<image>_<cell>_<all|hem>.bmp``. ALL subjects are numbers, healthy
subjects carry an ``H`` (written ``h`` in a few real files). The preliminary
test images were renamed ``<n>.bmp``; their original names and labels are in the
CSV beside the folder (``Patient_ID,new_names,labels``).

:func:`load_cnmc` turns a copy into one table and stops at the first layout
problem; :func:`check_cnmc` runs the same scan but collects every problem and
can also decode every image.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .check import CheckReport, Problem, ProblemCollector, class_counts, read_csv_table, visible

DATASET_NAME = "C-NMC 2019"
#: Name of the folder the release unpacks to.
TREE_NAME = "C-NMC_Leukemia"
#: Class folders of a training fold and the label each stands for (1 = ALL).
CLASS_DIRS: dict[str, int] = {"all": 1, "hem": 0}
LABEL_NAMES: dict[int, str] = {1: "ALL", 0: "HEM"}
PRELIM_DIR = "C-NMC_test_prelim_phase_data"
PRELIM_CSV = "C-NMC_test_prelim_phase_data_labels.csv"
FINAL_DIR = "C-NMC_test_final_phase_data"
#: Columns the preliminary-test label CSV must have.
CSV_COLUMNS: tuple[str, ...] = ("Patient_ID", "new_names", "labels")
#: Columns of the table returned by :func:`load_cnmc`, in order.
COLUMNS: tuple[str, ...] = ("path", "label", "label_name", "subject", "image", "cell", "fold", "split")

_NAME_RE = re.compile(
    r"UID_(?P<prefix>[Hh]?)(?P<number>\d+)_(?P<image>\d+)_(?P<cell>\d+)_(?P<suffix>all|hem)\.bmp"
)
_NAME_PATTERN = (
    "UID_<subject>_<image>_<cell>_<all|hem>.bmp, the subject a number for ALL "
    "(UID_1_3_1_all.bmp) and H<number> for HEM (UID_H6_14_1_hem.bmp)"
)
_NUMBERED_RE = re.compile(r"(\d+)\.bmp")


class CnmcLayoutError(ValueError):
    """A C-NMC copy that does not follow the official layout; the message starts with the offending path."""

    problem: Problem | None = None


@dataclass(frozen=True)
class CnmcName:
    """What a C-NMC training file name says about its cell.

    ``subject`` is ``"57"`` for an ALL patient, ``"H3"`` for a healthy donor
    (also when the file writes ``h3``); ``image`` the microscope image the cell
    was cut from, ``cell`` its number within it; ``label`` 1 for ALL, 0 for HEM.
    """

    subject: str
    image: int
    cell: int
    label: int

    @property
    def label_name(self) -> str:
        """``"ALL"`` or ``"HEM"``."""
        return LABEL_NAMES[self.label]


def parse_cnmc_name(name: str) -> CnmcName:
    """Parse a C-NMC training file name such as ``UID_H6_14_1_hem.bmp`` (a path's last part).

    Raises
    ------
    ValueError
        If the name does not follow ``UID_<subject>_<image>_<cell>_<all|hem>.bmp``
        or its subject disagrees with its class (an ``H`` subject is healthy).
    """
    name = os.path.basename(name)
    parsed = _parse(name)
    if isinstance(parsed, str):
        raise ValueError(f"{name!r}: {parsed}")
    return parsed


def _parse(name: str) -> CnmcName | str:
    """The parsed name, or the reason it does not parse (no exception: the check collects reasons)."""
    match = _NAME_RE.fullmatch(name)
    if match is None:
        return f"file name does not match the C-NMC pattern; expected {_NAME_PATTERN}"
    healthy = bool(match["prefix"])
    label = CLASS_DIRS[match["suffix"]]
    if healthy != (label == 0):
        # An H subject in an _all file (or the reverse) means a renamed or mixed-up file.
        return (
            f"subject {match['prefix']}{match['number']} and class _{match['suffix']} disagree; "
            f"expected {_NAME_PATTERN}"
        )
    subject = ("H" if healthy else "") + match["number"]  # 36 real files write h3 for H3
    return CnmcName(subject=subject, image=int(match["image"]), cell=int(match["cell"]), label=label)


def load_cnmc(root: str | os.PathLike) -> pd.DataFrame:
    """Read a C-NMC 2019 copy in its official layout into one table (images are not decoded).

    Parameters
    ----------
    root
        The ``C-NMC_Leukemia`` folder or the folder containing it. The training
        folds present are whatever ``training_data/fold_*`` folders exist;
        ``validation_data`` (preliminary test, labelled) and ``testing_data``
        (final test, unlabelled) are read when present.

    Returns
    -------
    pandas.DataFrame
        One row per image, columns :data:`COLUMNS`: ``path`` (absolute),
        ``label`` (1 = ALL, 0 = HEM, <NA> in the final test), ``label_name``,
        ``subject``, ``image``, ``cell``, ``fold`` (<NA> outside training) and
        ``split`` (``"train"``, ``"prelim_test"`` or ``"final_test"``), ordered
        by split, fold, class, subject, image and cell; test images by number.

    Raises
    ------
    CnmcLayoutError
        At the first departure from the layout, naming the path and what was
        expected there; :func:`check_cnmc` lists all of them.
    """
    _, table = _scan(root, ProblemCollector(strict=True, error_type=CnmcLayoutError))
    return table


def check_cnmc(root: str | os.PathLike, decode: bool = True, workers: int = 8) -> CheckReport:
    """Check a C-NMC 2019 copy and report every problem found.

    Parameters
    ----------
    root
        As for :func:`load_cnmc`.
    decode
        Also decode every image, to catch truncated, corrupt or non-image
        files: 1-2 ms per 450×450 BMP, 15-30 s for the full release.
    workers
        Threads used to decode.

    Returns
    -------
    CheckReport
        Problems (everything :func:`load_cnmc` would stop at, plus unreadable
        images) and counts by split, fold and subject × class and, when
        decoding, by image size.
    """
    problems = ProblemCollector(strict=False, error_type=CnmcLayoutError)
    tree, table = _scan(root, problems)
    report = CheckReport(dataset=DATASET_NAME, root=str(tree), problems=problems.items)
    report.counts["images by split × class"] = class_counts(table, "split")
    report.counts["training images by fold × class"] = class_counts(table, "fold")
    subjects = sorted(table["subject"].dropna().unique(), key=_subject_key)
    report.counts["images by subject × class"] = class_counts(table, "subject", order=subjects)
    if decode:
        report.decode(table["path"], workers)
    return report


# --------------------------------------------------------------------------- scan


def _scan(root: str | os.PathLike, problems: ProblemCollector) -> tuple[Path, pd.DataFrame]:
    tree = _find_tree(Path(root).expanduser().absolute())
    rows: list[dict] = []
    if not tree.is_dir():
        problems.add(tree, f"no such folder; expected the {TREE_NAME} folder or its parent")
    else:
        rows += _scan_training(tree, problems)
        rows += _scan_prelim(tree, problems)
        rows += _scan_final(tree, problems)
    return tree, _table(rows)


def _find_tree(root: Path) -> Path:
    # Accept the folder holding C-NMC_Leukemia/ as well, as people point at their download folder.
    if not (root / "training_data").is_dir() and (root / TREE_NAME).is_dir():
        return root / TREE_NAME
    return root


def _scan_training(tree: Path, problems: ProblemCollector) -> list[dict]:
    training = tree / "training_data"
    if not training.is_dir():
        problems.add(training, f"missing; expected training_data/fold_<n>/{{all,hem}}/ in the {TREE_NAME} folder "
                     "(give that folder or its parent)")
        return []
    folds: list[tuple[int, Path]] = []
    for entry in visible(training):
        if entry.is_dir() and entry.name.startswith("fold_"):
            match = re.fullmatch(r"fold_(\d+)", entry.name)
            if match is None:
                problems.add(entry.path, "expected a fold folder named fold_<number>")
                continue
            folds.append((int(match[1]), Path(entry.path)))
    if not folds:
        problems.add(training, "no fold_<n> folder found; expected fold_0, fold_1, fold_2 with all/ and hem/")
    folds.sort()  # numeric, so fold_10 would come after fold_2

    rows: list[dict] = []
    where: dict[str, dict[int, str]] = {}  # subject -> fold -> first file seen there
    for fold, folder in folds:
        for class_dir, label in CLASS_DIRS.items():
            class_folder = folder / class_dir
            if not class_folder.is_dir():
                problems.add(class_folder, "missing; expected every fold to hold both all/ and hem/ class folders")
                continue
            entries = visible(class_folder)
            if not entries:
                problems.add(class_folder, f"empty; expected UID_<subject>_<image>_<cell>_{class_dir}.bmp images")
            found = []
            for entry in entries:
                if not entry.is_file():
                    problems.add(entry.path, "expected only image files in a class folder, found a folder")
                    continue
                parsed = _parse(entry.name)
                if isinstance(parsed, str):
                    problems.add(entry.path, parsed)
                    continue
                if parsed.label != label:
                    problems.add(entry.path, f"name says {parsed.label_name} but the file is in {class_dir}/; "
                                 f"expected names ending _{class_dir}.bmp there")
                    continue
                where.setdefault(parsed.subject, {}).setdefault(fold, entry.path)
                found.append((parsed, entry.path))
            found.sort(key=lambda item: (_subject_key(item[0].subject), item[0].image, item[0].cell))
            rows += [_row(path, name, fold=fold, split="train") for name, path in found]

    for subject in sorted(where, key=_subject_key):
        seen = where[subject]
        if len(seen) > 1:
            later = sorted(seen)[1]
            listed = ", ".join(f"fold_{f} ({seen[f]})" for f in sorted(seen))
            problems.add(seen[later],
                         f"subject {subject} appears in {listed}; expected each subject in exactly one fold")
    return rows


def _scan_prelim(tree: Path, problems: ProblemCollector) -> list[dict]:
    validation = tree / "validation_data"
    if not validation.exists():
        return []  # a copy may leave the preliminary test out
    folder, csv = validation / PRELIM_DIR, validation / PRELIM_CSV
    if not folder.is_dir():
        problems.add(folder, f"missing; expected the preliminary-test images 1.bmp, 2.bmp ... beside {PRELIM_CSV}")
    if not csv.is_file():
        problems.add(csv, f"missing; expected the label CSV ({','.join(CSV_COLUMNS)}) beside {PRELIM_DIR}/")
    if not folder.is_dir() or not csv.is_file():
        return []
    labels = read_csv_table(csv, CSV_COLUMNS, problems)
    if labels is None:
        return []

    images = {entry.name: entry for entry in visible(folder)}
    rows: list[dict] = []
    listed: dict[str, int] = {}  # new_names -> row number
    for number, (patient_id, new_name, label_text) in enumerate(
        zip(labels["Patient_ID"], labels["new_names"], labels["labels"], strict=True), start=1
    ):
        patient_id, new_name, label_text = patient_id.strip(), new_name.strip(), label_text.strip()
        at = f"row {number} (line {number + 1})"
        if new_name in listed:
            problems.add(csv, f"{at}: new_names {new_name!r} already given in row {listed[new_name]}; "
                         "expected each image once")
            continue
        listed[new_name] = number
        entry = images.get(new_name)
        if entry is None or not entry.is_file():
            problems.add(csv, f"{at}: new_names {new_name!r} names no file in {folder}; expected an existing image")
            continue
        parsed = _parse(patient_id)
        if isinstance(parsed, str):
            problems.add(csv, f"{at}: Patient_ID {patient_id!r}: {parsed}")
            continue
        if label_text not in ("0", "1"):
            problems.add(csv, f"{at}: labels {label_text!r}; expected 1 (ALL) or 0 (HEM)")
            continue
        if int(label_text) != parsed.label:
            problems.add(csv, f"{at}: labels {label_text} ({LABEL_NAMES[int(label_text)]}) disagrees with Patient_ID "
                         f"{patient_id!r} ({parsed.label_name}); expected them to agree")
            continue
        rows.append(_row(entry.path, parsed, fold=None, split="prelim_test"))

    for name in sorted(images, key=_numbered_key):
        if name not in listed:
            problems.add(images[name].path,
                         f"no row in {PRELIM_CSV} names it (new_names); expected every image there to be labelled")
    # Order by image number, never by file name: a sorted listing puts 10.bmp before 2.bmp.
    rows.sort(key=lambda row: _numbered_key(os.path.basename(row["path"])))
    return rows


def _scan_final(tree: Path, problems: ProblemCollector) -> list[dict]:
    testing = tree / "testing_data"
    if not testing.exists():
        return []  # optional: unlabelled, not needed to reproduce the reports
    folder = testing / FINAL_DIR
    if not folder.is_dir():
        problems.add(folder, "missing; expected the final-test images 1.bmp, 2.bmp ... (or no testing_data/ at all)")
        return []
    entries = visible(folder)
    if not entries:
        problems.add(folder, "empty; expected the final-test images 1.bmp, 2.bmp ...")
    rows = []
    for entry in sorted(entries, key=lambda e: _numbered_key(e.name)):
        if not entry.is_file() or _NUMBERED_RE.fullmatch(entry.name) is None:
            problems.add(entry.path, "expected final-test images named <number>.bmp")
            continue
        rows.append(_row(entry.path, None, fold=None, split="final_test"))
    return rows


def _row(path: str, name: CnmcName | None, fold: int | None, split: str) -> dict:
    return {
        "path": str(path),
        "label": None if name is None else name.label,
        "label_name": None if name is None else name.label_name,
        "subject": None if name is None else name.subject,
        "image": None if name is None else name.image,
        "cell": None if name is None else name.cell,
        "fold": fold,
        "split": split,
    }


def _table(rows: Iterable[dict]) -> pd.DataFrame:
    table = pd.DataFrame(list(rows), columns=list(COLUMNS))
    # Nullable integers: the final test has no label, test sets have no fold.
    integers = ("label", "image", "cell", "fold")
    return table.astype({column: "Int64" if column in integers else "str" for column in COLUMNS})


def _subject_key(subject: str) -> tuple[int, int, str]:
    """ALL subjects first, then healthy ones, each numerically (2 before 10)."""
    healthy = subject.startswith("H")
    digits = subject[1:] if healthy else subject
    return (int(healthy), int(digits) if digits.isdigit() else -1, subject)


def _numbered_key(name: str) -> tuple[int, str]:
    match = _NUMBERED_RE.fullmatch(name)
    return (int(match[1]) if match else 1 << 62, name)
