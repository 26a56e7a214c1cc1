"""The C-NMC 2019 loader and check on small fake trees and on the real samples."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cytobook.datasets.check import CheckReport, Problem
from cytobook.datasets.cnmc import (
    COLUMNS,
    PRELIM_CSV,
    PRELIM_DIR,
    CnmcLayoutError,
    CnmcName,
    check_cnmc,
    load_cnmc,
    parse_cnmc_name,
)

TRAIN = {
    0: {
        "all": ["UID_1_1_1_all.bmp", "UID_1_2_1_all.bmp", "UID_2_1_1_all.bmp"],
        # h2: lowercase in the file name, as in 36 real files.
        "hem": ["UID_H1_1_1_hem.bmp", "UID_h2_3_1_hem.bmp"],
    },
    1: {
        "all": ["UID_3_1_1_all.bmp"],
        "hem": ["UID_H3_1_1_hem.bmp", "UID_H3_2_1_hem.bmp"],
    },
}
# Listed in neither file-name nor numeric order; 10 sorts before 2 as text.
PRELIM = [
    ("UID_57_29_1_all.bmp", "10.bmp", 1),
    ("UID_H49_5_2_hem.bmp", "1.bmp", 0),
    ("UID_60_1_1_all.bmp", "2.bmp", 1),
]


def write_bmp(path: Path, value: int = 128, size: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)
    return path


def write_csv(path: Path, header: str, rows: list[str]) -> None:
    path.write_text("\n".join([header, *rows]) + "\n")


def make_tree(base: Path, final: bool = True) -> Path:
    """A correct miniature C-NMC tree under ``base/C-NMC_Leukemia``; returns that folder."""
    root = base / "C-NMC_Leukemia"
    for fold, classes in TRAIN.items():
        for class_dir, names in classes.items():
            for name in names:
                write_bmp(root / "training_data" / f"fold_{fold}" / class_dir / name)
    validation = root / "validation_data"
    for index, (_, new_name, _) in enumerate(PRELIM):
        write_bmp(validation / PRELIM_DIR / new_name, value=10 * index)
    write_csv(
        validation / PRELIM_CSV, "Patient_ID,new_names,labels", [f"{p},{n},{label}" for p, n, label in PRELIM]
    )
    if final:
        for number in (1, 2):
            write_bmp(root / "testing_data" / "C-NMC_test_final_phase_data" / f"{number}.bmp")
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path)


# ----------------------------------------------------------------------------- names


def test_parse_name_all_and_hem():
    assert parse_cnmc_name("UID_1_3_1_all.bmp") == CnmcName(subject="1", image=3, cell=1, label=1)
    assert parse_cnmc_name("UID_H6_14_1_hem.bmp") == CnmcName(subject="H6", image=14, cell=1, label=0)
    assert parse_cnmc_name("/some/where/UID_57_29_1_all.bmp").subject == "57"


def test_parse_name_normalises_lowercase_h():
    name = parse_cnmc_name("UID_h3_10_2_hem.bmp")
    assert name.subject == "H3" and name.label_name == "HEM"


@pytest.mark.parametrize(
    "name",
    [
        "cell_7.bmp",
        "UID_1_3_all.bmp",
        "UID_1_3_1_all.png",
        "UID_X1_3_1_hem.bmp",
        "UID_H6_1_1_all.bmp",
        "UID_6_1_1_hem.bmp",
    ],
)
def test_parse_name_rejects_with_file_and_pattern(name: str):
    with pytest.raises(ValueError) as error:
        parse_cnmc_name(name)
    assert name in str(error.value)
    assert "UID_<subject>_<image>_<cell>_<all|hem>.bmp" in str(error.value)


# ----------------------------------------------------------------------------- loading


def test_correct_tree_loads(tree: Path):
    table = load_cnmc(tree)
    assert list(table.columns) == list(COLUMNS)
    assert table["split"].value_counts().to_dict() == {"train": 8, "prelim_test": 3, "final_test": 2}
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in table["path"])
    train = table[table["split"] == "train"]
    assert train.groupby("fold").size().to_dict() == {0: 5, 1: 3}
    assert train.groupby("label_name").size().to_dict() == {"ALL": 4, "HEM": 4}
    assert set(train.loc[train["fold"] == 0, "subject"]) == {"1", "2", "H1", "H2"}
    assert (train["label"] == train["label_name"].map({"ALL": 1, "HEM": 0})).all()
    assert str(table["label"].dtype) == "Int64" and str(table["fold"].dtype) == "Int64"
    final = table[table["split"] == "final_test"]
    assert final["label"].isna().all() and final["fold"].isna().all() and final["subject"].isna().all()
    assert table.loc[table["split"] != "train", "fold"].isna().all()


def test_lowercase_h_subject_is_normalised(tree: Path):
    table = load_cnmc(tree)
    row = table[table["path"].str.endswith("UID_h2_3_1_hem.bmp")].iloc[0]
    assert row["subject"] == "H2" and row["label"] == 0
    assert not table["subject"].dropna().str.startswith("h").any()


def test_prelim_matched_on_new_names_not_sorted_order(tree: Path):
    table = load_cnmc(tree)
    prelim = table[table["split"] == "prelim_test"]
    by_file = {
        Path(p).name: (s, int(label))
        for p, s, label in zip(prelim["path"], prelim["subject"], prelim["label"], strict=True)
    }
    assert by_file == {"10.bmp": ("57", 1), "1.bmp": ("H49", 0), "2.bmp": ("60", 1)}
    # Rows come in image-number order (1, 2, 10), which a text sort would not give.
    assert [Path(p).name for p in prelim["path"]] == ["1.bmp", "2.bmp", "10.bmp"]
    assert prelim.loc[prelim["subject"] == "57", ["image", "cell"]].iloc[0].tolist() == [29, 1]


def test_root_may_be_tree_or_its_parent(tree: Path):
    pd.testing.assert_frame_equal(load_cnmc(tree), load_cnmc(tree.parent))


def test_optional_test_sets_and_any_folds(tmp_path: Path):
    root = make_tree(tmp_path, final=False)
    shutil.rmtree(root / "validation_data")
    shutil.rmtree(root / "training_data" / "fold_1")
    table = load_cnmc(root)
    assert set(table["split"]) == {"train"} and set(table["fold"]) == {0}
    assert len(table) == 5


def test_csv_with_byte_order_mark_and_spaces(tree: Path):
    csv = tree / "validation_data" / PRELIM_CSV
    rows = [f"{p}, {n} ,{label}" for p, n, label in PRELIM]
    csv.write_text("\ufeffPatient_ID,new_names,labels\n" + "\n".join(rows) + "\n", encoding="utf-8")
    assert (load_cnmc(tree)["split"] == "prelim_test").sum() == 3


# ----------------------------------------------------------------------------- malformed trees

Breaker = Callable[[Path], tuple[Path, str]]


def _no_training(root: Path):
    shutil.rmtree(root / "training_data")
    return root / "training_data", "expected training_data/fold_<n>"


def _no_hem(root: Path):
    shutil.rmtree(root / "training_data" / "fold_1" / "hem")
    return root / "training_data" / "fold_1" / "hem", "all/ and hem/"


def _empty_class(root: Path):
    folder = root / "training_data" / "fold_1" / "all"
    for path in folder.iterdir():
        path.unlink()
    return folder, "empty"


def _bad_name(root: Path):
    path = write_bmp(root / "training_data" / "fold_0" / "all" / "cell_7.bmp")
    return path, "UID_<subject>_<image>_<cell>_<all|hem>.bmp"


def _label_disagrees_with_folder(root: Path):
    path = write_bmp(root / "training_data" / "fold_0" / "all" / "UID_H9_1_1_hem.bmp")
    return path, "in all/"


def _subject_in_two_folds(root: Path):
    # h2 in fold_0 and H2 in fold_1 are the same donor once normalised.
    path = write_bmp(root / "training_data" / "fold_1" / "hem" / "UID_H2_7_1_hem.bmp")
    return path, "subject H2 appears in fold_0"


def _csv_missing_column(root: Path):
    csv = root / "validation_data" / PRELIM_CSV
    write_csv(csv, "Patient_ID,new_names", [f"{p},{n}" for p, n, _ in PRELIM])
    return csv, "expected columns Patient_ID, new_names, labels, found Patient_ID, new_names"


def _csv_row_without_file(root: Path):
    csv = root / "validation_data" / PRELIM_CSV
    with csv.open("a") as handle:
        handle.write("UID_58_1_1_all.bmp,99.bmp,1\n")
    return csv, "row 4 (line 5): new_names '99.bmp' names no file"


def _csv_label_disagrees(root: Path):
    csv = root / "validation_data" / PRELIM_CSV
    write_csv(
        csv,
        "Patient_ID,new_names,labels",
        [f"{p},{n},{1 - label if n == '2.bmp' else label}" for p, n, label in PRELIM],
    )
    return csv, "row 3 (line 4): labels 0 (HEM) disagrees"


def _image_without_csv_row(root: Path):
    path = write_bmp(root / "validation_data" / PRELIM_DIR / "3.bmp")
    return path, "no row in"


BREAKERS = [
    _no_training,
    _no_hem,
    _empty_class,
    _bad_name,
    _label_disagrees_with_folder,
    _subject_in_two_folds,
    _csv_missing_column,
    _csv_row_without_file,
    _csv_label_disagrees,
    _image_without_csv_row,
]


@pytest.mark.parametrize("breaker", BREAKERS, ids=lambda f: f.__name__.strip("_"))
def test_malformed_tree_raises_naming_the_path(tree: Path, breaker: Breaker):
    path, fragment = breaker(tree)
    with pytest.raises(CnmcLayoutError) as error:
        load_cnmc(tree)
    message = str(error.value)
    assert message.startswith(f"{path}: "), message
    assert fragment in message
    assert isinstance(error.value, ValueError) and error.value.problem.path == str(path)


@pytest.mark.parametrize("breaker", BREAKERS, ids=lambda f: f.__name__.strip("_"))
def test_malformed_tree_is_reported_by_check(tree: Path, breaker: Breaker):
    path, fragment = breaker(tree)
    report = check_cnmc(tree, decode=False)
    assert not report.ok
    assert any(p.path == str(path) and fragment in p.message for p in report.problems), report.format()
    assert f"{path}: " in report.format()


def test_check_collects_every_problem(tree: Path):
    expected = [
        breaker(tree)
        for breaker in (_bad_name, _subject_in_two_folds, _csv_row_without_file, _image_without_csv_row)
    ]
    with pytest.raises(CnmcLayoutError):
        load_cnmc(tree)
    report = check_cnmc(tree, decode=False)
    assert len(report.problems) == len(expected)
    for path, fragment in expected:
        assert any(p.path == str(path) and fragment in p.message for p in report.problems)


def test_check_on_missing_folder(tmp_path: Path):
    report = check_cnmc(tmp_path / "nowhere")
    assert not report.ok and report.problems[0].path == str(tmp_path / "nowhere")
    assert "no such folder" in report.format()
    with pytest.raises(CnmcLayoutError, match="no such folder"):
        load_cnmc(tmp_path / "nowhere")


# ----------------------------------------------------------------------------- decoding


def test_check_decodes_and_reports_corrupt_files(tree: Path):
    truncated = write_bmp(tree / "training_data" / "fold_0" / "all" / "UID_1_9_1_all.bmp")
    truncated.write_bytes(truncated.read_bytes()[:400])  # header intact, pixels cut off
    not_image = tree / "training_data" / "fold_0" / "hem" / "UID_H1_9_1_hem.bmp"
    not_image.write_text("this is not an image\n")
    empty = tree / "validation_data" / PRELIM_DIR / "2.bmp"
    empty.write_bytes(b"")

    assert len(load_cnmc(tree)) == 15  # the loader does not decode
    assert check_cnmc(tree, decode=False).ok
    report = check_cnmc(tree, decode=True, workers=4)
    assert not report.ok
    assert sorted(p.path for p in report.problems) == sorted(map(str, (truncated, not_image, empty)))
    assert all("cannot be read as an image" in p.message for p in report.problems)
    assert report.counts["readable images by size (height×width)"] == {"16×16": {"images": 12}}


def test_check_report_counts_text_and_json(tree: Path):
    report = check_cnmc(tree)
    assert report.ok, report.format()
    split = report.counts["images by split × class"]
    assert split.loc["train", "ALL"] == 4 and split.loc["train", "HEM"] == 4
    assert split.loc["prelim_test", "total"] == 3 and split.loc["final_test", "unlabelled"] == 2
    assert split.loc["total", "total"] == 13
    assert list(report.counts["images by subject × class"].index) == [
        "1",
        "2",
        "3",
        "57",
        "60",
        "H1",
        "H2",
        "H3",
        "H49",
        "total",
    ]
    folds = report.counts["training images by fold × class"]
    assert folds.loc[1, "HEM"] == 2 and folds.loc["total", "total"] == 8

    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is True and data["problems"] == [] and data["dataset"] == "C-NMC 2019"
    assert data["counts"]["training images by fold × class"]["0"] == {"ALL": 3, "HEM": 2, "total": 5}
    text = report.format()
    assert text.splitlines()[0] == f"C-NMC 2019 data set check: {tree}"
    assert "Result: OK" in text and "prelim_test" in text


def test_check_report_is_generic():
    report = CheckReport(dataset="Toy", root="/data/toy", counts={"by class": {"a": {"n": 2}}},
                         problems=[Problem("/data/toy/x.png", "expected a PNG, found text")])
    assert not report.ok and report.problems == [Problem("/data/toy/x.png", "expected a PNG, found text")]
    assert report.format().splitlines()[-1] == "/data/toy/x.png: expected a PNG, found text"
    assert json.loads(json.dumps(report.to_dict()))["counts"] == {"by class": {"a": {"n": 2}}}


# ----------------------------------------------------------------------------- real samples
# ``real_cnmc`` (conftest.py) skips when $CYTOBOOK_REAL_DATA is unset or lacks the samples.


def test_real_samples_load(real_cnmc: Path):
    table = load_cnmc(real_cnmc.parent)
    train = table[table["split"] == "train"]
    assert len(train) == 6 and set(train["fold"]) == {0}
    assert set(train["subject"]) == {"1", "H6"}
    assert train.groupby("label_name").size().to_dict() == {"ALL": 3, "HEM": 3}
    prelim = table[table["split"] == "prelim_test"].set_index(
        table.loc[table["split"] == "prelim_test", "path"].map(lambda p: Path(p).name)
    )
    assert len(prelim) == 2
    assert (prelim.loc["1002.bmp", "subject"], prelim.loc["1002.bmp", "label"]) == ("H49", 0)
    assert (prelim.loc["1005.bmp", "subject"], prelim.loc["1005.bmp", "label"]) == ("57", 1)
    assert (prelim.loc["1005.bmp", "image"], prelim.loc["1005.bmp", "cell"]) == (6, 4)


def test_real_samples_check_ok(real_cnmc: Path):
    report = check_cnmc(real_cnmc)
    assert report.ok, report.format()
    assert report.counts["readable images by size (height×width)"] == {"450×450": {"images": 8}}
