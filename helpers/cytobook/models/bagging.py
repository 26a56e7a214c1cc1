"""Report 2's "combined" model: two bagging members' pooled features joined by a new classifier.

Liu & Long (2.4, Fig. 3) train two Inception-ResNet-V2 networks, model A and
model B, on the bagging sets A and B (:func:`cytobook.augment.bagging_sets`),
then use both as frozen image-feature extractors: each one's penultimate
output, the 1536-d global average of its last map, is batch-normalised "for
reducing the influences of possible large magnitude differences", the two are
concatenated, and two fully connected layers of 1024 units with dropout 0.6
and a softmax output are trained on all training cells.

:func:`combined_head` is that classifier on the two feature vectors, so that it
trains on features computed once (:func:`member_features`);
:func:`combined_classifier` puts it behind the two members' bases for images.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

#: Member names, in the order of the combined model's inputs.
MEMBERS = ("model_a", "model_b")


def combined_head(feature_sizes: Sequence[int], units: int = 1024, dropout: float = 0.6) -> keras.Model:
    """The combined model's classifier: per member, batch normalisation; concatenation; two dense + dropout; softmax.

    Parameters
    ----------
    feature_sizes
        Length of each member's pooled feature vector (1536 for Inception-ResNet-V2).
    units, dropout
        The report's two fully connected layers (ReLU, *our choice*: the
        report does not name the activation) and their dropout rate.

    Returns
    -------
    keras.Model
        Inputs, one per member, named after :data:`MEMBERS` (``model_a``,
        ``model_b``, then ``member_2``...); output ``(n, 2)`` softmax, class 1 = ALL.
    """
    if len(feature_sizes) < 2:
        raise ValueError(f"the combined model joins at least two members, got {len(feature_sizes)}")
    names = _member_names(len(feature_sizes))
    inputs = [keras.Input((int(size),), name=name) for name, size in zip(names, feature_sizes)]
    normalised = [keras.layers.BatchNormalization(name=f"{name}_norm")(x) for name, x in zip(names, inputs)]
    x = keras.layers.Concatenate(name="joined")(normalised)
    for index in (1, 2):
        x = keras.layers.Dense(units, activation="relu", name=f"dense_{index}")(x)
        x = keras.layers.Dropout(dropout, name=f"dropout_{index}")(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="classes")(x)
    return keras.Model(inputs, outputs, name="combined_head")


def _member_names(count: int) -> list[str]:
    return [MEMBERS[i] if i < len(MEMBERS) else f"member_{i}" for i in range(count)]


def pooled_extractor(member: keras.Model, name: str | None = None) -> keras.Model:
    """Images -> the member's global-average-pooled base output (its penultimate layer in the report).

    ``member`` is a transfer classifier of :mod:`cytobook.models.transfer`
    (layers ``preprocess``, ``base``, ``head``); ``name`` names the extractor
    (default: the member's name followed by ``_features``).
    """
    inputs = keras.Input(member.input_shape[1:], name="image")
    features = member.get_layer("base")(member.get_layer("preprocess")(inputs))
    pooled = keras.layers.GlobalAveragePooling2D(name="pooled")(features)
    return keras.Model(inputs, pooled, name=name or f"{member.name}_features")


def member_features(members: Sequence[keras.Model], images: np.ndarray, batch_size: int = 32) -> list[np.ndarray]:
    """Each member's pooled features of ``images``, one ``(n, d)`` array per member (frozen bases: computed once)."""
    return [np.asarray(pooled_extractor(member).predict(images, batch_size=batch_size, verbose=0)) for member in members]


def combined_classifier(members: Sequence[keras.Model], head: keras.Model) -> keras.Model:
    """Images -> the combined model's softmax, through each member's frozen base and ``head``."""
    inputs = keras.Input(members[0].input_shape[1:], name="image")
    extractors = [pooled_extractor(member, f"{name}_features") for member, name in zip(members, _member_names(len(members)))]
    for extractor in extractors:
        extractor.trainable = False
    outputs = head([extractor(inputs) for extractor in extractors])
    return keras.Model(inputs, outputs, name="combined")
