"""ImageNet weights without a network.

``keras.applications`` downloads its weights on first use. Cytobook runs where
there is no network (CI, air-gapped GPU machines), so every backbone is built
through :func:`build_backbone`, which looks for the exact file Keras would have
downloaded under ``$KERAS_HOME/models`` and, when it is missing, fails at once
with a message saying which file to put where, instead of hanging on a
download or quietly training from random weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"

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
    """ImageNet weights are needed but not cached, and cannot be downloaded here."""


@dataclass(frozen=True)
class WeightFile:
    """The no-top ImageNet weight file Keras uses for one architecture.

    Attributes
    ----------
    arch
        Key of :data:`ARCHITECTURES`.
    file_name
        Keras's own file name, looked up under ``$KERAS_HOME/models``.
    url
        Where Keras downloads it from (for the instructions in the error).
    """

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
    """Name and URL of the no-top ImageNet weights of ``arch``.

    Parameters
    ----------
    arch
        A key of :data:`ARCHITECTURES`.
    alpha, rows
        Width multiplier and training resolution, for the MobileNet families
        whose file names include them.
    """
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


def resolve_imagenet(arch: str, *, required: bool, alpha: float = 1.0, rows: int = 224) -> Path | None:
    """Path of the cached ImageNet weights of ``arch``, or a loud ``None``.

    The MobileNet families were trained at several resolutions; any of them
    fits any input size without the top, so the 224 file stands in when the
    file for ``rows`` is absent.

    Parameters
    ----------
    required
        True in the ``full`` profile: a missing file raises. Otherwise a
        warning is printed (it lands in the notebook's output) and ``None`` is
        returned, meaning random initialisation.

    Raises
    ------
    MissingWeightsError
        If ``required`` and the file is not cached. The message names the
        file, its URL and the folder to put it in.
    """
    wanted = imagenet_file(arch, alpha=alpha, rows=rows)
    candidates = [wanted]
    if arch.startswith("mobilenet") and rows != 224:
        candidates.append(imagenet_file(arch, alpha=alpha, rows=224))
    for candidate in candidates:
        if candidate.cached_path.is_file():
            return candidate.cached_path
    fallback = f" (or the 224 px file {candidates[-1].file_name}, which fits any input size)" if len(candidates) > 1 else ""
    message = (
        f"ImageNet weights for {arch} are not cached and this machine cannot download them. "
        f"On a machine with a network, download {wanted.url} and put it at {wanted.cached_path}{fallback} "
        f"(or set KERAS_HOME to a folder whose models/ holds {wanted.file_name})."
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
        ``"imagenet"`` (resolved offline with :func:`resolve_imagenet`),
        ``None`` for random weights, or a path to a weight file.
    required
        Whether missing ImageNet weights are an error (see
        :func:`resolve_imagenet`); pass ``profile.imagenet_required``.
    alpha
        Width multiplier of the MobileNet families.
    **kwargs
        Passed to the constructor (``pooling=...``).

    Returns
    -------
    keras.Model
        The base, with attribute ``imagenet_weights`` set to the weight file
        used, or ``None`` when it starts from random weights.
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
