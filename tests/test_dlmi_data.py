"""The DLMI 2023 lymphocytosis data layer: generator, loader, check, submission file and CLI.

Generated trees use small specs (the ``smoke`` profile's, a fraction of a
second); the loader's error paths use a hand-written four-patient tree.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cytobook import cli
from cytobook.datasets import DATASETS, REGISTRY, generated
from cytobook.datasets import dlmi_synthetic
from cytobook.datasets.dlmi import (
    IMAGE_COLUMNS,
    PATIENT_COLUMNS,
    REFERENCE_DATE,
    DlmiLayoutError,
    age_years,
    check_dlmi,
    load_dlmi,
    parse_dob,
    write_submission,
)
from cytobook.datasets.dlmi_synthetic import (
    GENERATOR_VERSION,
    ROOT_NAME,
    TEST_LABELS_NAME,
    generate_dlmi,
    hidden_labels_path,
    load_test_labels,
    plan_patients,
)
from cytobook.profiles import PROFILE_ENV, PROFILES, DlmiSpec, get_profile

SMOKE = PROFILES["smoke"].dlmi
HEADER = ",ID,LABEL,GENDER,DOB,LYMPH_COUNT"
SPLIT_HEADER = "ID,LABEL,GENDER,DOB,LYMPH_COUNT"
SLASH_DOB = re.compile(r"^[1-9]\d?/[1-9]\d?/\d{4}$")  # M/D/YYYY, unpadded
DASH_DOB = re.compile(r"^\d{2}-\d{2}-\d{4}$")  # DD-MM-YYYY


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


@pytest.fixture(scope="module")
def smoke_root(tmp_path_factory) -> Path:
    return generate_dlmi(tmp_path_factory.mktemp("smoke"), SMOKE, seed=0)


# --------------------------------------------------------------------------- #
# Generator: determinism, atomicity
# --------------------------------------------------------------------------- #


def test_same_seed_gives_byte_identical_files_and_another_seed_differs(tmp_path, smoke_root):
    again = generate_dlmi(tmp_path / "a", SMOKE, seed=0)
    first, second = _files(smoke_root.parent), _files(again.parent)
    assert first.keys() == second.keys()
    assert all(first[name] == second[name] for name in first)
    other = _files(generate_dlmi(tmp_path / "b", SMOKE, seed=1).parent)
    shared = [name for name in first.keys() & other.keys() if name.endswith(".jpg")]
    assert shared and all(first[name] != other[name] for name in shared)


def test_adding_a_patient_leaves_the_others_unchanged(tmp_path):
    small = DlmiSpec(train_patients=(3, 2), test_patients=2, images_per_patient=(2, 3), image_size=64)
    larger = replace(small, train_patients=(4, 2))
    a, b = generate_dlmi(tmp_path / "a", small, seed=5), generate_dlmi(tmp_path / "b", larger, seed=5)
    where_b = {(p.split, p.malignant, p.rank): p for p in plan_patients(larger, seed=5)}
    folders = {"train": "trainset", "test": "testset"}
    for patient in plan_patients(small, seed=5):
        twin = where_b[patient.split, patient.malignant, patient.rank]
        left = _files(a / folders[patient.split] / patient.patient_id)
        right = _files(b / folders[twin.split] / twin.patient_id)
        assert left == right, patient


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = dlmi_synthetic.render_image

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(dlmi_synthetic, "render_image", failing)
    with pytest.raises(KeyboardInterrupt):
        generate_dlmi(tmp_path, SMOKE)
    assert list(tmp_path.iterdir()) == []


def test_existing_tree_is_never_overwritten_and_bad_specs_are_refused(tmp_path):
    (tmp_path / ROOT_NAME).mkdir()
    with pytest.raises(FileExistsError):
        generate_dlmi(tmp_path, SMOKE)
    with pytest.raises(ValueError, match="images_per_patient"):
        generate_dlmi(tmp_path / "x", replace(SMOKE, images_per_patient=(5, 2)))
    with pytest.raises(ValueError, match="reactive"):
        generate_dlmi(tmp_path / "x", replace(SMOKE, train_patients=(3, 0)))
    with pytest.raises(ValueError, match="seed"):
        generate_dlmi(tmp_path / "x", SMOKE, seed=-1)


# --------------------------------------------------------------------------- #
# Generator: layout and CSV quirks
# --------------------------------------------------------------------------- #


def test_clinical_csv_reproduces_the_real_quirks(smoke_root):
    lines = (smoke_root / "clinical_annotation.csv").read_text().splitlines()
    assert lines[0] == HEADER
    rows = [line.split(",") for line in lines[1:]]
    n_train, n_test = sum(SMOKE.train_patients), SMOKE.test_patients
    assert len(rows) == n_train + n_test
    assert [row[0] for row in rows] == [str(i) for i in range(len(rows))]  # the unnamed index
    ids = [row[1] for row in rows]
    assert sorted(int(pid[1:]) for pid in ids) == list(range(len(rows)))
    assert ids != sorted(ids, key=lambda pid: int(pid[1:]))  # rows are not in ID order
    labels = [int(row[2]) for row in rows]
    assert labels.count(1) == SMOKE.train_patients[0] and labels.count(0) == SMOKE.train_patients[1]
    assert labels.count(-1) == n_test
    test_numbers = sorted(int(pid[1:]) for pid, label in zip(ids, labels) if label == -1)
    assert test_numbers != list(range(n_train, n_train + n_test))  # test IDs interleaved
    genders = [row[3] for row in rows]
    assert set(genders) <= {"M", "F", "f"} and genders.count("f") == 1
    dobs = [row[4] for row in rows]
    assert all(SLASH_DOB.match(d) or DASH_DOB.match(d) for d in dobs), dobs
    assert any(SLASH_DOB.match(d) for d in dobs) and any(DASH_DOB.match(d) for d in dobs)
    counts = [row[5] for row in rows]
    assert all("." in c and 2.0 <= float(c) <= 295.0 for c in counts), counts


def test_split_csvs_repeat_the_rows_without_index(smoke_root):
    clinical = _rows(smoke_root / "clinical_annotation.csv")[1:]
    train = _rows(smoke_root / "trainset" / "trainset_true.csv")
    test = _rows(smoke_root / "testset" / "testset_data.csv")
    assert ",".join(train[0]) == SPLIT_HEADER and ",".join(test[0]) == SPLIT_HEADER
    assert train[1:] == [row[1:] for row in clinical if row[2] != "-1"]
    assert test[1:] == [row[1:] for row in clinical if row[2] == "-1"]


def test_image_folders_bag_sizes_and_jpegs(smoke_root):
    clinical = _rows(smoke_root / "clinical_annotation.csv")[1:]
    expected = {("testset" if row[2] == "-1" else "trainset", row[1]) for row in clinical}
    found = {(p.parent.name, p.name) for p in smoke_root.glob("*set/P*")}
    assert found == expected
    low, high = SMOKE.images_per_patient
    for split, pid in found:
        names = sorted(p.name for p in (smoke_root / split / pid).iterdir())
        assert low <= len(names) <= high
        assert names == [f"{k:06d}.jpg" for k in range(len(names))]
    sample = next((smoke_root / "trainset").glob("P*/000000.jpg"))
    with Image.open(sample) as image:
        assert image.format == "JPEG" and image.mode == "RGB"
        assert image.size == (SMOKE.image_size, SMOKE.image_size)


def test_test_labels_live_beside_the_tree_only(smoke_root):
    assert hidden_labels_path(smoke_root) == smoke_root.parent / TEST_LABELS_NAME
    truth = load_test_labels(smoke_root)
    test_ids = sorted(p.name for p in (smoke_root / "testset").iterdir() if p.is_dir())
    assert sorted(truth["patient_id"]) == test_ids
    assert set(truth["label"]) == {0, 1}
    # Inside the tree, every test patient is -1, and the truth file is nowhere.
    assert not list(smoke_root.rglob(TEST_LABELS_NAME))
    for row in _rows(smoke_root / "testset" / "testset_data.csv")[1:]:
        assert row[1] == "-1"


def test_test_labels_of_real_data_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no test labels"):
        load_test_labels(tmp_path / "dlmi")


# --------------------------------------------------------------------------- #
# Loader on generated data
# --------------------------------------------------------------------------- #


def test_loader_round_trip(smoke_root):
    data = load_dlmi(smoke_root.parent)  # the parent is accepted too
    assert data.root == smoke_root
    patients, images = data.patients, data.images
    assert list(patients.columns) == list(PATIENT_COLUMNS)
    assert list(images.columns) == list(IMAGE_COLUMNS)
    assert patients.index.equals(pd.RangeIndex(len(patients)))
    assert patients["dob"].dtype.kind == "M"
    assert {c: patients[c].dtype.kind for c in ("label", "sex", "n_images", "age", "lymph_count")} == {
        "label": "i", "sex": "i", "n_images": "i", "age": "f", "lymph_count": "f"
    }
    # Order: training patients first, by patient number.
    keys = list(zip(patients["split"] == "test", patients["patient_id"].str[1:].astype(int)))
    assert keys == sorted(keys)

    clinical = {row[1]: row for row in _rows(smoke_root / "clinical_annotation.csv")[1:]}
    for patient in patients.itertuples():
        row = clinical[patient.patient_id]
        assert patient.label == int(row[2])
        assert patient.split == ("test" if row[2] == "-1" else "train")
        assert patient.gender == row[3].upper() and patient.sex == int(row[3].upper() == "M")
        dob = parse_dob(row[4])
        assert patient.dob == pd.Timestamp(dob)
        assert patient.age == pytest.approx((REFERENCE_DATE - dob).days / 365.2425)
        assert patient.lymph_count == float(row[5])
        folder = smoke_root / ("testset" if patient.split == "test" else "trainset") / patient.patient_id
        assert patient.n_images == len(list(folder.glob("*.jpg")))
    assert len(images) == patients["n_images"].sum()
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in images["path"])
    order = [(pid, Path(p).name) for pid, p in zip(images["patient_id"], images["path"])]
    expected = [(pid, Path(p).name) for pid in patients["patient_id"] for p in sorted(
        images.loc[images["patient_id"] == pid, "path"])]
    assert order == expected
    merged = images.merge(patients[["patient_id", "split", "label"]], on="patient_id", suffixes=("", "_p"))
    assert (merged["split"] == merged["split_p"]).all() and (merged["label"] == merged["label_p"]).all()


def test_generated_classes_differ_in_count_and_cytoplasm(tmp_path):
    """Malignant patients: higher counts, older, less deep-blue (basophilic) cytoplasm, on a mid-size set."""
    spec = DlmiSpec(train_patients=(14, 10), test_patients=0, images_per_patient=(6, 6))
    data = load_dlmi(generate_dlmi(tmp_path, spec, seed=3))
    blue = {}
    for pid, group in data.images.groupby("patient_id"):
        # Deep blue and not dark: the basophilic skirt of reactive cytoplasm (chromatin is dark in green).
        pixels = [np.asarray(Image.open(p)).astype(int) for p in group["path"]]
        blue[pid] = np.mean([((a[..., 2] - a[..., 0] > 45) & (a[..., 1] > 100)).mean() for a in pixels])
    patients = data.patients.assign(blue=data.patients["patient_id"].map(blue))
    medians = patients.groupby("label")[["lymph_count", "blue", "age"]].median()
    assert medians.loc[1, "lymph_count"] > 1.5 * medians.loc[0, "lymph_count"]
    assert medians.loc[0, "blue"] > 1.5 * medians.loc[1, "blue"]
    assert medians.loc[1, "age"] > medians.loc[0, "age"]
    # Overlap: neither the count nor the cytoplasm separates the classes perfectly.
    malignant, reactive = patients[patients["label"] == 1], patients[patients["label"] == 0]
    assert malignant["lymph_count"].min() < reactive["lymph_count"].max()
    assert malignant["blue"].max() > reactive["blue"].min()


# --------------------------------------------------------------------------- #
# Values
# --------------------------------------------------------------------------- #


def test_parse_dob_reads_both_formats():
    assert parse_dob("11/3/1933") == dt.date(1933, 11, 3)
    assert parse_dob(" 27-08-1951 ") == dt.date(1951, 8, 27)
    assert parse_dob("1/15/1960") == dt.date(1960, 1, 15)


@pytest.mark.parametrize("text", ["31/31/1990", "1933-11-03", "", "3.11.1933", "30-02-1950", "11/3/33"])
def test_parse_dob_rejects_naming_where(text):
    with pytest.raises(ValueError) as error:
        parse_dob(text, "clinical_annotation.csv row 17 (ID P26)")
    message = str(error.value)
    assert message.startswith("clinical_annotation.csv row 17 (ID P26)") and "M/D/YYYY" in message


def test_age_is_taken_at_the_reference_date():
    assert REFERENCE_DATE == dt.date(2023, 1, 1)
    assert age_years(dt.date(1973, 1, 1)) == pytest.approx(50.0, abs=0.01)
    assert age_years(pd.Timestamp("1993-01-01")) == pytest.approx(30.0, abs=0.01)


# --------------------------------------------------------------------------- #
# Loader error paths on a hand-written tree
# --------------------------------------------------------------------------- #

# P3 writes a lowercase f, as in the real file; P10 is the test patient.
CLINICAL = [
    "0,P26,1,M,11/3/1933,11.2",
    "1,P3,0,f,27-08-1951,4.5",
    "2,P10,-1,F,1/15/1960,30.0",
    "3,P2,1,F,02-02-1940,120.5",
]
IMAGES = {"trainset": {"P26": 2, "P3": 1, "P2": 3}, "testset": {"P10": 2}}


def write_jpeg(path: Path, value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((16, 16, 3), value, np.uint8)).save(path, format="JPEG")
    return path


def make_tree(base: Path, clinical: list[str] = CLINICAL, header: str = HEADER) -> Path:
    root = base / "dlmi"
    root.mkdir(parents=True)
    (root / "clinical_annotation.csv").write_text("\n".join([header, *clinical]) + "\n")
    for split, patients in IMAGES.items():
        for pid, count in patients.items():
            for k in range(count):
                write_jpeg(root / split / pid / f"{k:06d}.jpg", 40 * k)
    train = [line.split(",", 1)[1] for line in clinical if ",-1," not in line]
    test = [line.split(",", 1)[1] for line in clinical if ",-1," in line]
    (root / "trainset" / "trainset_true.csv").write_text("\n".join([SPLIT_HEADER, *train]) + "\n")
    (root / "testset" / "testset_data.csv").write_text("\n".join([SPLIT_HEADER, *test]) + "\n")
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path)


def test_hand_written_tree_loads(tree):
    data = load_dlmi(tree)
    patients = data.patients
    assert list(patients["patient_id"]) == ["P2", "P3", "P26", "P10"]
    assert list(patients["split"]) == ["train", "train", "train", "test"]
    assert list(patients["label"]) == [1, 0, 1, -1]
    assert list(patients["gender"]) == ["F", "F", "M", "F"]  # lowercase f accepted, normalised
    assert list(patients["sex"]) == [0, 0, 1, 0]
    assert list(patients["n_images"]) == [3, 1, 2, 2]
    assert patients.loc[2, "dob"] == pd.Timestamp("1933-11-03")
    assert patients.loc[1, "dob"] == pd.Timestamp("1951-08-27")
    assert list(data.images["patient_id"]) == ["P2"] * 3 + ["P3"] + ["P26"] * 2 + ["P10"] * 2
    assert data.images["path"].iloc[0].endswith("trainset/P2/000000.jpg")


def test_uppercase_jpg_suffix_counts_and_other_files_do_not(tree):
    (tree / "trainset" / "P3" / "000000.jpg").rename(tree / "trainset" / "P3" / "000000.JPG")
    (tree / "trainset" / "P3" / "notes.txt").write_text("x")
    assert load_dlmi(tree).patients.set_index("patient_id").loc["P3", "n_images"] == 1


def _raises(root: Path, *fragments: str) -> str:
    with pytest.raises(DlmiLayoutError) as error:
        load_dlmi(root)
    message = str(error.value)
    for fragment in fragments:
        assert fragment in message, message
    assert error.value.problem is not None
    return message


def _edit(lines: list[str], index: int, field: int, value: str) -> list[str]:
    edited = list(lines)
    parts = edited[index].split(",")
    parts[field] = value
    edited[index] = ",".join(parts)
    return edited


@pytest.mark.parametrize(
    "field, value, expected",
    [
        (4, "1933-11-03", "DOB '1933-11-03'"),
        (4, "31/31/1990", "M/D/YYYY"),
        (3, "X", "GENDER 'X'"),
        (2, "2", "LABEL '2'"),
        (5, "-3", "LYMPH_COUNT '-3'"),
        (5, "many", "LYMPH_COUNT 'many'"),
        (1, "26", "ID '26'"),
    ],
    ids=["dob format", "dob day", "gender", "label", "count negative", "count text", "id"],
)
def test_unreadable_value_names_file_and_row(tmp_path, field, value, expected):
    root = make_tree(tmp_path, _edit(CLINICAL, 3, field, value))
    message = _raises(root, "clinical_annotation.csv", "row 4 (1-based data row", expected)
    if field != 1:
        assert "ID P2" in message


def test_missing_column_names_expected_and_found(tmp_path):
    clinical = [",".join(line.split(",")[:4]) for line in CLINICAL]
    _raises(make_tree(tmp_path, clinical, header=",ID,LABEL,GENDER,DOB"), "missing column LYMPH_COUNT",
            "expected columns ID, LABEL, GENDER, DOB, LYMPH_COUNT", "found ID, LABEL, GENDER, DOB")


def test_duplicate_id(tmp_path):
    clinical = [*CLINICAL, "4,P26,1,M,11/3/1933,11.2"]
    _raises(make_tree(tmp_path, clinical), "clinical_annotation.csv", "row 5", "P26 already given in row 1")


def test_empty_patient_folder(tree):
    for path in (tree / "trainset" / "P2").iterdir():
        path.unlink()
    _raises(tree, "patient P2 has no images in trainset/P2; expected at least one .jpg")


def test_missing_patient_folder(tree):
    shutil.rmtree(tree / "testset" / "P10")
    _raises(tree, str(tree / "testset" / "P10"), "patient P10", "no image folder")


def test_orphan_folder(tree):
    write_jpeg(tree / "trainset" / "P77" / "000000.jpg")
    _raises(tree, str(tree / "trainset" / "P77"), "P77", "no row in clinical_annotation.csv")


def test_patient_in_the_wrong_split(tmp_path):
    # P10 is labelled as a training patient but its images are in testset/.
    _raises(make_tree(tmp_path, _edit(CLINICAL, 2, 2, "1")), "patient P10", "testset/",
            "test patients (LABEL -1) in testset/")


def test_split_csv_disagreeing_names_file_and_id(tree):
    csv_path = tree / "trainset" / "trainset_true.csv"
    csv_path.write_text(csv_path.read_text().replace("P3,0,f,27-08-1951,4.5", "P3,0,f,27-08-1951,5.5"))
    _raises(tree, "trainset_true.csv", "ID P3 disagrees with clinical_annotation.csv row 2",
            "LYMPH_COUNT '5.5' here, '4.5' there")


def test_split_csv_missing_a_patient(tree):
    csv_path = tree / "testset" / "testset_data.csv"
    csv_path.write_text(SPLIT_HEADER + "\n")
    _raises(tree, "testset_data.csv", "ID P10", "missing here")


def test_split_csvs_are_optional(tree):
    (tree / "trainset" / "trainset_true.csv").unlink()
    (tree / "testset" / "testset_data.csv").unlink()
    assert len(load_dlmi(tree).patients) == 4


def test_missing_clinical_csv(tmp_path):
    _raises(tmp_path / "nowhere", "no such folder")
    root = make_tree(tmp_path / "b")
    (root / "clinical_annotation.csv").unlink()
    _raises(root, "clinical_annotation.csv", "missing")


# --------------------------------------------------------------------------- #
# Check
# --------------------------------------------------------------------------- #


def test_check_passes_on_generated_data_with_counts(smoke_root):
    report = check_dlmi(smoke_root)
    assert report.ok, report.format()
    counts = report.to_dict()["counts"]
    by_split = counts["patients by split × class"]
    assert by_split["train"]["malignant"] == SMOKE.train_patients[0]
    assert by_split["train"]["reactive"] == SMOKE.train_patients[1]
    assert by_split["test"]["unlabelled"] == SMOKE.test_patients
    per_patient = counts["images per patient by split"]["train"]
    assert SMOKE.images_per_patient[0] <= per_patient["min"] <= per_patient["max"] <= SMOKE.images_per_patient[1]
    assert set(counts["lymphocyte count (10⁹/L) by class"]) == {"malignant", "reactive", "unlabelled"}
    assert "age (years on 2023-01-01) by class" in counts
    assert list(counts["readable images by size (height×width)"]) == ["224×224"]


def test_check_collects_every_problem(tree):
    broken = tree / "trainset" / "P26" / "000001.jpg"
    broken.write_bytes(broken.read_bytes()[:100])
    for path in (tree / "trainset" / "P3").iterdir():
        path.unlink()
    # An image of another size is counted, not a problem.
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tree / "testset" / "P10" / "000002.jpg")
    report = check_dlmi(tree)
    assert not report.ok
    paths = [problem.path for problem in report.problems]
    assert str(broken) in paths
    assert str(tree / "trainset" / "P3") in paths
    assert len(report.problems) == 2, report.format()
    assert report.counts["readable images by size (height×width)"]["20×30"] == {"images": 1}
    assert "Problems:" in report.format()


def test_check_without_decoding_misses_only_the_truncated_image(tree):
    broken = tree / "trainset" / "P26" / "000001.jpg"
    broken.write_bytes(broken.read_bytes()[:100])
    assert check_dlmi(tree, decode=False).ok


# --------------------------------------------------------------------------- #
# Submission file
# --------------------------------------------------------------------------- #


def test_write_submission_and_refuse_to_overwrite(tmp_path):
    path = write_submission(tmp_path / "sub" / "submission.csv", ["P10", "P2"], [1, np.int64(0)])
    assert path.read_text() == "Id,Predicted\nP10,1\nP2,0\n"
    with pytest.raises(FileExistsError):
        write_submission(path, ["P10"], [0])
    assert path.read_text() == "Id,Predicted\nP10,1\nP2,0\n"
    assert [p.name for p in path.parent.iterdir()] == ["submission.csv"]  # no temporary left behind


@pytest.mark.parametrize(
    "ids, predicted, match",
    [(["10"], [1], "P<number>"), (["P1", "P1"], [1, 0], "twice"), (["P1"], [0.7], "not 0 or 1"),
     (["P1", "P2"], [1], "one each")],
)
def test_write_submission_refuses_bad_input(tmp_path, ids, predicted, match):
    with pytest.raises(ValueError, match=match):
        write_submission(tmp_path / "s.csv", ids, predicted)
    assert not (tmp_path / "s.csv").exists()


# --------------------------------------------------------------------------- #
# Cache, registry and command line
# --------------------------------------------------------------------------- #

TINY = DlmiSpec(train_patients=(2, 1), test_patients=1, images_per_patient=(1, 2), image_size=64)


def test_generated_dlmi_generates_once_then_reuses(tmp_path, monkeypatch):
    monkeypatch.setenv("CYTOBOOK_CACHE", str(tmp_path))
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    profile = get_profile("smoke", dlmi=TINY)
    root = generated("dlmi", profile, seed=2)
    folder = tmp_path / "dlmi" / f"smoke-seed2-v{GENERATOR_VERSION}"
    assert root == folder / ROOT_NAME and (root / "clinical_annotation.csv").is_file()
    assert (folder / TEST_LABELS_NAME).is_file()
    assert json.loads((folder / "spec.json").read_text())["train_patients"] == [2, 1]

    def must_not_run(*args, **kwargs):
        raise AssertionError("cached data was generated again")

    monkeypatch.setitem(REGISTRY, "dlmi", replace(REGISTRY["dlmi"], generator=must_not_run))
    assert generated("dlmi", profile, seed=2) == root
    with pytest.raises(ValueError, match="different spec"):
        generated("dlmi", get_profile("smoke", dlmi=replace(TINY, test_patients=2)), seed=2)


def test_registry_knows_dlmi(tmp_path, monkeypatch):
    monkeypatch.setenv("CYTOBOOK_CACHE", str(tmp_path))
    assert "dlmi" in DATASETS
    root = generated("dlmi", get_profile("smoke", dlmi=TINY), seed=4)
    assert root == tmp_path / "dlmi" / f"smoke-seed4-v{GENERATOR_VERSION}" / ROOT_NAME


def test_cli_generates_and_checks(tmp_path, capsys):
    assert cli.main(["data", "generate", "dlmi", str(tmp_path), "--profile", "smoke"]) == 0
    root = tmp_path / ROOT_NAME
    assert capsys.readouterr().out.strip() == str(root)
    done = subprocess.run(
        [sys.executable, "-m", "cytobook.cli", "data", "check", "dlmi", str(root), "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True and report["dataset"] == "DLMI 2023 lymphocytosis"
    n_patients = sum(SMOKE.train_patients) + SMOKE.test_patients
    assert report["counts"]["patients by split × class"]["total"]["total"] == n_patients

    shutil.rmtree(next((root / "trainset").glob("P*")))
    assert cli.main(["data", "check", "dlmi", str(root)]) == 1
    assert "no image folder" in capsys.readouterr().out
