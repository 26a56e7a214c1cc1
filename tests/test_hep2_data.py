"""Report 5's HEp-2 layouts: generated trees load and check clean; broken copies fail naming the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cytobook.datasets import hep2
from cytobook.datasets.hep2_drawing import recipe, render_cell, render_field
from cytobook.datasets.hep2_synthetic import (PATTERN_TRUTH, generate_fields, generate_i3a, generate_mivia,
                                              split_counts)
from cytobook.profiles import PROFILES, Hep2Spec

SPEC = Hep2Spec(i3a_cells=(30, 12, 12), mivia_cells=(12, 6), field_size=96, nucleus_radius=8.0,
                patterns_per_class=(1, 2), annot_per_class=(1, 3))


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, Path]:
    dest = tmp_path_factory.mktemp("hep2")
    return {name: generate(dest / name, SPEC, seed=2) for name, generate in (
        ("i3a", generate_i3a), ("mivia", generate_mivia), ("fields", generate_fields))}


@pytest.fixture
def i3a(trees, tmp_path) -> Path:
    """A copy of the generated I3A tree that a test may break."""
    return Path(shutil.copytree(trees["i3a"], tmp_path / "i3a"))


# --------------------------------------------------------------------------- generated layouts


def test_i3a_loads_with_the_specs_counts(trees):
    table = hep2.load_i3a(trees["i3a"])
    assert list(table.columns) == list(hep2.COLUMNS)
    for split, total in zip(("train", "val", "test"), SPEC.i3a_cells):
        rows = table[table["split"] == split]
        assert rows.groupby("label_name").size().to_dict() == split_counts(total)
    counts = table.groupby("label_name").size()
    assert counts.idxmin() == "Golgi"  # the release's rarest class
    assert table["image_id"].is_unique and table["mask_path"].isna().all()
    csv = (trees["i3a"] / hep2.I3A_CSV).read_bytes()
    assert csv.startswith(b"Image ID,Image class\r\n")
    image = np.asarray(Image.open(table["path"].iloc[0]))
    assert image.shape == (78, 78) and image.min() == 0 and image.max() == 255  # stretched, as the release


def test_mivia_loads_with_intensity_and_sizes(trees):
    table = hep2.load_mivia(trees["mivia"])
    assert table.groupby("split").size().to_dict() == {"train": 12, "test": 6}
    assert set(table["label_name"]) == set(hep2.MIVIA_CLASSES)
    assert set(table["intensity"]) <= set(hep2.MIVIA_INTENSITIES)
    assert (trees["mivia"] / "training.csv").read_text().startswith("ID;intensity;width;height\n")


def test_fields_load_both_collections(trees):
    table = hep2.load_fields(trees["fields"])
    by_source = table.groupby("source")["label_name"].nunique().to_dict()
    assert by_source == {"patterns": len(PATTERN_TRUTH), "hep_annot": len(hep2.HEP_ANNOT_CLASSES)}
    annot = table[table["source"] == "hep_annot"]
    assert annot.groupby("label_name").size().between(*SPEC.annot_per_class).all()
    field = np.asarray(Image.open(annot["path"].iloc[0]))
    assert field.shape == (96, 96, 3)
    assert field[..., 1].astype(int).sum() > 20 * (field[..., 0].astype(int).sum() + 1)  # green only
    # One collection read on its own takes its folder's name as source.
    alone = hep2.load_fields(trees["fields"] / "HEP Annot")
    assert set(alone["source"]) == {"HEP Annot"} and len(alone) == len(annot)


@pytest.mark.parametrize("name, check", [("i3a", hep2.check_i3a), ("mivia", hep2.check_mivia),
                                         ("fields", hep2.check_fields)])
def test_every_generated_layout_checks_clean(trees, name, check):
    report = check(trees[name], workers=2)
    assert report.ok, report.format()
    assert "readable images by size (height×width)" in report.counts


def test_generation_is_reproducible_and_seeded(tmp_path):
    small = Hep2Spec(i3a_cells=(6, 6, 6), mivia_cells=(6, 6), field_size=64, nucleus_radius=6.0,
                     patterns_per_class=(1, 1), annot_per_class=(1, 1))
    first, second = generate_i3a(tmp_path / "a", small, seed=1), generate_i3a(tmp_path / "b", small, seed=1)
    other = generate_i3a(tmp_path / "c", small, seed=2)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)
    assert (first / hep2.I3A_CSV).read_bytes() != (other / hep2.I3A_CSV).read_bytes()
    with pytest.raises(FileExistsError):
        generate_i3a(tmp_path / "a", small, seed=1)
    with pytest.raises(ValueError, match="i3a_cells"):
        generate_i3a(tmp_path / "d", Hep2Spec(i3a_cells=(6, 2, 6)), seed=1)


def test_profiles_scale_the_data():
    smoke, demo, full = (PROFILES[name].hep2 for name in ("smoke", "demo", "full"))
    assert sum(smoke.i3a_cells) < sum(demo.i3a_cells) < sum(full.i3a_cells) == 13596
    assert 200 <= sum(demo.i3a_cells) <= 1000 and full.mivia_cells == (721, 734)
    assert full.patterns_per_class == (4, 5) and full.annot_per_class == (1, 70)


# --------------------------------------------------------------------------- the drawing


def test_signal_is_green_and_classes_differ_by_pattern_not_brightness():
    rng = np.random.default_rng(0)
    field = render_field(rng, "Mou CytoD PL7", 128, 9.0)
    assert field.dtype == np.uint8 and field[..., 0].max() <= 8 and field[..., 2].max() <= 8
    # At the camera's levels, the exposure spread between specimens makes every class's cells overlap in mean grey.
    means = {name: [render_cell(np.random.default_rng([i, k]), name, 48, stretch=False).mean() for k in range(8)]
             for i, name in enumerate(hep2.I3A_CLASSES)}
    assert min(max(m) for m in means.values()) > max(min(m) for m in means.values())
    assert set(recipe("Mou CytoD PL7").components) == {"speckled", "cytoplasmic dense"}
    assert recipe("mouchete SAE1") != recipe("mouchete SSA")  # antigen flavours differ
    assert recipe("Controle Neg").modifiers == ("negative",)


# --------------------------------------------------------------------------- class names as labels


@pytest.mark.parametrize("name, labels", [
    ("Mouchete SAE1", {"speckled", "sae1"}),
    ("mouchete SAE1", {"speckled", "sae1"}),
    ("Mou CytoD PL7", {"speckled", "cytoplasmic", "cytoplasmic dense", "pl7"}),
    ("CytoD PL7", {"cytoplasmic", "cytoplasmic dense", "pl7"}),
    ("Cyto atypique MDA5", {"cytoplasmic", "atypical", "mda5"}),
    ("Cyto Ponctue GW", {"cytoplasmic", "dots", "gw"}),
    ("nucleole RNA pol", {"nucleolar", "rnapol"}),
    ("mouchete RNApol", {"speckled", "rnapol"}),
    ("Homogène", {"homogeneous"}),
    ("Controle Neg", {"negative"}),
    ("NuMem", {"nuclear membrane"}),
    ("fine_speckled", {"fine", "speckled"}),
    ("Cyto filamenteux actine", {"cytoplasmic", "fibrous", "actin"}),
])
def test_class_tokens_split_composite_names(name, labels):
    assert hep2.class_tokens(name) == frozenset(labels)


def test_multi_hot_shares_labels_between_classes():
    table = hep2.multi_hot(["Mouchete SSA", "Mou CytoD PL7", "CytoD PL7"])
    assert table["speckled"].tolist() == [1, 1, 0] and table["pl7"].tolist() == [0, 1, 1]
    labels = hep2.multi_hot(hep2.HEP_ANNOT_CLASSES)
    assert len(labels) == 47 and labels.sum(axis=1).min() >= 1 and labels["speckled"].sum() >= 9


# --------------------------------------------------------------------------- broken copies


def test_i3a_image_without_a_row_and_row_without_an_image(i3a):
    csv = i3a / hep2.I3A_CSV
    lines = csv.read_text().splitlines()
    dropped_id = int(lines[1].split(",")[0])
    csv.write_text("\n".join([lines[0], *lines[2:], "99999,Speckled"]) + "\n")
    report = hep2.check_i3a(i3a, decode=False)
    messages = {p.path: p.message for p in report.problems}
    orphan = next(p for p in i3a.rglob(f"{dropped_id:05d}.png"))
    assert "no row of gt_training.csv labels image" in messages[str(orphan)]
    assert any(p.path == str(csv) and "image 99999 has a row but no file; expected 99999.png" in p.message
               for p in report.problems)
    with pytest.raises(hep2.Hep2LayoutError, match=f"{dropped_id:05d}.png: no row"):
        hep2.load_i3a(i3a)


def test_i3a_unknown_class_names_the_row(i3a):
    csv = i3a / hep2.I3A_CSV
    lines = csv.read_text().splitlines()
    lines[3] = lines[3].split(",")[0] + ",Nuclear membrane"
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(hep2.Hep2LayoutError, match=r"gt_training.csv: row 3 \(line 4\).*'Nuclear membrane'; "
                                                   r"expected one of Homogeneous"):
        hep2.load_i3a(i3a)


def test_i3a_corrupt_png_is_reported_by_decoding(i3a):
    corrupt = sorted((i3a / "validation").iterdir())[0]
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    assert hep2.check_i3a(i3a, decode=False).ok
    report = hep2.check_i3a(i3a, workers=2)
    assert [p.path for p in report.problems] == [str(corrupt)]


def test_i3a_layout_problems(i3a, tmp_path):
    (i3a / "training" / "notes.txt").write_text("x")
    (i3a / "training" / "cell.png").write_bytes(b"")
    report = hep2.check_i3a(i3a, decode=False)
    messages = {Path(p.path).name: p.message for p in report.problems}
    assert "expected only %05d.png cell images" in messages["notes.txt"]
    assert "not named by a number" in messages["cell.png"]
    with pytest.raises(hep2.Hep2LayoutError, match=r"gt_training.csv: missing; expected the labels"):
        hep2.load_i3a(tmp_path)
    (tmp_path / hep2.I3A_CSV).write_text("Image ID,Image class\n")
    with pytest.raises(hep2.Hep2LayoutError, match=r"training: missing; expected at least one of training/"):
        hep2.load_i3a(tmp_path)


def test_mivia_problems_name_the_file(trees, tmp_path):
    copy = Path(shutil.copytree(trees["mivia"], tmp_path / "mivia"))
    gt = copy / "gt_training.csv"
    lines = gt.read_text().splitlines()
    lines[1] = lines[1].split(";")[0] + ";golgi"
    gt.write_text("\n".join(lines) + "\n")
    info = copy / "training.csv"
    rows = info.read_text().splitlines()
    image_id, intensity, width, height = rows[2].split(";")
    rows[2] = ";".join([image_id, intensity, str(int(width) + 5), height])
    info.write_text("\n".join(rows) + "\n")
    (copy / "training" / "999.png").write_bytes((copy / "training" / f"{image_id}.png").read_bytes())
    report = hep2.check_mivia(copy, workers=2)
    messages = [str(p) for p in report.problems]
    assert any("gt_training.csv: row 1 (line 2)" in m and "'golgi'; expected one of homogeneous" in m
               for m in messages)
    assert any(m.startswith(str(copy / "training" / "999.png")) and "no row of training.csv" in m for m in messages)
    assert any(m.startswith(str(copy / "training" / f"{image_id}.png")) and f"width {int(width) + 5}" in m
               for m in messages)
    (copy / "training.csv").write_text("ID,intensity,width,height\n1,positive,78,78\n")
    with pytest.raises(hep2.Hep2LayoutError, match=r"training.csv: missing columns.*semicolon-separated header"):
        hep2.load_mivia(copy)


def test_empty_class_folder_and_orphan_mask_are_named(trees, tmp_path):
    copy = Path(shutil.copytree(trees["fields"], tmp_path / "fields"))
    empty = copy / "HEP Annot" / "KI67"
    for path in empty.iterdir():
        path.unlink()
    orphan = copy / "patterns" / "pattern 3" / "masks" / "999.png"
    orphan.write_bytes((copy / "patterns" / "pattern 3" / "001.png").read_bytes())
    report = hep2.check_fields(copy, decode=False)
    assert {p.path: p.message for p in report.problems} == {
        str(empty): "empty; expected field images of class 'KI67'",
        str(orphan): f"no image named 999.* in {copy / 'patterns' / 'pattern 3'}; expected every mask to have its image",
    }
    orphan.unlink()
    with pytest.raises(hep2.Hep2LayoutError, match=r"HEP Annot/KI67: empty; expected field images"):
        hep2.load_fields(copy)


def test_fields_accept_one_level_of_groups(trees, tmp_path):
    copy = Path(shutil.copytree(trees["fields"] / "HEP Annot", tmp_path / "HEP Annot"))
    (copy / "Cyto").mkdir()
    for name in ("Cyto Golgi", "Cyto Fibreux"):
        (copy / name).rename(copy / "Cyto" / name)
    table = hep2.load_fields(copy)
    assert table["label_name"].nunique() == 47 and (table["label_name"] == "Cyto Golgi").any()


# --------------------------------------------------------------------------- the real sample


def test_real_icpr2014_cells(real_data):
    root = real_data / hep2.REAL_FOLDER
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    report = hep2.check_i3a(root, decode=False)
    assert report.ok, report.format()
    table = hep2.load_i3a(root)
    assert table.groupby("split").size().to_dict() == {"train": 3000, "val": 2175}
    assert set(table["label_name"]) == set(hep2.I3A_CLASSES)
    assert table.groupby("label_name").size().idxmin() == "Golgi"
    image = np.asarray(Image.open(table["path"].iloc[0]))
    assert image.shape == (78, 78)
    assert hep2.real_folder(real_data) == root
