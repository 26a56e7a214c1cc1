"""`cytobook run`: ordered execution into a new run directory, manifest, failures named."""

from __future__ import annotations

import json
import os
import platform
import re
from pathlib import Path

import nbformat
import papermill
import pytest

from cytobook import cli, runner
from cytobook.runner import SuiteFailed, SuiteInterrupted, discover, resume_suite, run_suite, select
from cytobook.suite import parse_notebook_name


def write_notebook(path: Path, *bodies: str) -> None:
    """A minimal suite notebook: title, tagged parameters cell, then one code cell per body."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    parameters = nbformat.v4.new_code_cell('profile = "demo"\ndata_dir = None\nrun_dir = None\nseed = 0')
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}"), parameters,
                      *(nbformat.v4.new_code_cell(body) for body in bodies)]
    nbformat.write(notebook, path)


WRITES_MARKER = (
    "from pathlib import Path\n"
    "out = Path(run_dir) / 'artifacts' / '{name}'\n"
    "out.mkdir(parents=True)\n"
    "(out / 'seen.json').write_text(__import__('json').dumps([profile, data_dir, seed]))\n"
    "import matplotlib.pyplot as plt\n"
    "plt.plot([1, 2])\n"
    "plt.show()"
)


@pytest.fixture
def suite(tmp_path):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    write_notebook(notebooks / "01_data_first.ipynb", WRITES_MARKER.format(name="01_data_first"))
    write_notebook(
        notebooks / "02_cnmc_second.ipynb",
        "from pathlib import Path\nassert (Path(run_dir) / 'artifacts' / '01_data_first' / 'seen.json').exists()",
    )
    return notebooks


def test_notebook_names_give_number_and_chapter():
    assert parse_notebook_name(Path("07_wbc_unet_pretraining.ipynb")).chapter == "wbc_unet"
    assert parse_notebook_name(Path("01_data_cnmc_tour.ipynb")).number == 1
    for bad in ("data_tour.ipynb", "01_unknown_topic.ipynb", "01_Data_x.ipynb"):
        with pytest.raises(ValueError, match="NN_<chapter>_<topic>"):
            parse_notebook_name(Path(bad))


def test_select_by_chapter_pattern_and_typo(suite):
    notebooks = discover(suite)
    assert [nb.name for nb in select(notebooks, ["cnmc"])] == ["02_cnmc_second"]
    assert [nb.name for nb in select(notebooks, ["01_*"])] == ["01_data_first"]
    assert len(select(notebooks, None)) == 2
    with pytest.raises(ValueError, match="matches no notebook"):
        select(notebooks, ["cnmcc"])


@pytest.mark.slow
def test_run_executes_in_order_into_new_directories(suite, tmp_path):
    runs = tmp_path / "runs"
    lines: list[str] = []
    first = run_suite("smoke", data_dirs={"cnmc": tmp_path}, seed=3, notebooks_dir=suite, root=runs, log=lines.append)
    manifest = json.loads((first / "manifest.json").read_text())
    assert [nb["status"] for nb in manifest["notebooks"]] == ["ok", "ok"]
    assert all(nb["duration_s"] >= 0 for nb in manifest["notebooks"])
    assert manifest["profile"] == "smoke" and manifest["keras_backend"] and manifest["device"]
    assert "numpy" in manifest["packages"] and manifest["commit"]
    seen = json.loads((first / "artifacts" / "01_data_first" / "seen.json").read_text())
    assert seen == ["smoke", str(tmp_path.resolve()), 3]
    assert (first / "notebooks" / "02_cnmc_second.ipynb").exists()
    assert (first / "artifacts" / "01_data_first" / "figures" / "figure-01.png").read_bytes().startswith(b"\x89PNG")
    assert manifest["notebooks"][0]["figures"] == 1
    assert any("01_data_first done in" in line for line in lines)

    before = {p: p.read_bytes() for p in first.rglob("*") if p.is_file()}
    second = run_suite("smoke", notebooks_dir=suite, root=runs, log=lines.append)
    assert second != first
    assert before == {p: p.read_bytes() for p in first.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_failing_notebook_stops_the_run_and_is_named(suite, tmp_path):
    write_notebook(suite / "01_data_first.ipynb", "x = 1\nraise RuntimeError('broken on purpose')")
    with pytest.raises(SuiteFailed, match=r"01_data_first failed in cell \[3\] \(cell 4 of the executed notebook, starting `x = 1`\): RuntimeError: broken on purpose") as caught:
        run_suite("smoke", notebooks_dir=suite, root=tmp_path / "runs", log=lambda line: None)
    manifest = json.loads((caught.value.run_dir / "manifest.json").read_text())
    assert [nb["status"] for nb in manifest["notebooks"]] == ["failed", "not run"]


def test_cli_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--data-dir", "cnmc"])
    assert "DATASET=PATH" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["run", "--profile", "huge"])


# A notebook that refuses to overwrite its metrics, as the suite's notebooks do, then records its parameters.
SAVES_METRICS = (
    "import json\n"
    "from pathlib import Path\n"
    "metrics = Path(run_dir) / 'metrics' / '{name}.json'\n"
    "assert not metrics.exists(), 'refusing to overwrite ' + str(metrics)\n"
    "metrics.parent.mkdir(exist_ok=True)\n"
    "metrics.write_text(json.dumps({{'profile': profile, 'data_dir': data_dir, 'seed': seed}}))"
)


def stop_at(call: int, real=papermill.execute_notebook):
    """A stand-in for papermill.execute_notebook: Ctrl-C at its ``call``-th call, after leaving partial files."""
    calls: list[str] = []

    def execute(input_path, output_path, **kwargs):
        calls.append(Path(input_path).stem)
        if len(calls) == call:
            name, run_dir = Path(input_path).stem, Path(kwargs["parameters"]["run_dir"])
            Path(output_path).write_text("partial notebook")
            (run_dir / "metrics").mkdir(exist_ok=True)
            (run_dir / "metrics" / f"{name}.json").write_text("partial metrics")
            (run_dir / "artifacts" / name).mkdir(parents=True)
            (run_dir / "artifacts" / name / "model.keras").write_text("partial model")
            raise KeyboardInterrupt
        return real(input_path, output_path, **kwargs)

    return execute, calls


def record_calls(real=papermill.execute_notebook):
    """A stand-in for papermill.execute_notebook that records (notebook, parameters) and runs it."""
    calls: list[tuple[str, dict]] = []

    def execute(input_path, output_path, **kwargs):
        calls.append((Path(input_path).stem, dict(kwargs["parameters"])))
        return real(input_path, output_path, **kwargs)

    return execute, calls


def statuses(run_dir: Path) -> list[str]:
    return [nb["status"] for nb in json.loads((run_dir / "manifest.json").read_text())["notebooks"]]


@pytest.mark.slow
def test_interrupted_run_is_recorded_and_resume_reruns_only_what_is_not_ok(suite, tmp_path, monkeypatch):
    write_notebook(suite / "02_cnmc_second.ipynb", SAVES_METRICS.format(name="02_cnmc_second"))
    write_notebook(suite / "03_hep2_third.ipynb", SAVES_METRICS.format(name="03_hep2_third"))
    execute, calls = stop_at(2)
    monkeypatch.setattr(papermill, "execute_notebook", execute)
    with pytest.raises(SuiteInterrupted) as caught:
        run_suite("smoke", data_dirs={"cnmc": tmp_path}, seed=3, notebooks_dir=suite, root=tmp_path / "runs",
                  log=lambda line: None)
    run_dir = caught.value.run_dir
    assert caught.value.notebook == "02_cnmc_second" and calls == ["01_data_first", "02_cnmc_second"]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert statuses(run_dir) == ["ok", "interrupted", "not run"]
    assert manifest["notebooks"][1]["duration_s"] >= 0 and manifest["notebooks"][2]["duration_s"] is None
    assert "executing" not in manifest and "resumed" not in manifest

    first = [run_dir / "notebooks" / "01_data_first.ipynb", *sorted((run_dir / "artifacts" / "01_data_first").rglob("*"))]
    before = {path: path.read_bytes() for path in first if path.is_file()}
    assert len(before) == 3  # the executed notebook, seen.json, figure-01.png
    execute, calls = record_calls()
    monkeypatch.setattr(papermill, "execute_notebook", execute)
    lines: list[str] = []
    assert resume_suite(run_dir, notebooks_dir=suite, log=lines.append) == run_dir

    # Only the notebooks that were not ok ran, with the parameters the run started with.
    run = str(run_dir)
    assert calls == [("02_cnmc_second", {"profile": "smoke", "data_dir": str(tmp_path.resolve()), "run_dir": run, "seed": 3}),
                     ("03_hep2_third", {"profile": "smoke", "data_dir": None, "run_dir": run, "seed": 3})]
    seen = json.loads((run_dir / "metrics" / "03_hep2_third.json").read_text())
    assert seen == {"profile": "smoke", "data_dir": None, "seed": 3}
    assert {path: path.read_bytes() for path in first if path.is_file()} == before
    # The interrupted attempt's files were set aside, not overwritten nor lost.
    aside = run_dir / "interrupted" / "02_cnmc_second-1"
    assert (aside / "notebooks" / "02_cnmc_second.ipynb").read_text() == "partial notebook"
    assert (aside / "metrics" / "02_cnmc_second.json").read_text() == "partial metrics"
    assert (aside / "artifacts" / "02_cnmc_second" / "model.keras").read_text() == "partial model"
    assert not (run_dir / "artifacts" / "02_cnmc_second" / "model.keras").exists()

    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert statuses(run_dir) == ["ok", "ok", "ok"]
    assert len(manifest["resumed"]) == 1 and manifest["resumed"][0] >= manifest["started"]
    second = manifest["notebooks"][1]
    assert second["earlier_attempts"] == [{"status": "interrupted", "duration_s": second["earlier_attempts"][0]["duration_s"],
                                           "set_aside": "interrupted/02_cnmc_second-1"}]
    assert second["duration_s"] >= 0 and "earlier_attempts" not in manifest["notebooks"][2]
    assert lines[0].startswith(f"resume {run_dir.name}: 2 of 3 notebook(s) to run, profile smoke, seed 3")
    assert any("[1/2] 02_cnmc_second done in" in line for line in lines)


def test_every_resume_sets_the_leftovers_aside_in_a_new_folder(suite, tmp_path, monkeypatch):
    def finished(input_path, output_path, **kwargs):
        nbformat.write(nbformat.v4.new_notebook(), output_path)

    monkeypatch.setattr(papermill, "execute_notebook", stop_at(1, real=finished)[0])
    with pytest.raises(SuiteInterrupted) as caught:
        run_suite("smoke", seed=5, notebooks_dir=suite, root=tmp_path / "runs", log=lambda line: None)
    run_dir = caught.value.run_dir
    monkeypatch.setattr(papermill, "execute_notebook", stop_at(1, real=finished)[0])
    with pytest.raises(SuiteInterrupted):
        resume_suite(run_dir, notebooks_dir=suite, log=lambda line: None)
    assert statuses(run_dir) == ["interrupted", "not run"]
    monkeypatch.setattr(papermill, "execute_notebook", finished)
    resume_suite(run_dir, notebooks_dir=suite, log=lambda line: None)

    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert statuses(run_dir) == ["ok", "ok"] and len(manifest["resumed"]) == 2
    assert [attempt["set_aside"] for attempt in manifest["notebooks"][0]["earlier_attempts"]] == [
        "interrupted/01_data_first-1", "interrupted/01_data_first-2"]
    assert sorted(p.name for p in (run_dir / "interrupted").iterdir()) == ["01_data_first-1", "01_data_first-2"]
    lines: list[str] = []
    assert resume_suite(run_dir, notebooks_dir=suite, log=lines.append) == run_dir
    assert lines == [f"run {run_dir.name}: every notebook is ok, nothing to resume"]


def test_resume_refuses_a_run_another_process_is_executing(suite, tmp_path, monkeypatch):
    monkeypatch.setattr(papermill, "execute_notebook", stop_at(1)[0])
    with pytest.raises(SuiteInterrupted) as caught:
        run_suite("smoke", notebooks_dir=suite, root=tmp_path / "runs", log=lambda line: None)
    manifest_path = caught.value.run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["executing"] = {"host": platform.node(), "pid": os.getppid()}  # a live process that is not this one
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=rf"still being executed by process {os.getppid()}"):
        resume_suite(caught.value.run_dir, notebooks_dir=suite, log=lambda line: None)
    assert (caught.value.run_dir / "notebooks" / "01_data_first.ipynb").read_text() == "partial notebook"


@pytest.mark.slow
def test_slow_cells_are_logged_with_their_time(tmp_path, monkeypatch, capfd):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    write_notebook(notebooks / "01_data_slow.ipynb", "import time\ntime.sleep(2.5)", "quick = 1")
    monkeypatch.setattr(runner, "STILL_RUNNING_AFTER_S", 0.5)
    lines: list[str] = []
    run_suite("smoke", notebooks_dir=notebooks, root=tmp_path / "runs", log=lines.append, progress_after_s=1.0)
    cells = [line for line in lines if line.startswith("    cell")]
    # Cells are numbered in the executed notebook: title, parameters, injected parameters, then the body.
    assert re.fullmatch(r"    cell 4/5 `import time` \d\.\ds \(\d+\.\ds so far\)", cells[-1]), cells
    assert re.fullmatch(r"    cell 4/5 `import time` still running after 0\.\ds", cells[0]), cells
    assert all("still running" in line for line in cells[:-1]) and 2 <= len(cells) - 1 <= 3
    assert not any("quick" in line for line in lines)
    assert "encryption" not in capfd.readouterr().err  # the kernel's warnings go to its log


@pytest.mark.slow
def test_kernel_output_goes_to_the_run_and_is_named_when_the_kernel_dies(tmp_path, capfd):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    # What a native library writes straight to the process's stderr, then a crash that kills the kernel.
    write_notebook(notebooks / "01_data_crash.ipynb", "import os\nos.write(2, b'native library says hello\\n')",
                   "os._exit(3)")
    with pytest.raises(SuiteFailed) as caught:
        run_suite("smoke", notebooks_dir=notebooks, root=tmp_path / "runs", log=lambda line: None)
    kernel_log = caught.value.run_dir / "kernels" / "01_data_crash.log"
    assert "native library says hello" in kernel_log.read_text()
    assert "native library says hello" not in capfd.readouterr().err
    assert str(caught.value).startswith("01_data_crash failed: DeadKernelError")
    assert f"the kernel's own output: {kernel_log}" in str(caught.value)


@pytest.mark.slow
def test_notebooks_run_in_their_folder_and_leave_the_working_directory_alone(tmp_path, monkeypatch):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    # Two chapters, so they run side by side; the first to start ends first, which is when a process-wide
    # change of directory per notebook would leave the second's restored on exit.
    for name, seconds in (("10_bagging_data", 0.5), ("20_wbc_unet_data", 4)):
        write_notebook(notebooks / f"{name}.ipynb",
                       f"import os, time\nfrom pathlib import Path\ntime.sleep({seconds})\n"
                       f"(Path(run_dir) / '{name}.cwd').write_text(os.getcwd())")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run_dir = run_suite("smoke", notebooks_dir=notebooks, root=tmp_path / "runs", log=lambda line: None, jobs=2)
    assert [(run_dir / f"{name}.cwd").read_text() for name in ("10_bagging_data", "20_wbc_unet_data")] == \
        [str(notebooks)] * 2
    assert Path.cwd() == elsewhere


@pytest.mark.slow
def test_failed_notebook_resumes_after_the_fix(suite, tmp_path):
    write_notebook(suite / "01_data_first.ipynb", "raise RuntimeError('broken on purpose')")
    with pytest.raises(SuiteFailed) as caught:
        run_suite("smoke", notebooks_dir=suite, root=tmp_path / "runs", log=lambda line: None)
    run_dir = caught.value.run_dir
    write_notebook(suite / "01_data_first.ipynb", WRITES_MARKER.format(name="01_data_first"))
    resume_suite(run_dir, notebooks_dir=suite, log=lambda line: None)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert statuses(run_dir) == ["ok", "ok"]
    attempt = manifest["notebooks"][0]["earlier_attempts"][0]
    assert attempt["status"] == "failed" and "RuntimeError: broken on purpose" in attempt["error"]
    assert "raise RuntimeError" in (run_dir / attempt["set_aside"] / "notebooks" / "01_data_first.ipynb").read_text()
    assert "error" not in manifest["notebooks"][0]


def test_needed_notebooks_follow_the_chapter_and_the_reports_it_reads():
    from cytobook.suite import needed_notebooks

    notebooks = discover()
    names = lambda name: [nb.name for nb in needed_notebooks(name, notebooks)]  # noqa: E731
    assert names("01_data_cnmc_tour") == [] and names("02_cnmc_data_preparation") == []
    # Report 1's model families read notebook 02's splits only; its ensembles read them all.
    assert names("04_cnmc_vgg16") == ["02_cnmc_data_preparation"]
    assert names("07_cnmc_ensembles") == [nb.name for nb in notebooks if nb.chapter == "cnmc" and nb.number < 7]
    assert names("08_cnmc_explainability") == [nb.name for nb in notebooks if nb.chapter == "cnmc" and nb.number < 7]
    assert names("09_cnmc_results") == [nb.name for nb in notebooks if nb.chapter == "cnmc" and nb.number < 9]
    assert names("11_bagging_models") == ["10_bagging_data"]
    # Notebook 12 also reads notebook 07's ensembles, and so everything 07 needs.
    assert names("12_bagging_results") == [*(nb.name for nb in notebooks if nb.chapter == "cnmc" and nb.number <= 7),
                                           "10_bagging_data", "11_bagging_models"]
    with pytest.raises(ValueError, match="no notebook"):
        needed_notebooks("99_nothing", notebooks)


def _fake_run(root: Path, name: str, started: str, statuses: dict[str, str], profile="smoke", seed=0, data_dirs=None):
    run = root / name
    run.mkdir(parents=True)
    manifest = {"run_id": name, "profile": profile, "seed": seed, "data_dirs": data_dirs or {}, "started": started,
                "notebooks": [{"name": n, "status": s} for n, s in statuses.items()]}
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def test_run_holding_takes_the_latest_complete_run_with_the_same_settings(tmp_path):
    from cytobook.suite import run_holding

    both = {"02_a": "ok", "03_b": "ok"}
    older = _fake_run(tmp_path, "old", "2026-01-01T00:00:00+00:00", both)
    _fake_run(tmp_path, "failed", "2026-01-03T00:00:00+00:00", {"02_a": "ok", "03_b": "failed"})
    _fake_run(tmp_path, "demo", "2026-01-04T00:00:00+00:00", both, profile="demo")
    _fake_run(tmp_path, "seed1", "2026-01-04T00:00:00+00:00", both, seed=1)
    _fake_run(tmp_path, "real", "2026-01-05T00:00:00+00:00", both, data_dirs={"cnmc": "/data/cnmc"})
    find = lambda **data: run_holding(["02_a", "03_b"], profile="smoke", seed=0, data_dirs=data, runs=tmp_path)  # noqa: E731
    assert find(cnmc=None) == older
    assert find(cnmc="/data/cnmc") == tmp_path / "real"
    newer = _fake_run(tmp_path, "new", "2026-01-02T00:00:00+00:00", both)
    assert find(cnmc=None) == newer
    assert run_holding(["04_c"], profile="smoke", seed=0, data_dirs={}, runs=tmp_path) is None


@pytest.mark.slow
def test_a_notebook_run_by_hand_runs_what_it_needs_then_reads_the_latest_run(tmp_path):
    suite = tmp_path / "notebooks"
    suite.mkdir()
    write_notebook(suite / "01_data_first.ipynb", WRITES_MARKER.format(name="01_data_first"))
    write_notebook(suite / "02_data_second.ipynb", "x = 1")
    runs = tmp_path / "runs"
    lines: list[str] = []
    first = runs / "by-hand-1"
    first.mkdir(parents=True)
    # No run holds 01_data_first: it is executed into the notebook's own new run.
    assert runner.prepare_earlier("02_data_second", profile="smoke", seed=0, data_dir=None, run_dir=first,
                                  notebooks_dir=suite, log=lines.append) == first
    assert (first / "artifacts" / "01_data_first" / "seen.json").exists()
    assert any("running them first" in line for line in lines)
    # A second notebook run by hand reads that run, which is left as it was.
    before = {p: p.read_bytes() for p in first.rglob("*") if p.is_file()}
    second = runs / "by-hand-2"
    second.mkdir()
    assert runner.prepare_earlier("02_data_second", profile="smoke", seed=0, data_dir=None, run_dir=second,
                                  notebooks_dir=suite, log=lines.append) == first
    assert before == {p: p.read_bytes() for p in first.rglob("*") if p.is_file()}
    assert list(second.iterdir()) == []
    # Another seed finds nothing to read.
    third = runs / "by-hand-3"
    third.mkdir()
    assert runner.prepare_earlier("02_data_second", profile="smoke", seed=5, data_dir=None, run_dir=third,
                                  notebooks_dir=suite, log=lines.append) == third
    assert runner.prepare_earlier("01_data_first", profile="smoke", seed=0, data_dir=None, run_dir=third,
                                  notebooks_dir=suite, log=lines.append) is None


@pytest.mark.slow
def test_only_also_runs_the_notebooks_the_selected_ones_read(tmp_path):
    suite = tmp_path / "notebooks"
    suite.mkdir()
    write_notebook(suite / "01_data_first.ipynb", WRITES_MARKER.format(name="01_data_first"))
    write_notebook(suite / "02_data_second.ipynb",
                   "from pathlib import Path\nassert (Path(run_dir) / 'artifacts' / '01_data_first' / 'seen.json').exists()")
    lines: list[str] = []
    run = run_suite("smoke", only=["02_*"], notebooks_dir=suite, root=tmp_path / "runs", log=lines.append)
    manifest = json.loads((run / "manifest.json").read_text())
    assert [(nb["name"], nb["status"]) for nb in manifest["notebooks"]] == [("01_data_first", "ok"), ("02_data_second", "ok")]
    assert lines[0].startswith("also running 01_data_first")


# A notebook that records when it ran, sleeping in between, so that overlaps can be read from the files.
TIMED = (
    "import json, time\n"
    "from pathlib import Path\n"
    "start = time.time()\n"
    "time.sleep({sleep})\n"
    "out = Path(run_dir) / 'artifacts' / '{name}'\n"
    "out.mkdir(parents=True)\n"
    "(out / 'times.json').write_text(json.dumps([start, time.time()]))"
)


@pytest.fixture
def two_chapters(tmp_path):
    """Bagging's two notebooks (the second reads the first) and a white-cell notebook, independent of both."""
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    write_notebook(notebooks / "10_bagging_data.ipynb", TIMED.format(sleep=3, name="10_bagging_data"))
    write_notebook(notebooks / "11_bagging_models.ipynb",
                   "from pathlib import Path\nassert (Path(run_dir) / 'artifacts' / '10_bagging_data' / 'times.json').exists()\n"
                   + TIMED.format(sleep=0, name="11_bagging_models"))
    write_notebook(notebooks / "20_wbc_unet_data.ipynb", TIMED.format(sleep=3, name="20_wbc_unet_data"))
    return notebooks


