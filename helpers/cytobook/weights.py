"""ImageNet weights: the Keras cache first, a quick download second, a clear failure last.

``keras.applications`` downloads its weights with no timeout, so it can hang
without a network, and a killed download can leave a truncated file. Every
backbone is therefore built by :func:`build_backbone`, whose weights
:func:`resolve_imagenet` finds:

1. the file Keras would have downloaded, under ``$KERAS_HOME/models``
   (``~/.keras/models`` by default), when it is there;
2. the same file in ``$CYTOBOOK_WEIGHTS_DIR``, a folder of Keras weight
   files under their Keras names (a shared offline copy, read in place);
3. otherwise the file downloaded from Keras's URL into that folder, with a
   short connect/read timeout (:func:`download_timeout`), written to a hidden
   file renamed only once complete. After a network failure no download is
   tried again in the process; ``CYTOBOOK_OFFLINE=1`` skips them all;
4. failing that, the ``full`` profile stops with a message naming the file,
   its URL and its folder, and the ``smoke`` and ``demo`` profiles print that
   they start from random weights.

Downloads use :mod:`urllib.request`, which honours ``$https_proxy`` as Keras does.
"""

from __future__ import annotations

import http.client
import os
import socket
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"

#: Seconds to wait for the connection and for each read of a download (not for the
#: whole download); ``$CYTOBOOK_DOWNLOAD_TIMEOUT`` overrides it.
DOWNLOAD_TIMEOUT_S = 10.0
#: Environment variable overriding :data:`DOWNLOAD_TIMEOUT_S` (seconds, a positive number).
TIMEOUT_ENV = "CYTOBOOK_DOWNLOAD_TIMEOUT"
#: Environment variable naming a folder of Keras weight files (under Keras's file
#: names) that :func:`resolve_imagenet` reads after the Keras cache, before any download.
WEIGHTS_DIR_ENV = "CYTOBOOK_WEIGHTS_DIR"
#: Environment variable that, set to anything but ``""``, ``0``, ``false`` or ``no``,
#: stops :func:`resolve_imagenet` from trying to download.
OFFLINE_ENV = "CYTOBOOK_OFFLINE"

#: Every HDF5 file (the Keras ``.h5`` weights) starts with this signature; a
#: download that does not (say, a captive portal's login page) is discarded.
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: Input sizes Keras has MobileNet weights for; other sizes use the 224 file, as in Keras.
_MOBILENET_ROWS = {"mobilenet": (128, 160, 192, 224), "mobilenet_v2": (96, 128, 160, 192, 224)}

#: Why the network failed in this process, once it has; no download is tried after that.
_network_failure: str | None = None

#: Architectures the reports use: ``keras.applications`` constructor and URL folder.
ARCHITECTURES: dict[str, tuple[str, str]] = {
    "vgg16": ("VGG16", "vgg16"),
    "resnet50": ("ResNet50", "resnet"),
    "mobilenet": ("MobileNet", "mobilenet"),
    "mobilenet_v2": ("MobileNetV2", "mobilenet_v2"),
    "inception_resnet_v2": ("InceptionResNetV2", "inception_resnet_v2"),
    "convnext_tiny": ("ConvNeXtTiny", "convnext"),
    "convnext_small": ("ConvNeXtSmall", "convnext"),
}


class MissingWeightsError(FileNotFoundError):
    """ImageNet weights are needed but are not cached and could not be downloaded."""


@dataclass(frozen=True)
class WeightFile:
    """The no-top ImageNet weight file Keras uses for ``arch``: its own ``file_name`` and the ``url`` it downloads."""

    arch: str
    file_name: str
    url: str

    @property
    def cached_path(self) -> Path:
        """Where Keras keeps this file once downloaded."""
        return keras_home() / "models" / self.file_name


