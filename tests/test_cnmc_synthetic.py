"""Tests of the synthetic C-NMC 2019 generator: determinism, layout, and what the images can teach.

The layout tests use the ``smoke`` spec (a fraction of a second); the signal
tests need enough subjects to measure AUCs and use the ``demo`` spec, generated
once per module.
"""

from __future__ import annotations

import csv
import re
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold, StratifiedKFold, cross_val_score

from cytobook.datasets import REGISTRY, cnmc_synthetic, generated
from cytobook.datasets.cnmc_synthetic import (
    GENERATOR_VERSION,
    ROOT_NAME,
    SubjectStyle,
    draw_subject,
    generate_cnmc,
    render_cell,
)
from cytobook.io import read_image
from cytobook.profiles import PROFILE_ENV, PROFILES, CnmcSpec, get_profile

SMOKE = PROFILES["smoke"].cnmc
DEMO = PROFILES["demo"].cnmc

TRAIN_NAME = re.compile(r"^UID_(?P<subject>[Hh]?\d+)_(?P<image>\d+)_(?P<cell>\d+)_(?P<label>all|hem)\.bmp$")
NUMBERED = re.compile(r"^[1-9]\d*\.bmp$")


def _subject_key(subject: str) -> str:
    """Subject id with the healthy prefix normalised (the release mixes ``H`` and ``h``)."""
    return subject.upper()


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def smoke_root(tmp_path_factory) -> Path:
    return generate_cnmc(tmp_path_factory.mktemp("smoke"), SMOKE, seed=0)