def times(run_dir: Path, name: str) -> tuple[float, float]:
    return tuple(json.loads((run_dir / "artifacts" / name / "times.json").read_text()))


@pytest.mark.slow
def test_jobs_run_independent_chapters_side_by_side_and_a_reader_after_what_it_reads(two_chapters, tmp_path):
    lines: list[str] = []
    run_dir = run_suite("smoke", notebooks_dir=two_chapters, root=tmp_path / "runs", log=lines.append,
                        progress_after_s=1.0, jobs=2)
    assert statuses(run_dir) == ["ok", "ok", "ok"]
    bagging, models, wbc = (times(run_dir, name) for name in ("10_bagging_data", "11_bagging_models", "20_wbc_unet_data"))
    assert bagging[0] < wbc[1] and wbc[0] < bagging[1], "the two chapters overlap"
    assert models[0] > bagging[1], "notebook 11 waits for notebook 10"
    # Cell lines name their notebook when several run at once.
    assert any(line.startswith("    10_bagging_data: cell 4/4 `import json, time`") for line in lines), lines
    assert lines[-1].startswith("all 3 notebook(s) ran in")


@pytest.mark.slow
def test_with_jobs_a_failure_starts_nothing_more_and_lets_the_running_notebook_finish(two_chapters, tmp_path):
    write_notebook(two_chapters / "10_bagging_data.ipynb", "raise RuntimeError('broken on purpose')")
    with pytest.raises(SuiteFailed, match="10_bagging_data failed in cell") as caught:
        run_suite("smoke", notebooks_dir=two_chapters, root=tmp_path / "runs", log=lambda line: None, jobs=2)
    assert statuses(caught.value.run_dir) == ["failed", "not run", "ok"]
    manifest = json.loads((caught.value.run_dir / "manifest.json").read_text())
    assert "executing" not in manifest


def test_with_jobs_an_interrupted_notebook_stops_the_run(two_chapters, tmp_path, monkeypatch):
    calls: list[str] = []

    def execute(input_path, output_path, real=papermill.execute_notebook, **kwargs):
        calls.append(Path(input_path).stem)
        if Path(input_path).stem == "10_bagging_data":
            raise KeyboardInterrupt
        return real(input_path, output_path, **kwargs)

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    with pytest.raises(SuiteInterrupted) as caught:
        run_suite("smoke", notebooks_dir=two_chapters, root=tmp_path / "runs", log=lambda line: None, jobs=2)
    assert caught.value.notebook == "10_bagging_data"
    # Notebook 20 had started beside it and finished; notebook 11 never started.
    assert statuses(caught.value.run_dir) == ["interrupted", "not run", "ok"]
    assert sorted(calls) == ["10_bagging_data", "20_wbc_unet_data"]


@pytest.mark.parametrize("jobs", [0, -1, 1.5, True])
def test_jobs_must_be_a_positive_whole_number(suite, tmp_path, jobs):
    with pytest.raises(ValueError, match="jobs must be a positive whole number"):
        run_suite("smoke", notebooks_dir=suite, root=tmp_path / "runs", log=lambda line: None, jobs=jobs)
