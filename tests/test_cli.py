"""`cytobook data generate` and `cytobook data check` from the command line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from cytobook import cli


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    dest = tmp_path_factory.mktemp("generated")
    assert cli.main(["data", "generate", "cnmc", str(dest), "--profile", "smoke", "--seed", "1"]) == 0
    return dest / "C-NMC_Leukemia"


def check(path, *extra):
    return subprocess.run([sys.executable, "-m", "cytobook.cli", "data", "check", "cnmc", str(path), *extra],
                          capture_output=True, text=True, timeout=300)


def test_check_passes_on_generated_data_and_reports_counts(generated):
    done = check(generated, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True and report["problems"] == []
    assert report["counts"], "counts by class, subject and fold"


def test_check_passes_on_the_real_samples(real_cnmc):
    done = check(real_cnmc)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "H6" in done.stdout and "fold" in done.stdout


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda root: shutil.rmtree(root / "training_data" / "fold_1" / "hem"), "hem"),
        (lambda root: next((root / "training_data" / "fold_0" / "all").glob("*.bmp")).rename(
            root / "training_data" / "fold_0" / "all" / "cell_7.bmp"), "cell_7.bmp"),
        (lambda root: _truncate(next((root / "training_data" / "fold_2" / "all").glob("*.bmp"))), "fold_2"),
    ],
    ids=["missing class folder", "unparsable name", "truncated image"],
)
def test_check_fails_naming_the_path(generated, tmp_path, damage, expected):
    copy = tmp_path / "C-NMC_Leukemia"
    shutil.copytree(generated, copy)
    damage(copy)
    done = check(copy)
    assert done.returncode == 1
    problems = done.stdout[done.stdout.lower().rfind("problem"):]
    assert str(copy) in problems and expected in problems


def _truncate(path):
    path.write_bytes(path.read_bytes()[:200])


def test_check_of_a_missing_folder_exits_2(tmp_path):
    done = check(tmp_path / "nowhere")
    assert done.returncode == 2 and "does not exist" in done.stderr