def keras_home() -> Path:
    """Keras's cache root: ``$KERAS_HOME``, else ``~/.keras`` (as Keras resolves it)."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")


def imagenet_file(arch: str, *, alpha: float = 1.0, rows: int = 224) -> WeightFile:
    """Name and URL of the no-top ImageNet weights of ``arch`` (``alpha`` and ``rows`` name MobileNet files)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {', '.join(ARCHITECTURES)}")
    folder = ARCHITECTURES[arch][1]
    if arch == "mobilenet_v2":
        name = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}_no_top.h5"
    elif arch == "mobilenet":
        alpha_text = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}[alpha]
        name = f"mobilenet_{alpha_text}_{rows}_tf_no_top.h5"
    elif arch.startswith("convnext"):
        name = f"{arch}_notop.h5"
    else:
        name = f"{arch}_weights_tf_dim_ordering_tf_kernels_notop.h5"
    return WeightFile(arch, name, f"{_BASE_URL}{folder}/{name}")


def download_timeout() -> float:
    """Seconds a download waits to connect and for each read (``$CYTOBOOK_DOWNLOAD_TIMEOUT``, else the default).

    Raises
    ------
    ValueError
        If ``$CYTOBOOK_DOWNLOAD_TIMEOUT`` is not a positive number.
    """
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DOWNLOAD_TIMEOUT_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0:
        raise ValueError(f"{TIMEOUT_ENV} must be a positive number of seconds, not {text!r}")
    return seconds


