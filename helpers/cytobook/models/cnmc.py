"""Report 1's own network for C-NMC: the CNN trained from scratch, and the input sizes it implies.

The transfer-learning classifiers (VGG16, ResNet50, MobileNetV2 under a new
head) are built and trained by :mod:`cytobook.models.transfer`, which the
other chapters share. Choices the report leaves open are marked *our choice*.
"""

from __future__ import annotations

import keras

from .transfer import classifier_head

#: The scratch CNN's heads (report 1, section 3.2): its best (first) and the variants it compares.
#: 3.2.3 is "the same as above", the best network, with 128 units; 3.2.4 adds a second dense layer of
#: 256 units (the report names no dropout between them: *our choice*, none).
SCRATCH_HEADS: dict[str, tuple[tuple[str, float], ...]] = {
    "dropout-dense256-dropout": (("dropout", 0.5), ("dense", 256), ("dropout", 0.5)),
    "dense256-dropout": (("dense", 256), ("dropout", 0.5)),
    "dropout-dense128-dropout": (("dropout", 0.5), ("dense", 128), ("dropout", 0.5)),
    "dropout-dense256-dense256-dropout": (("dropout", 0.5), ("dense", 256), ("dense", 256), ("dropout", 0.5)),
}

#: Input size report 1 implies for an architecture, where it differs from the chapter's 300 px images:
#: the truncated ResNet50's 14x14x1024 output is stage 4 of ResNet50 at 224 px (at 300 px it is 19x19x1024).
REPORT_INPUT_SIZE: dict[str, int] = {"resnet50": 224}


def input_size(arch: str, profile) -> int:
    """Side in pixels of the images fed to transfer model ``arch`` in a run of ``profile``.

    The report's size for ``arch`` (:data:`REPORT_INPUT_SIZE`, else the
    run's), never more than the run's prepared images (``profile.image_size``)
    nor than ``profile.transfer_image_size[arch]`` where set. The ``full`` profile
    prepares 300 px images, so ResNet50 gets them shrunk to 224 px and its
    truncated base ends on the report's 14x14x1024 map (*our reading* of the
    report, which states 300 px for the chapter and 14x14x1024 for ResNet50);
    ``demo`` feeds VGG16 and ResNet50 48 px images, so that a base trained
    from random weights costs seconds, not a minute, an epoch on a CPU.
    """
    limits = [profile.image_size, profile.transfer_image_size.get(arch, profile.image_size)]
    return min(REPORT_INPUT_SIZE.get(arch, profile.image_size), *limits)


def scratch_cnn(size: int, head: str = "dropout-dense256-dropout") -> keras.Model:
    """Report 1's CNN trained from scratch.

    Four 3x3 same-padded ReLU convolutions of 32, 64, 128 and 256 filters,
    each followed by max pooling of 2, 2, 3 and 5, then a head from
    :data:`SCRATCH_HEADS`. The pools shrink the image 60-fold, so ``size``
    must be at least 60 (300 in the report: a 5x5x256 map).
    """
    if size < 60:
        raise ValueError(f"the scratch CNN pools by 2*2*3*5 = 60: input size {size} is too small")
    if head not in SCRATCH_HEADS:
        raise ValueError(f"unknown head {head!r}; expected one of {', '.join(SCRATCH_HEADS)}")
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Rescaling(1 / 255, name="rescale")(inputs)
    for index, (filters, pool) in enumerate(zip((32, 64, 128, 256), (2, 2, 3, 5)), start=1):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{index}")(x)
        x = keras.layers.MaxPooling2D(pool, name=f"pool{index}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, classifier_head(x, SCRATCH_HEADS[head]), name=f"scratch_cnn_{head}")
