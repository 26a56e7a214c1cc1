"""Each chapter's last notebook, run on its own with plain papermill: it finds or runs what it needs.

A user opening one notebook, or a batch script running one with
``papermill``, gives no ``run_dir``: the notebook reads the earlier
notebooks' results from the latest run that holds them, or runs them first
into its own new run (:func:`cytobook.runner.prepare_earlier`). Here on a
clean data cache and an empty runs folder, in the ``smoke`` profile.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_alone(notebook: str, tmp_path: Path, env: dict[str, str]) -> tuple[Path, dict]:
    """Execute one notebook with plain papermill; return its run directory and its metrics."""
    out = tmp_path / "executed" / f"{notebook}.ipynb"
    out.parent.mkdir(exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "papermill", str(ROOT / "notebooks" / f"{notebook}.ipynb"), str(out),
                           "-p", "profile", "smoke", "--cwd", str(ROOT / "notebooks")],
                          env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-4000:]
    (metrics,) = (tmp_path / "runs").glob(f"*/metrics/{notebook}.json")
    return metrics.parent.parent, json.loads(metrics.read_text())


def finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


@pytest.mark.slow
def test_last_notebook_of_each_chapter_runs_alone(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("CYTOBOOK_RUN_DIR", "CYTOBOOK_PROFILE")}
    env.update(CYTOBOOK_RUNS=str(tmp_path / "runs"), CYTOBOOK_CACHE=str(tmp_path / "cache"))

    _, tour = run_alone("01_data_cnmc_tour", tmp_path, env)
    assert tour["images"] > tour["training_images"] > 0 and tour["subjects"] > 0

    run, lymphocytosis = run_alone("33_lymphocytosis_results", tmp_path, env)
    assert 0.0 <= lymphocytosis["balanced_accuracy"] <= 1.0
    ran_first = json.loads((run / "manifest.json").read_text())["notebooks"]
    assert [record["name"] for record in ran_first] == ["30_lymphocytosis_data", "31_lymphocytosis_experts",
                                                         "32_lymphocytosis_backbones"]
    assert all(record["status"] == "ok" for record in ran_first)

    # Report 3's real-cell notebook needs notebooks 20-22 (tables, pretrained and white-cell models): it runs them first.
    wbc_run, real_cells = run_alone("23_wbc_unet_real_cells", tmp_path, env)
    assert [r["name"] for r in json.loads((wbc_run / "manifest.json").read_text())["notebooks"]] == [
        "20_wbc_unet_data", "21_wbc_unet_pretraining", "22_wbc_unet_fractions"]
    pretraining = json.loads((wbc_run / "metrics" / "21_wbc_unet_pretraining.json").read_text())
    assert set(pretraining["accuracy"]) == {"CE only", "CE + pRCC", "CE + Dice", "CE + pRCC + Dice"}
    fractions = json.loads((wbc_run / "metrics" / "22_wbc_unet_fractions.json").read_text())
    assert set(fractions["accuracy"]) == {f"WBC_{n}, {p} pretrain, {m} mask" for n in (1, 10, 50, 100)
                                          for p in ("w/o", "with") for m in ("w/o", "with")}
    assert all(0.0 <= value <= 1.0 for value in [*pretraining["accuracy"].values(), *fractions["accuracy"].values()])
    if os.environ.get("CYTOBOOK_REAL_DATA"):
        assert set(real_cells["accuracy"]) == {"PBC held out", "Zheng Dataset 1", "Zheng Dataset 2"}
        assert all(0.0 <= value <= 1.0 for value in [*real_cells["accuracy"].values(), *real_cells["dice"].values()])
    else:
        assert "skipped" in real_cells

    # Report 5's clustering notebook needs the cells of notebook 40 and the base of notebook 41.
    hep2_run, clusters = run_alone("43_hep2_clustering", tmp_path, env)
    assert [r["name"] for r in json.loads((hep2_run / "manifest.json").read_text())["notebooks"]] == [
        "40_hep2_data", "41_hep2_multiclass", "42_hep2_multilabel"]
    assert clusters["k"] >= 2 and abs(sum(clusters["cluster_shares"]) - 1) < 1e-3
    multiclass = json.loads((hep2_run / "metrics" / "41_hep2_multiclass.json").read_text())
    # the real ICPR 2014 sample has no test split: its validation split is the headline; generated I3A has one
    assert set(multiclass["mean_class_accuracy"]) == ({"val"} if os.environ.get("CYTOBOOK_REAL_DATA") else {"test"})
    assert all(0.0 <= value <= 1.0 for value in multiclass["mean_class_accuracy"].values())
    multilabel = json.loads((hep2_run / "metrics" / "42_hep2_multilabel.json").read_text())
    assert multilabel["class-weighted"]["labels_scored"] > 0

    cnmc_run, results = run_alone("09_cnmc_results", tmp_path, env)
    assert results["final_table"] and all(finite(row["weighted F1"]) for row in results["final_table"])
    assert all(finite(row["weighted F1, subject-level split"]) for row in results["split_comparison"])

    # Notebook 12 needs report 1's notebooks 02-07 and its own 10-11: no run holds all, so it runs them.
    bagging_run, bagging = run_alone("12_bagging_results", tmp_path, env)
    assert bagging_run != cnmc_run
    assert set(bagging["test"]) == {"report", "image", "subject"}
    assert all(0.0 <= scores["weighted_f1"] <= 1.0 for split in bagging["test"].values() for scores in split.values())

    # Run alone again, it reads that run instead of running anything, and leaves it as it was.
    before = {p: p.stat().st_mtime_ns for p in bagging_run.rglob("*") if p.is_file()}
    executed = tmp_path / "executed" / "12_again.ipynb"
    done = subprocess.run([sys.executable, "-m", "papermill", str(ROOT / "notebooks" / "12_bagging_results.ipynb"),
                           str(executed), "-p", "profile", "smoke", "--cwd", str(ROOT / "notebooks")],
                          env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"from {bagging_run}" in executed.read_text()
    assert before == {p: p.stat().st_mtime_ns for p in bagging_run.rglob("*") if p.is_file()}
