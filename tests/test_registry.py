"""The data-set registry: every entry generates what it checks, and every by-name function goes through it."""

from __future__ import annotations

import ast
import hashlib
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import PIL
import pytest

import cytobook
import cytobook.datasets as datasets
from cytobook import cli
from cytobook.datasets import DATASETS, REGISTRY, DatasetEntry, check, dataset_entry, generate, generated
from cytobook.datasets.drawing import AngleTable, local_grid, pixel_box, smooth_noise
from cytobook.profiles import PROFILES, get_profile

ENTRIES = sorted(REGISTRY.values(), key=lambda entry: entry.name)

#: sha256 of the trees ``generate(name, dest, "smoke", 0)`` writes (see
#: :func:`tree_hash`), recorded from the generators as they were before their
#: drawing primitives moved to :mod:`cytobook.datasets.drawing`, with these
#: library versions (NumPy, OpenCV and Pillow round and encode differently
#: across versions, so other versions skip the comparison rather than fail);
#: C-NMC's since its generator version 4 (stronger class signal), DLMI's since its version 2; the three HEp-2
#: layouts' since their generator version 1 (their first).
SMOKE_HASHES = {
    "cnmc": "4993174ebc15111a25101b8fe9c7db19f25ea32637f37374d40bafdd72c07489",
    "dlmi": "6ec4f2c67413a78fc7476e1d2a81bc12a2338cada1a92e89b8b96ffc7a4a3771",
    "wbc": "6763ef956d9b45c3f8b97b3449d287a7b1b490c4096af7b0107737dab764d536",
    "raabin": "3be5d5a6fa276eee38a42c8871ab7775e7d107d2fa4de71fd0079a6ae343e454",
    "pbc": "49b43f810c4dbe29a6c1da9bf4d5786ed1aabde5af07b5843f2ff7e38963e4b0",
    "zheng": "4195def6a06f5b42cacc364a8eac997d4cee0a2537411d8e34fa773c0a8694a6",
    "hep2": "6712c4299de5ba625ae04f6c0b7cb92747bedc33be7b02f8b74ba080f9796ef9",
    "hep2_mivia": "ec5b3089c3b9b4324224bbfcb2e19041630dc7734cc0d6dc8e601772fda27acb",
    "hep2_fields": "6331a980941feabe03291cb31b0a20b500e4e4cdd13b29de72a361059b03340d",
}
HASHED_WITH = {"numpy": "2.4.6", "cv2": "5.1.0", "PIL": "13.0.0"}


