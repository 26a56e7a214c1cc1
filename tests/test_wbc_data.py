"""Report 3's white-cell layouts: generated trees load and check clean; broken copies fail naming the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cytobook.datasets import wbc
from cytobook.datasets.wbc_synthetic import (generate_pbc, generate_raabin, generate_wbc_course, generate_zheng,
                                             nested_counts)
from cytobook.profiles import WbcSpec

SPEC = WbcSpec(image_size=48, train_per_class=20, val_per_class=2, cam16_size=40, cam16_images=(8, 2, 4),
               prcc_size=40, prcc_tiles=2)


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, Path]:
    dest = tmp_path_factory.mktemp("wbc")
    return {name: generate(dest / name, SPEC, seed=3) for name, generate in (
        ("wbc", generate_wbc_course), ("raabin", generate_raabin), ("pbc", generate_pbc), ("zheng", generate_zheng))}


@pytest.fixture
def course(trees, tmp_path) -> Path:
    """A copy of the generated course tree that a test may break."""
    return Path(shutil.copytree(trees["wbc"], tmp_path / "wbc_course"))


def test_course_copy_loads_with_nested_fractions_masks_and_pretraining_sets(trees):
    table = wbc.load_wbc_course(trees["wbc"])
    assert list(table.columns) == list(wbc.COLUMNS)
    cells = table[table["source"] == "wbc"]
    train = cells[cells["split"] == "train"]
    counts = nested_counts(SPEC.train_per_class)
    for fraction in wbc.FRACTIONS:
        rows = train[train["fraction"] == fraction]
        assert rows.groupby("label_name").size().to_dict() == dict.fromkeys(wbc.WBC_CLASSES, counts[fraction])
        assert rows.groupby("label_name")["mask_path"].count().min() >= 1  # every fraction keeps masks
    names = {f: set(train.loc[train["fraction"] == f, "path"].map(lambda p: Path(p).name)) for f in wbc.FRACTIONS}
    assert names[1] <= names[10] <= names[50] <= names[100]
    assert 0.05 <= train.loc[train["fraction"] == 100, "mask_path"].notna().mean() <= 0.15
    assert len(cells[cells["split"] == "val"]) == SPEC.val_per_class * 5
    cam16 = table[table["source"] == "cam16"]
    assert cam16.groupby("split").size().to_dict() == {"train": 8, "val": 2, "test": 4}
    assert set(cam16.loc[cam16["mask_path"].notna(), "label_name"]) == {"tumor"}
    assert table.loc[table["source"] == "prcc", "label"].isna().all()


def test_course_masks_read_as_the_cells_they_outline(trees):
    table = wbc.load_wbc_course(trees["wbc"])
    row = table[(table["source"] == "wbc") & table["mask_path"].notna()].iloc[0]
    mask = wbc.read_binary_mask(row["mask_path"])
    image = np.asarray(Image.open(row["path"]).convert("L"), dtype=float)
    assert mask.shape == image.shape and 0.05 < mask.mean() < 0.9
    assert image[mask].mean() < image[~mask].mean()  # the stained cell is darker than the smear around it


@pytest.mark.parametrize("name, loader, check", [
    ("wbc", wbc.load_wbc_course, wbc.check_wbc_course), ("raabin", wbc.load_raabin, wbc.check_raabin),
    ("pbc", wbc.load_pbc, wbc.check_pbc), ("zheng", wbc.load_zheng, wbc.check_zheng)])
def test_every_generated_layout_checks_clean(trees, name, loader, check):
    report = check(trees[name])
    assert report.ok, report.format()
    table = loader(trees[name])
    assert set(table["label_name"].dropna()) >= set(wbc.WBC_CLASSES) - ({"Basophil"} if name == "zheng" else set())
    assert "readable images by size (height×width)" in report.counts


def test_raabin_and_zheng_splits(trees):
    assert set(wbc.load_raabin(trees["raabin"])["split"]) == {"train", "test_a", "test_b"}
    zheng = wbc.load_zheng(trees["zheng"])
    assert set(zheng["split"]) == {"Dataset 1", "Dataset 2"}
    labels = wbc.read_zheng_mask(zheng["mask_path"].iloc[0])
    assert set(np.unique(labels)) == {0, 1, 2}


def test_generation_is_reproducible(tmp_path):
    small = WbcSpec(image_size=40, train_per_class=2, val_per_class=1, cam16_size=40, cam16_images=(2, 2, 2),
                    prcc_size=40, prcc_tiles=1)
    first, second = generate_pbc(tmp_path / "a", small, seed=1), generate_pbc(tmp_path / "b", small, seed=1)
    files = sorted(p.relative_to(first) for p in first.rglob("*.jpg"))
    assert files and files == sorted(p.relative_to(second) for p in second.rglob("*.jpg"))
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)
    with pytest.raises(FileExistsError):
        generate_pbc(tmp_path / "a", small, seed=1)


def test_missing_class_folder_is_named(course):
    shutil.rmtree(course / "WBC_10" / "train" / "data" / "Monocyte")
    with pytest.raises(wbc.WbcLayoutError, match=r"WBC_10/train/data/Monocyte: missing; expected a folder per class"):
        wbc.load_wbc_course(course)


def test_empty_class_folder_is_named(course):
    folder = course / "WBC_100" / "val" / "data" / "Basophil"
    for path in folder.iterdir():
        path.unlink()
    with pytest.raises(wbc.WbcLayoutError, match=r"val/data/Basophil: empty; expected Basophil images"):
        wbc.load_wbc_course(course)


def test_fractions_that_are_not_nested_are_found(course):
    extra = course / "WBC_1" / "train" / "data" / "Eosinophil" / "EXTRA_1.jpg"
    shutil.copyfile(next((course / "WBC_100" / "val" / "data" / "Eosinophil").iterdir()), extra)
    report = wbc.check_wbc_course(course, decode=False)
    assert [p.path for p in report.problems] == [str(extra)]
    assert "not in WBC_10/train" in report.problems[0].message


def test_a_mask_without_its_image_and_a_corrupt_image_are_reported(course):
    masks = course / "WBC_100" / "train" / "mask" / "Lymphocyte"
    orphan = masks / "LYM_99999.jpg"
    shutil.copyfile(next(masks.iterdir()), orphan)
    corrupt = course / "WBC_100" / "val" / "data" / "Neutrophil" / "NEU_V00000.jpg"
    corrupt.write_bytes(b"not a jpeg")
    report = wbc.check_wbc_course(course)
    messages = {p.path: p.message for p in report.problems}
    assert "expected every mask to have its image" in messages[str(orphan)]
    assert str(corrupt) in messages
    with pytest.raises(wbc.WbcLayoutError, match="LYM_99999"):
        wbc.load_wbc_course(course)


def test_course_copy_needs_wbc_100(tmp_path):
    with pytest.raises(wbc.WbcLayoutError, match=r"WBC_100: missing; expected the course copy"):
        wbc.load_wbc_course(tmp_path)


def test_zheng_csv_problems_name_the_row(trees, tmp_path):
    copy = Path(shutil.copytree(trees["zheng"], tmp_path / "zheng"))
    csv = copy / "Class Labels of Dataset 1.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([lines[0], lines[1].split(",")[0] + ",7", *lines[2:]]) + "\n")
    report = wbc.check_zheng(copy, decode=False)
    assert any("row 1 (line 2)" in p.message and "class 1-5" in p.message for p in report.problems)
    assert any(p.path.endswith("001.bmp") and "no row" in p.message for p in report.problems)
    csv.write_text("image ID,label\n1,1\n")
    with pytest.raises(wbc.WbcLayoutError, match="no class column; expected 'class label' or 'class'"):
        wbc.load_zheng(copy)


def test_real_pbc_white_cells(real_data):
    root = real_data / "pbc"
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    report = wbc.check_pbc(root, decode=False)
    assert report.ok, report.format()
    table = wbc.load_pbc(root)
    assert set(table["label_name"]) == set(wbc.WBC_CLASSES)
    assert set(report.counts["folders left out (not one of the five white-cell types)"]) == {"erythroblast", "ig",
                                                                                              "platelet"}


def test_real_zheng_cells_and_expert_masks(real_data):
    root = real_data / "wbc_seg_zheng2018"
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    report = wbc.check_zheng(root, decode=False)
    assert report.ok, report.format()
    table = wbc.load_zheng(root)
    assert set(table["split"]) == {"Dataset 1", "Dataset 2"}
    labels = wbc.read_zheng_mask(table["mask_path"].iloc[0])
    image = np.asarray(Image.open(table["path"].iloc[0]).convert("L"), dtype=float)
    assert image[labels == 2].mean() < image[labels == 0].mean()  # the expert's nucleus is the darkest part


def test_real_data_folders_come_from_the_parameter_or_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(wbc.REAL_DATA_ENV, raising=False)
    assert wbc.real_data_folders() == {}
    (tmp_path / "pbc").mkdir()
    assert wbc.real_data_folders(tmp_path) == {"pbc": tmp_path / "pbc"}
    (tmp_path / "wbc_seg_zheng2018").mkdir()
    monkeypatch.setenv(wbc.REAL_DATA_ENV, str(tmp_path))
    assert wbc.real_data_folders() == {"pbc": tmp_path / "pbc", "zheng": tmp_path / "wbc_seg_zheng2018"}
