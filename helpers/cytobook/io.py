"""Safe file handling: images read with clear errors, results written atomically.

Every writer here either leaves the complete file or directory in place or
nothing at all, so an interrupted run never leaves a half-written artefact that
a later notebook could mistake for a result.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from io import StringIO  # the standard library's io, not this module
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError


class ImageReadError(ValueError):
    """An image file that cannot be decoded; the message names the file."""


def read_image(path: str | os.PathLike, mode: str = "RGB") -> np.ndarray:
    """Read an image file fully into a ``uint8`` array.

    Parameters
    ----------
    path
        Image file (any format Pillow reads: BMP, PNG, JPEG, TIFF...).
    mode
        Pillow mode to convert to, ``"RGB"`` (H, W, 3) or ``"L"`` (H, W).

    Raises
    ------
    ImageReadError
        If the file is missing, empty, truncated (rather than a partly black
        cell) or not an image.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()  # decodes every pixel: truncation shows up here
            return np.asarray(image.convert(mode))
    except FileNotFoundError:
        raise ImageReadError(f"{path}: file not found (expected an image)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(
            f"{path}: cannot be read as an image ({error}); expected a complete {path.suffix or 'image'} file"
        ) from None


def write_image(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a ``uint8`` image atomically (format from the file suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        Image.fromarray(np.ascontiguousarray(array)).save(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str, exclusive: bool = False) -> Path:
    """Write ``text`` as is to ``path`` atomically (a temporary file beside it, then renamed); return ``path``.

    The folder is created if missing. An existing file is replaced, unless
    ``exclusive``: then a ``FileExistsError`` leaves it (even one that appears
    meanwhile) untouched.
    """
    path = Path(path)
    if exclusive and path.exists():
        raise FileExistsError(f"{path} already exists; it is never overwritten (choose a new name)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", newline="") as handle:
            handle.write(text)
        if not exclusive:
            os.replace(tmp, path)
            return path
        try:
            os.link(tmp, path)  # atomic, and never replaces: fails if path appeared meanwhile
        except FileExistsError:
            raise FileExistsError(f"{path} already exists; it is never overwritten (choose a new name)") from None
        except OSError:  # a file system without hard links
            if path.exists():
                raise FileExistsError(f"{path} already exists; it is never overwritten") from None
            os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def csv_text(header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> str:
    """A CSV table as text, the header then one line per row, each ending in a bare line feed.

    Values are written with ``str`` and quoted by :mod:`csv` where needed.
    """
    buffer = StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically; NumPy scalars are converted."""
    text = json.dumps(data, indent=2, default=_json_default)  # insertion order: tables keep their row order
    return write_text(path, text + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def new_dataset_root(dest: str | os.PathLike, root_name: str, seed: int) -> Path:
    """Where a generator writes its copy: ``dest/root_name``, which must not exist yet (never overwritten).

    Raises
    ------
    ValueError
        If ``seed`` is negative.
    FileExistsError
        If ``dest/root_name`` exists, naming it.
    """
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    final = Path(dest) / root_name
    if final.exists():
        raise FileExistsError(f"{final} already exists; remove it or choose another destination")
    return final


@contextlib.contextmanager
def atomic_directory(final: str | os.PathLike) -> Iterator[Path]:
    """Build a directory under a temporary name and move it into place at the end.

    If the body raises, the temporary directory is removed and ``final`` left
    as it was; if another process finished ``final`` first, its copy is kept.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.partial-"))
    try:
        yield tmp
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
            shutil.rmtree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (made if missing) against other processes; a no-op without ``fcntl``."""
    try:
        import fcntl
    except ImportError:  # Windows: concurrent generations stay correct (atomic_directory), only duplicated
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cache_dir() -> Path:
    """Where generated data sets live: ``$CYTOBOOK_CACHE`` or ``~/.cache/cytobook``."""
    root = os.environ.get("CYTOBOOK_CACHE") or Path.home() / ".cache" / "cytobook"
    return Path(root)


def spec_record(spec: Any, seed: int, version: int) -> dict[str, Any]:
    """JSON-comparable description of what a generated tree was made from: a spec dataclass, seed and version."""
    from dataclasses import asdict

    record = {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(spec).items()}
    record.update(seed=seed, generator_version=version)
    return record


def cached_generation(folder: str | os.PathLike, root_name: str, record: dict[str, Any],
                      generate: Callable[[Path], Any]) -> Path:
    """``folder / root_name``, made by ``generate(tmp)`` on first use, with ``record`` beside it.

    The tree, whatever ``generate`` writes beside it and ``spec.json`` (the
    record) appear together or not at all (:func:`atomic_directory`).

    Raises
    ------
    ValueError
        If the cached copy was made from another record (the folder name does
        not include the whole spec: data of the wrong size is refused).
    FileExistsError
        If ``folder`` exists without ``root_name`` in it.
    """
    folder = Path(folder)
    if not (folder / root_name).is_dir():
        # Notebooks running at once (`cytobook run --jobs`) wait for one generation instead of each making its own.
        with exclusive_lock(folder.parent / f".{folder.name}.lock"):
            if not (folder / root_name).is_dir():
                with atomic_directory(folder) as tmp:
                    generate(tmp)
                    write_json(tmp / "spec.json", record)
        if not (folder / root_name).is_dir():  # a stray folder of that name, kept by atomic_directory
            raise FileExistsError(f"{folder} exists but holds no {root_name}; delete it and try again")
    recorded = folder / "spec.json"
    if recorded.is_file():
        found = json.loads(recorded.read_text())
        if found != record:
            raise ValueError(
                f"{folder} was generated for a different spec ({found}) than now asked for ({record}); "
                "delete the folder or use another profile name"
            )
    return folder / root_name