def offline() -> bool:
    """Whether ``$CYTOBOOK_OFFLINE`` forbids downloads (any value but ``""``, ``0``, ``false``, ``no``)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


class _DownloadFailed(Exception):
    """A download did not produce a complete file; ``network`` if the network itself failed."""

    def __init__(self, reason: str, *, network: bool):
        super().__init__(reason)
        self.network = network


def _download(source: WeightFile, timeout: float) -> Path:
    """Download ``source`` into the Keras cache, or raise :class:`_DownloadFailed` saying why.

    The bytes go to a hidden ``.part`` file, renamed only when complete (as
    long as any ``Content-Length``) and starting like an HDF5 file; on any
    failure it is deleted.
    """
    target = source.cached_path
    print(f"Downloading ImageNet weights for {source.arch} from {source.url} to {target} "
          f"(timeout {timeout:g} s)", flush=True)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _DownloadFailed(f"cannot create {target.parent}: {error}", network=False) from error
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
    try:
        try:
            with urllib.request.urlopen(source.url, timeout=timeout) as response, open(partial, "xb") as out:
                expected = response.headers.get("Content-Length")
                received = 0
                while chunk := response.read(1 << 20):
                    if received == 0 and not chunk.startswith(_HDF5_SIGNATURE[: len(chunk)]):
                        raise _DownloadFailed("the server sent something that is not an HDF5 file", network=False)
                    out.write(chunk)
                    received += len(chunk)
        except urllib.error.HTTPError as error:
            raise _DownloadFailed(f"HTTP {error.code} {error.reason}", network=False) from error
        except urllib.error.URLError as error:
            reason = error.reason
            network = not isinstance(reason, (FileNotFoundError, PermissionError))
            raise _DownloadFailed(_describe(reason), network=network) from error
        except (OSError, http.client.HTTPException) as error:
            # Timeouts and resets while reading, an incomplete chunked body; a
            # failure to write the file is not the network's fault.
            network = not isinstance(error, OSError) or isinstance(error, (TimeoutError, ConnectionError, socket.timeout))
            raise _DownloadFailed(_describe(error), network=network) from error
        if expected is not None and received != int(expected):
            raise _DownloadFailed(f"the transfer stopped after {received} of {expected} bytes", network=True)
        if received < len(_HDF5_SIGNATURE):
            raise _DownloadFailed(f"the server sent only {received} bytes", network=False)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return target


def _describe(error: BaseException | str) -> str:
    """A few words for a download error."""
    if isinstance(error, (TimeoutError, socket.timeout)):
        return "timed out"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve the server's name: {error.strerror or error}"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def _try_download(source: WeightFile) -> tuple[Path | None, str]:
    """Download ``source`` unless downloads are off; the path, or ``None`` and why not."""
    global _network_failure
    if offline():
        return None, f"download skipped because {OFFLINE_ENV} is set"
    if _network_failure is not None:
        return None, f"download skipped, as an earlier one in this process failed: {_network_failure}"
    try:
        return _download(source, download_timeout()), ""
    except _DownloadFailed as failure:
        if failure.network:
            _network_failure = str(failure)
        return None, f"download failed: {failure}"


def resolve_imagenet(arch: str, *, required: bool, alpha: float = 1.0, rows: int = 224) -> Path | None:
    """Path of the ImageNet weights of ``arch``, from the cache or downloaded (see the module docstring).

    The MobileNet families' files for other resolutions fit any input size
    without the top, so the 224 file stands in when the one for ``rows``
    (``alpha``: the width multiplier) is absent, or when Keras has none for ``rows``.

    Parameters
    ----------
    arch
        A key of :data:`ARCHITECTURES`.
    required
        True in the ``full`` profile: missing weights raise. Otherwise a
        warning is printed (in the notebook's output) and ``None`` returned,
        meaning random initialisation.

    Raises
    ------
    MissingWeightsError
        If ``required`` and the file is neither cached nor downloaded; the
        message names the file, its URL and its folder, and why no download
        happened or why it failed.
    """
    wanted = imagenet_file(arch, alpha=alpha, rows=rows)
    candidates = [wanted]
    if arch.startswith("mobilenet") and rows != 224:
        candidates.append(imagenet_file(arch, alpha=alpha, rows=224))
    shared = os.environ.get(WEIGHTS_DIR_ENV)
    for folder in (None, Path(shared) if shared else None):
        for candidate in candidates:
            path = candidate.cached_path if folder is None else folder / candidate.file_name
            if path.is_file():
                return path
    source = wanted
    if arch in _MOBILENET_ROWS and rows not in _MOBILENET_ROWS[arch]:
        source = candidates[-1]  # Keras has no file for these rows and uses the 224 one
    path, why_not = _try_download(source)
    if path is not None:
        return path
    fallback = (f" (or the 224 px file {candidates[-1].file_name}, which fits any input size)"
                if source is not candidates[-1] else "")
    message = (
        f"ImageNet weights for {arch} are not cached and were not downloaded ({why_not}). "
        f"Download {source.url} and put it at {source.cached_path}{fallback} "
        f"(or set KERAS_HOME to a folder whose models/ holds {source.file_name})."
    )
    if required:
        raise MissingWeightsError(message)
    print(f"WARNING: {message} Continuing with RANDOM initial weights for {arch}: "
          "results will not show the effect of ImageNet pretraining.")
    return None


def build_backbone(
    arch: str,
    input_shape: tuple[int, int, int],
    *,
    weights: str | None = "imagenet",
    required: bool = True,
    alpha: float = 1.0,
    **kwargs,
):
    """Build a ``keras.applications`` convolutional base without its top.

    Parameters
    ----------
    arch
        A key of :data:`ARCHITECTURES`.
    input_shape
        ``(height, width, 3)``.
    weights
        ``"imagenet"`` (see :func:`resolve_imagenet`), ``None`` for random weights, or a weight file.
    required
        Whether missing ImageNet weights are an error; pass ``profile.imagenet_required``.
    alpha
        Width multiplier of the MobileNet families.
    **kwargs
        Passed to the constructor (``pooling=...``).

    Returns
    -------
    keras.Model
        The base; its ``imagenet_weights`` attribute is the weight file used, or ``None``.
    """
    import keras

    constructor = getattr(keras.applications, ARCHITECTURES[arch][0]) if arch in ARCHITECTURES else None
    if constructor is None:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {', '.join(ARCHITECTURES)}")
    if arch.startswith("mobilenet"):
        kwargs["alpha"] = alpha
    path = weights
    if weights == "imagenet":
        rows = input_shape[0] if input_shape[0] in (96, 128, 160, 192, 224) else 224
        path = resolve_imagenet(arch, required=required, alpha=alpha, rows=rows)
    # A path (never the string "imagenet") keeps Keras away from its downloader.
    model = constructor(include_top=False, weights=str(path) if path else None, input_shape=input_shape, **kwargs)
    model.imagenet_weights = path
    return model