def tree_hash(folder: Path) -> str:
    """sha256 over every file under ``folder``: relative path, a NUL byte, then the bytes, by sorted path."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_names_come_from_the_registry():
    assert DATASETS == tuple(REGISTRY) and set(DATASETS) >= {"cnmc", "dlmi"}
    for name, entry in REGISTRY.items():
        assert entry.name == name and dataset_entry(name) is entry
        assert entry.title and entry.root_name
        assert entry.spec(PROFILES["smoke"]) is getattr(PROFILES["smoke"], entry.profile_spec)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda entry: entry.name)
def test_every_generator_writes_what_its_check_accepts(entry: DatasetEntry, tmp_path):
    root = entry.generator(tmp_path, entry.spec(PROFILES["smoke"]), 0)
    assert root == tmp_path / entry.root_name
    report = entry.check(root, decode=True)
    assert report.ok, report.format()
    assert report.dataset == entry.title
    assert entry.loader(root) is not None


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_by_name_functions_keep_the_generated_bytes(name: str, tmp_path):
    root = generate(name, tmp_path, "smoke", 0)
    assert root == tmp_path / REGISTRY[name].root_name
    assert check(name, root, decode=False).ok
    found = {"numpy": np.__version__, "cv2": cv2.__version__, "PIL": PIL.__version__}
    if found != HASHED_WITH:
        pytest.skip(f"hashes recorded with {HASHED_WITH}, running {found}")
    assert tree_hash(tmp_path) == SMOKE_HASHES[name]


@pytest.mark.parametrize("call", [
    lambda tmp: generate("nope", tmp, "smoke"),
    lambda tmp: generated("nope", "smoke"),
    lambda tmp: check("nope", tmp),
    lambda tmp: dataset_entry("nope"),
], ids=["generate", "generated", "check", "dataset_entry"])
def test_unknown_name_lists_the_known_ones(call, tmp_path):
    with pytest.raises(ValueError, match="unknown data set 'nope'") as caught:
        call(tmp_path)
    for name in REGISTRY:
        assert name in str(caught.value)


def test_dispatch_goes_through_the_registry(tmp_path, monkeypatch):
    """A new entry is all the by-name functions need: no list of names elsewhere."""
    calls = []
    base = REGISTRY["cnmc"]

    def fake_generator(dest, spec, seed):
        calls.append(("generate", spec, seed))
        (Path(dest) / "fake").mkdir(parents=True)
        return Path(dest) / "fake"

    def fake_check(root, decode=True):
        calls.append(("check", Path(root), decode))
        return "report"

    entry = replace(base, name="fake", root_name="fake", generator=fake_generator, check=fake_check)
    monkeypatch.setitem(REGISTRY, "fake", entry)
    monkeypatch.setenv("CYTOBOOK_CACHE", str(tmp_path / "cache"))
    smoke = get_profile("smoke")
    assert generate("fake", tmp_path, smoke, 3) == tmp_path / "fake"
    cached = tmp_path / "cache" / "fake" / f"smoke-seed5-v{base.generator_version}" / "fake"
    assert generated("fake", smoke, 5) == cached
    assert generated("fake", smoke, 5) == cached  # from the cache: generated once
    assert check("fake", tmp_path, decode=False) == "report"
    assert calls == [("generate", smoke.cnmc, 3), ("generate", smoke.cnmc, 5), ("check", tmp_path, False)]


def test_generated_uses_the_entrys_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CYTOBOOK_CACHE", str(tmp_path))
    entry = REGISTRY["cnmc"]
    root = generated("cnmc", "smoke", 1)
    assert root == tmp_path / "cnmc" / f"smoke-seed1-v{entry.generator_version}" / entry.root_name
    assert generated("cnmc", get_profile("smoke"), 1) == root


def test_entry_rejects_a_spec_the_profile_lacks():
    with pytest.raises(ValueError, match="no field 'raabin'"):
        replace(REGISTRY["cnmc"], name="raabin", profile_spec="raabin")


def test_cli_offers_every_registered_data_set(tmp_path):
    parser = cli.build_parser()
    for name in REGISTRY:
        args = parser.parse_args(["data", "generate", name, str(tmp_path)])
        assert args.dataset == name
    with pytest.raises(SystemExit):
        parser.parse_args(["data", "check", "nope", str(tmp_path)])


# --------------------------------------------------------------------------- drawing primitives


def test_angle_tables_keep_each_generators_resolution():
    from cytobook.datasets import cnmc_synthetic, dlmi_synthetic

    assert cnmc_synthetic._OUTLINE.n_angles == 720
    assert dlmi_synthetic._OUTLINE.n_angles == 360
    table = AngleTable(8)
    assert table.cos.shape == (10, 8) and np.allclose(table.angles, np.arange(8) * np.pi / 4)


def test_angle_table_reads_a_constant_outline_back():
    table = AngleTable(360)
    radius = np.full(360, 5.0, dtype=np.float32)
    grid = local_grid(10.0, 10.0, 6.0, 20)
    assert grid is not None
    _, _, dy, dx = grid
    for read in (table.nearest, table.interpolate):
        rho, (r,) = read(dx, dy, [radius])
        assert rho.shape == r.shape == (dy.size, dx.size) and np.allclose(r, 5.0)
    notch = table.notch(np.random.default_rng(0), 0.3, 0.2)
    assert notch.min() == pytest.approx(0.7, abs=1e-3) and notch.max() <= 1.0
    waves = table.harmonics(np.random.default_rng(0), np.array([0.1, 0.05]), 2)
    assert waves.shape == (360,) and abs(waves.mean()) < 1e-9


def test_pixel_box_clips_pads_and_misses():
    assert pixel_box(5.0, 5.0, 2.0, 20) == (slice(3, 8), slice(3, 8))
    assert pixel_box(5.0, 5.0, 2.0, 20, pad=3) == (slice(0, 11), slice(0, 11))
    assert pixel_box(-10.0, 5.0, 2.0, 20) is None and local_grid(-10.0, 5.0, 2.0, 20) is None


def test_smooth_noise_has_unit_spread_for_small_and_large_blurs():
    rng = np.random.default_rng(0)
    for sigma in (0.0, 2.0, 12.0):
        field = smooth_noise(rng, (40, 50), sigma)
        assert field.shape == (40, 50) and field.dtype == np.float32
        assert float(field.std()) == pytest.approx(1.0, rel=1e-4)


# --------------------------------------------------------------------------- no private imports


def test_no_module_imports_a_private_name_from_another():
    package = Path(cytobook.__file__).parent
    found = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                found += [
                    f"{path.relative_to(package)}:{node.lineno}: {alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_") and not alias.name.startswith("__")
                ]
    assert not found, "private names imported across modules: " + ", ".join(found)


def test_the_check_function_is_not_shadowed_by_its_module():
    assert callable(datasets.check) and datasets.check is check


def test_notebooks_asking_at_once_for_a_generated_set_wait_for_one_generation(tmp_path):
    import threading
    import time

    from cytobook.io import cached_generation

    calls = []

    def generate(tmp):
        calls.append(tmp)
        time.sleep(0.5)  # long enough for the other thread to ask meanwhile
        (tmp / "tree").mkdir()

    found = []
    threads = [threading.Thread(target=lambda: found.append(cached_generation(tmp_path / "set", "tree", {"seed": 0}, generate)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and found == [tmp_path / "set" / "tree"] * 2