@pytest.fixture(scope="module")
def demo_features(tmp_path_factory) -> dict[str, np.ndarray]:
    """Simple per-image statistics of the demo training set."""
    root = generate_cnmc(tmp_path_factory.mktemp("demo"), DEMO, seed=0)
    rows = []
    for path in sorted(root.glob("training_data/fold_*/*/*.bmp")):
        match = TRAIN_NAME.match(path.name)
        image = read_image(path).astype(np.float32)
        mask = (image.max(axis=2) > 0).astype(np.uint8)
        grey = image.mean(axis=2)
        # Texture inside the cell, away from its outline: energy of the
        # high-pass residual relative to the local brightness.
        core = cv2.erode(mask, np.ones((5, 5), np.uint8), iterations=max(1, image.shape[0] // 80)) > 0
        residual = grey - cv2.GaussianBlur(grey, (0, 0), 0.01 * image.shape[0])
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        contour = max(contours, key=cv2.contourArea)
        rows.append(
            (
                match["label"] == "all",
                _subject_key(match["subject"]),
                grey[mask > 0].mean(),
                mask.sum(),
                residual[core].std() / grey[core].mean(),
                cv2.contourArea(contour) / cv2.contourArea(cv2.convexHull(contour)),
                *image[mask > 0].mean(axis=0),
            )
        )
    columns = list(zip(*rows))
    return {
        "is_all": np.array(columns[0]),
        "subject": np.array(columns[1]),
        "brightness": np.array(columns[2]),
        "area": np.array(columns[3]),
        "texture": np.array(columns[4]),
        "solidity": np.array(columns[5]),
        "colour": np.stack(columns[6:9], axis=1),
    }


# --------------------------------------------------------------------------- #
# Determinism and atomicity
# --------------------------------------------------------------------------- #


def test_same_seed_gives_byte_identical_files_and_another_seed_differs(tmp_path, smoke_root):
    again = generate_cnmc(tmp_path / "a", SMOKE, seed=0)
    first, second = _files(smoke_root), _files(again)
    assert first.keys() == second.keys()
    assert all(first[name] == second[name] for name in first)

    other = _files(generate_cnmc(tmp_path / "b", SMOKE, seed=1))
    shared = first.keys() & other.keys()
    assert first.keys() != other.keys() or any(first[name] != other[name] for name in shared)
    pixels = [name for name in shared if name.endswith(".bmp")]
    assert sum(first[name] != other[name] for name in pixels) == len(pixels)


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = cnmc_synthetic.render_cell

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(cnmc_synthetic, "render_cell", failing)
    with pytest.raises(KeyboardInterrupt):
        generate_cnmc(tmp_path, SMOKE, seed=0)
    assert list(tmp_path.iterdir()) == []


def test_existing_tree_is_never_overwritten(tmp_path):
    (tmp_path / ROOT_NAME).mkdir()
    with pytest.raises(FileExistsError):
        generate_cnmc(tmp_path, SMOKE)


def test_invalid_spec_is_refused(tmp_path):
    with pytest.raises(ValueError, match="cells_per_subject"):
        generate_cnmc(tmp_path, CnmcSpec(image_size=64, cells_per_subject=(5, 2)))
    with pytest.raises(ValueError, match="seed"):
        generate_cnmc(tmp_path, SMOKE, seed=-1)


# --------------------------------------------------------------------------- #
# Layout
# --------------------------------------------------------------------------- #


def test_training_layout_follows_the_release(smoke_root):
    assert sorted(p.name for p in (smoke_root / "training_data").iterdir()) == ["fold_0", "fold_1", "fold_2"]
    subjects_of_fold: dict[int, set[str]] = {}
    cells_of_subject: dict[str, int] = {}
    spellings: dict[str, set[str]] = {}
    for fold in range(3):
        fold_dir = smoke_root / "training_data" / f"fold_{fold}"
        assert sorted(p.name for p in fold_dir.iterdir()) == ["all", "hem"]
        subjects_of_fold[fold] = set()
        for label, expected in zip(("all", "hem"), SMOKE.subjects_per_fold):
            names = [p.name for p in (fold_dir / label).iterdir()]
            found = set()
            for name in names:
                match = TRAIN_NAME.match(name)
                assert match, name
                assert match["label"] == label, f"{name} in folder {label}"
                subject = match["subject"]
                # ALL subjects are plain integers, healthy ones carry the H prefix.
                assert subject.isdigit() == (label == "all"), name
                assert int(match["image"]) >= 1 and int(match["cell"]) >= 1
                key = _subject_key(subject)
                found.add(key)
                cells_of_subject[key] = cells_of_subject.get(key, 0) + 1
                spellings.setdefault(key, set()).add(subject[0] if not subject.isdigit() else "")
            assert len(found) == expected
            subjects_of_fold[fold] |= found
    for a in range(3):
        for b in range(a + 1, 3):
            assert not subjects_of_fold[a] & subjects_of_fold[b], f"folds {a} and {b} share subjects"
    low, high = SMOKE.cells_per_subject
    assert all(low <= n <= high for n in cells_of_subject.values()), cells_of_subject
    # Exactly one healthy subject mixes lowercase and uppercase prefixes.
    mixed = [key for key, seen in spellings.items() if seen == {"H", "h"}]
    assert len(mixed) == 1
    assert all(seen in ({""}, {"H"}) for key, seen in spellings.items() if key not in mixed)


def test_preliminary_test_set_and_its_labels(smoke_root):
    folder = smoke_root / "validation_data" / "C-NMC_test_prelim_phase_data"
    labels = smoke_root / "validation_data" / "C-NMC_test_prelim_phase_data_labels.csv"
    assert sorted(p.name for p in (smoke_root / "validation_data").iterdir()) == sorted([folder.name, labels.name])
    with labels.open(newline="") as handle:
        reader = csv.reader(handle)
        assert next(reader) == ["Patient_ID", "new_names", "labels"]
        rows = list(reader)
    files = sorted(p.name for p in folder.iterdir())
    assert all(NUMBERED.match(name) for name in files)
    assert sorted(int(name[:-4]) for name in files) == list(range(1, len(files) + 1))
    assert sorted(row[1] for row in rows) == files  # every row names one existing file, and all are named

    training = {
        _subject_key(TRAIN_NAME.match(p.name)["subject"]) for p in smoke_root.glob("training_data/*/*/*.bmp")
    }
    counts = {0: 0, 1: 0}
    test_subjects: dict[int, set[str]] = {0: set(), 1: set()}
    for patient_id, _, label in rows:
        match = TRAIN_NAME.match(patient_id)
        assert match, patient_id
        assert label in ("0", "1")
        assert int(label) == (match["label"] == "all")
        counts[int(label)] += 1
        test_subjects[int(label)].add(_subject_key(match["subject"]))
    assert not (test_subjects[0] | test_subjects[1]) & training
    assert (len(test_subjects[1]), len(test_subjects[0])) == SMOKE.prelim_subjects
    low, high = SMOKE.cells_per_subject
    for label, n_subjects in ((1, SMOKE.prelim_subjects[0]), (0, SMOKE.prelim_subjects[1])):
        assert n_subjects * low <= counts[label] <= n_subjects * high
    # The numbering is shuffled with respect to the subjects.
    assert [row[0] for row in rows] != sorted(row[0] for row in rows)


def test_final_test_set_is_numbered_and_unlabelled(smoke_root):
    assert sorted(p.name for p in (smoke_root / "testing_data").iterdir()) == ["C-NMC_test_final_phase_data"]
    files = [p.name for p in (smoke_root / "testing_data" / "C-NMC_test_final_phase_data").iterdir()]
    assert sorted(int(name[:-4]) for name in files) == list(range(1, len(files) + 1))
    low, high = SMOKE.cells_per_subject
    assert sum(SMOKE.final_subjects) * low <= len(files) <= sum(SMOKE.final_subjects) * high
    csvs = list(smoke_root.rglob("*.csv"))  # the only CSV is the preliminary labels
    assert [p.name for p in csvs] == ["C-NMC_test_prelim_phase_data_labels.csv"]
    assert not [p for p in smoke_root.rglob(".*")]  # no temporary files left behind


def test_images_are_rgb_cells_on_black(smoke_root):
    size = SMOKE.image_size
    for path in sorted(smoke_root.rglob("*.bmp")):
        image = read_image(path)
        assert image.shape == (size, size, 3) and image.dtype == np.uint8, path
        border = np.concatenate([image[:2].ravel(), image[-2:].ravel(), image[:, :2].ravel(), image[:, -2:].ravel()])
        assert not border.any(), f"{path}: cell touches the border"
        fraction = (image.max(axis=2) > 0).mean()
        assert 0.08 <= fraction <= 0.35, (path, fraction)


# --------------------------------------------------------------------------- #
# Drawing
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("size", [48, 160, 450])
def test_render_cell_shape_mask_and_colour(size):
    rng = np.random.default_rng(3)
    style = draw_subject(rng, True)
    assert isinstance(style, SubjectStyle)
    image = render_cell(rng, True, style, size)
    assert image.shape == (size, size, 3) and image.dtype == np.uint8
    mask = image.max(axis=2) > 0
    assert (image[mask] >= 1).all()  # the mask is exactly the non-black pixels
    r, g, b = image[mask].mean(axis=0)
    assert b > r > g  # purple: blue and red well above green, as in real cells
    # The same generator state draws the same cell.
    rng_again = np.random.default_rng(3)
    assert np.array_equal(image, render_cell(rng_again, True, draw_subject(rng_again, True), size))


def test_draw_subject_quantiles_are_used_and_checked():
    low = draw_subject(np.random.default_rng(0), False, {"brightness": 0.05, "scale": 0.05})
    high = draw_subject(np.random.default_rng(0), False, {"brightness": 0.95, "scale": 0.95})
    assert low.brightness < high.brightness and low.scale < high.scale
    assert low.blastness == high.blastness  # the quantiles do not shift the random stream
    with pytest.raises(ValueError, match="unknown"):
        draw_subject(np.random.default_rng(0), False, {"colour": 0.5})


# --------------------------------------------------------------------------- #
# The signal: no give-away, learnable morphology, recognisable subjects
# --------------------------------------------------------------------------- #


@pytest.mark.slow
def test_brightness_and_area_do_not_give_the_class_away(demo_features):
    y = demo_features["is_all"]
    brightness_auc = roc_auc_score(y, demo_features["brightness"])
    area_auc = roc_auc_score(y, demo_features["area"])
    print(f"AUC brightness {brightness_auc:.3f}, area {area_auc:.3f}")
    assert 0.35 <= brightness_auc <= 0.65
    assert 0.35 <= area_auc <= 0.65


def test_stain_is_stratified_by_class_like_size_and_brightness():
    # Drawn at random, the stain of the few subjects per class of a small data set differed by class by
    # chance (a colour-only logistic regression reached AUC 0.62 on the 30 subjects the demo once had),
    # and a CNN trained from scratch learnt the stain instead of the cells. Stratified, every fold's
    # subjects of either class have the same mean stain: the strata midpoints, symmetric about the middle.
    spec = CnmcSpec(image_size=64, subjects_per_fold=(6, 4), cells_per_subject=(1, 1))
    subjects = cnmc_synthetic._plan_subjects(spec, 0)
    quantiles = cnmc_synthetic._stratified_quantiles(subjects, 0)
    styles = {s: draw_subject(cnmc_synthetic._subject_rng(0, s), s.is_all, quantiles[s]) for s in subjects}
    for fold in range(3):
        for is_all in (True, False):
            group = [styles[s] for s in subjects if s.split == "train" and s.fold == fold and s.is_all == is_all]
            assert len(group) == (6 if is_all else 4)
            np.testing.assert_allclose(np.log([style.tint for style in group]).mean(axis=0), 0.0, atol=1e-9)
            assert np.mean([style.saturation for style in group]) == pytest.approx(1.0)
            assert len({style.tint for style in group}) == len(group)  # yet each subject has its own stain


@pytest.mark.slow
def test_texture_and_shape_carry_the_class(demo_features):
    y = demo_features["is_all"]
    texture_auc = roc_auc_score(y, demo_features["texture"])  # fine chromatin, nucleoli: ALL
    irregularity_auc = roc_auc_score(y, -demo_features["solidity"])  # irregular outlines: ALL
    print(f"AUC texture {texture_auc:.3f}, 1 - solidity {irregularity_auc:.3f}")
    assert texture_auc >= 0.7
    assert irregularity_auc >= 0.65
    # ... but neither feature alone solves the task.
    assert texture_auc < 0.97 and irregularity_auc < 0.97


@pytest.mark.slow
def test_subjects_are_recognisable_from_mean_colour(demo_features):
    x, subjects = demo_features["colour"], demo_features["subject"]
    folds = StratifiedKFold(n_splits=2, shuffle=True, random_state=0)
    train, test = next(folds.split(x, subjects))
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    model = LogisticRegression(max_iter=5000).fit((x[train] - mean) / std, subjects[train])
    accuracy = (model.predict((x[test] - mean) / std) == subjects[test]).mean()
    chance = 1 / len(set(subjects))
    print(f"subject accuracy {accuracy:.3f}, chance {chance:.3f}")
    assert accuracy >= 5 * chance


@pytest.mark.slow
def test_sharing_subjects_between_train_and_test_inflates_scores(demo_features):
    f = demo_features
    x = np.column_stack([f["colour"], f["texture"], f["solidity"], f["area"], f["brightness"]])
    y, groups = f["is_all"], f["subject"]
    model = RandomForestClassifier(n_estimators=150, random_state=0, n_jobs=1)
    shared = cross_val_score(model, x, y, cv=StratifiedKFold(5, shuffle=True, random_state=0), scoring="roc_auc")
    by_subject = cross_val_score(model, x, y, cv=GroupKFold(5), groups=groups, scoring="roc_auc")
    print(f"AUC image-level split {shared.mean():.3f}, subject-level split {by_subject.mean():.3f}")
    assert shared.mean() - by_subject.mean() >= 0.05
    assert by_subject.mean() >= 0.6  # yet there is something to learn across subjects


# --------------------------------------------------------------------------- #
# Cache
# --------------------------------------------------------------------------- #


def test_generated_cnmc_generates_once_then_reuses(tmp_path, monkeypatch):
    monkeypatch.setenv("CYTOBOOK_CACHE", str(tmp_path))
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    root = generated("cnmc", "smoke", seed=2)
    assert root == tmp_path / "cnmc" / f"smoke-seed2-v{GENERATOR_VERSION}" / ROOT_NAME
    assert (root / "training_data" / "fold_0" / "all").is_dir()

    def must_not_run(*args, **kwargs):
        raise AssertionError("cached data was generated again")

    monkeypatch.setitem(REGISTRY, "cnmc", replace(REGISTRY["cnmc"], generator=must_not_run))
    assert generated("cnmc", get_profile("smoke"), seed=2) == root


def test_generated_cnmc_refuses_a_different_spec_under_the_same_name(tmp_path, monkeypatch):
    monkeypatch.setenv("CYTOBOOK_CACHE", str(tmp_path))
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    generated("cnmc", "smoke")
    bigger = get_profile("smoke", cnmc=CnmcSpec(image_size=64, subjects_per_fold=(1, 1), cells_per_subject=(2, 2)))
    with pytest.raises(ValueError, match="different spec"):
        generated("cnmc", bigger)
