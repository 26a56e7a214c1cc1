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


# `cytobook run`: Ctrl-C and --resume.


def write_notebook(path, body):
    """A minimal suite notebook: title, tagged parameters cell, then ``body``."""
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    parameters = nbformat.v4.new_code_cell('profile = "demo"\ndata_dir = None\nrun_dir = None\nseed = 0')
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}"), parameters, nbformat.v4.new_code_cell(body)]
    nbformat.write(notebook, path)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A checkout holding two trivial notebooks, made the working directory; runs go to its runs/."""
    (tmp_path / "_config.yml").write_text("title: test\n")
    (tmp_path / "notebooks").mkdir()
    write_notebook(tmp_path / "notebooks" / "01_data_first.ipynb", "x = 1")
    write_notebook(tmp_path / "notebooks" / "02_cnmc_second.ipynb", "y = 2")
    monkeypatch.setenv("CYTOBOOK_ROOT", str(tmp_path))
    monkeypatch.delenv("CYTOBOOK_RUNS", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_run_interrupted_prints_one_line_and_exits_130(project, monkeypatch, capsys):
    import papermill

    def interrupted(input_path, output_path, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(papermill, "execute_notebook", interrupted)
    assert cli.main(["run", "--profile", "smoke"]) == 130
    (run_dir,) = (project / "runs").iterdir()
    out, err = capsys.readouterr()
    assert err == f"interrupted during 01_data_first; finish this run with: cytobook run --resume runs/{run_dir.name}\n"
    assert "Traceback" not in out
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert [nb["status"] for nb in manifest["notebooks"]] == ["interrupted", "not run"]


@pytest.mark.parametrize("extra", [["--profile", "smoke"], ["--seed", "0"], ["--only", "data"], ["--data-dir", "cnmc=/data"]])
def test_resume_cannot_change_the_run_settings(extra, capsys):
    assert cli.main(["run", "--resume", "runs/whatever", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cytobook run: --resume reruns the run with its own settings") and err.rstrip().endswith(extra[0])


def test_resume_of_something_that_is_not_a_run_exits_2(project, capsys):
    assert cli.main(["run", "--resume", "20990101-000000-smoke"]) == 2
    assert "is not a run directory" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_stops_the_running_cell_and_resume_finishes_the_run(project):
    import signal
    import time

    # The second notebook says when its long cell has started, so that Ctrl-C lands inside it.
    write_notebook(project / "notebooks" / "02_cnmc_second.ipynb",
                   "import time\nfrom pathlib import Path\n(Path(run_dir) / 'started').touch()\ntime.sleep(120)")
    command = [sys.executable, "-m", "cytobook.cli", "run"]
    # Popen's child would otherwise inherit an ignored SIGINT when the tests run in the background.
    run = subprocess.Popen([*command, "--profile", "smoke"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not list(project.glob("runs/*/started")) and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.2)
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=120)
    (run_dir,) = (project / "runs").iterdir()
    assert run.returncode == 130, out + err
    assert err == f"interrupted during 02_cnmc_second; finish this run with: cytobook run --resume runs/{run_dir.name}\n"
    assert out.splitlines()[-1] == "[2/2] 02_cnmc_second ..."
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert [nb["status"] for nb in manifest["notebooks"]] == ["ok", "interrupted"]
    assert manifest["notebooks"][1]["duration_s"] > 0
    # The kernel was interrupted, so the executed notebook shows where.
    assert '"ename": "KeyboardInterrupt"' in (run_dir / "notebooks" / "02_cnmc_second.ipynb").read_text()

    write_notebook(project / "notebooks" / "02_cnmc_second.ipynb", "y = 2")
    done = subprocess.run([*command, "--resume", f"runs/{run_dir.name}"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == str(run_dir) and "[1/1] 02_cnmc_second done in" in done.stdout
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert [nb["status"] for nb in manifest["notebooks"]] == ["ok", "ok"]
    assert (run_dir / "interrupted" / "02_cnmc_second-1" / "notebooks" / "02_cnmc_second.ipynb").exists()


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_with_jobs_interrupts_every_running_notebook(project):
    import signal
    import time

    # Two chapters' notebooks sleep side by side; a third would follow the first.
    sleeper = "import time\nfrom pathlib import Path\n(Path(run_dir) / 'started-{name}').touch()\ntime.sleep(120)"
    for name in ("10_bagging_data", "20_wbc_unet_data"):
        write_notebook(project / "notebooks" / f"{name}.ipynb", sleeper.format(name=name))
    write_notebook(project / "notebooks" / "11_bagging_models.ipynb", "z = 3")
    run = subprocess.Popen([sys.executable, "-m", "cytobook.cli", "run", "--profile", "smoke", "--jobs", "2",
                            "--only", "bagging", "--only", "wbc_unet"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while len(list(project.glob("runs/*/started-*"))) < 2 and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.2)
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=120)
    (run_dir,) = (project / "runs").iterdir()
    assert run.returncode == 130, out + err
    assert err == (f"interrupted during 10_bagging_data, 20_wbc_unet_data; finish this run with: "
                   f"cytobook run --resume runs/{run_dir.name}\n")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert [nb["status"] for nb in manifest["notebooks"]] == ["interrupted", "not run", "interrupted"]
    for name in ("10_bagging_data", "20_wbc_unet_data"):
        assert '"ename": "KeyboardInterrupt"' in (run_dir / "notebooks" / f"{name}.ipynb").read_text()
