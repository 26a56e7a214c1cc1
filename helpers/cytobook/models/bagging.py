"""Report 2's "combined" model: two bagging members' pooled features joined by a new classifier.

Liu & Long (2.4, Fig. 3) train two Inception-ResNet-V2 networks, model A and
model B, on the bagging sets A and B (:func:`cytobook.augment.bagging_sets`),
then use both as frozen image-feature extractors: each one's penultimate
output, the 1536-d global average of its last map, is batch-normalised "for
reducing the influences of possible large magnitude differences", the two are
concatenated, and two fully connected layers of 1024 units with dropout 0.6
and a softmax output are trained on all training cells.

:class:`MemberTrainer` trains the members and computes their features once;
:func:`combined_head` is the classifier on the two feature vectors, trained on
those features (:func:`train_combined`): the members stay frozen, as in the report.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import pandas as pd

from ..evaluation import binary_report
from ..training import SplitArrays, Trained, compile_binary, fit, make_optimizer, predict_proba
from .transfer import BatchNormRecalibration, transfer_classifier

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
        report does not name the activation) and their dropout rate. The
        batch normalisation's momentum is 0.9 (*our choice*, see the code).

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
    # Momentum 0.9 (PyTorch's default; *our choice*, the report gives none): with Keras's 0.99 the moving
    # statistics lag the features for tens of epochs at a few dozen steps an epoch, and early stopping then
    # keeps an epoch whose validation predictions rest on statistics that are half the initial (0, 1).
    normalised = [keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_norm")(x)
                  for name, x in zip(names, inputs)]
    x = keras.layers.Concatenate(name="joined")(normalised)
    for index in (1, 2):
        x = keras.layers.Dense(units, activation="relu", name=f"dense_{index}")(x)
        x = keras.layers.Dropout(dropout, name=f"dropout_{index}")(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="classes")(x)
    return keras.Model(inputs, outputs, name="combined_head")


def _member_names(count: int) -> list[str]:
    return [MEMBERS[i] if i < len(MEMBERS) else f"member_{i}" for i in range(count)]


def features_and_probabilities(member: keras.Model, name: str | None = None) -> keras.Model:
    """Images -> (the member's pooled base output, its probability of ALL), in one pass.

    The pooled output is the global average of the base's last map, the
    member's penultimate layer in the report, which the combined model reuses.
    ``member`` is a transfer classifier of :mod:`cytobook.models.transfer`
    (layers ``preprocess``, ``base``, ``head``); the model shares its layers,
    so it follows the member's weights. ``name`` defaults to the member's
    name followed by ``_features``.
    """
    inputs = keras.Input(member.input_shape[1:], name="image")
    features = member.get_layer("base")(member.get_layer("preprocess")(inputs))
    pooled = keras.layers.GlobalAveragePooling2D(name="pooled")(features)
    return keras.Model(inputs, [pooled, member.get_layer("head")(features)], name=name or f"{member.name}_features")


def bagging_member(size: int, *, required: bool) -> keras.Model:
    """Stage 1: an Inception-ResNet-V2 classifier whose whole network trains.

    The report trains each member from its ImageNet weights on its set; the
    head is the network's global average pool (the 1536-d penultimate layer
    the combined model reuses) and one sigmoid unit, equivalent to the
    report's two-way softmax. ``required`` follows the profile: without
    weights, ``smoke`` and ``demo`` start from random ones (and say so).
    """
    model = transfer_classifier("inception_resnet_v2", size, dense=None, dropout=None, required=required)
    model.get_layer("base").trainable = True
    return model


class MemberTrainer:
    """Trains bagging members one after another, all from the same initial weights, with one traced network.

    Report 2 starts models A and B from the same ImageNet weights and trains
    each on its set (Sec. 2.4) with RMSprop at its default rate, at most
    ``spec.epochs``, learning rate x 0.1 after ``spec.reduce_lr_patience``
    epochs without a better validation score (``spec.monitor``) and early
    stopping after ``spec.patience`` (best weights kept; Sec. 2.5). Tracing
    Inception-ResNet-V2's training step costs over a minute on 2 cores, so
    one network is built and compiled once, and before each member its
    weights and its optimiser's state are set back to the start.

    Parameters
    ----------
    model
        An uncompiled transfer classifier (layers ``preprocess``, ``base``,
        ``head``): :func:`bagging_member` for the report's members.
    spec
        The profile's :class:`~cytobook.profiles.BaggingSpec`.
    seed
        Seeds the members' shuffling once, when the trainer is made: each
        member's draws follow from its place in the order of training.
    """

    def __init__(self, model: keras.Model, spec, *, seed: int):
        self.spec, self.seed = spec, seed
        self.model = compile_binary(model, "rmsprop", spec.learning_rate)
        self.extractor = features_and_probabilities(self.model)
        self.initial_weights = self.model.get_weights()
        # Once, not before each member: reseeding clears TensorFlow's caches of the traced network (~10 s a member).
        keras.utils.set_random_seed(seed)

    def train(self, name: str, data: SplitArrays, stage_two_images: np.ndarray) -> tuple[Trained, dict[str, np.ndarray]]:
        """Train a member on ``data`` from the initial weights.

        Parameters
        ----------
        name
            The member's name (``model_a``...).
        data
            Its set as the training arrays; validation and test arrays.
        stage_two_images
            The training images of the combined model (all training cells,
            each once), whose pooled features it learns from.

        Returns
        -------
        tuple
            The :class:`~cytobook.training.Trained` member (history, validation
            and test probabilities, settings) and its pooled features of
            ``stage_two_images``, validation and test images, by ``"train"``,
            ``"val"`` and ``"test"``, computed before the network is reset for
            the next member. The member's ``model`` is the trainer's network:
            valid until the next call.
        """
        self.model.set_weights(self.initial_weights)
        optimizer = self.model.optimizer
        for variable in optimizer.variables:  # iterations and RMSprop's moving averages
            variable.assign(np.zeros(variable.shape, dtype=variable.dtype))
        optimizer.learning_rate = self.spec.learning_rate  # ReduceLROnPlateau lowered it
        callbacks = []
        if getattr(self.model, "imagenet_weights", None) is None:  # random start: see BatchNormRecalibration
            sample = np.random.default_rng(self.seed).permutation(len(data.x_train))[:256]
            callbacks.append(BatchNormRecalibration(data.x_train[sample]))
        history = fit(self.model, data, epochs=self.spec.epochs, batch_size=self.spec.batch_size,
                      patience=self.spec.patience, reduce_lr_patience=self.spec.reduce_lr_patience,
                      monitor=self.spec.monitor, callbacks=callbacks)
        # One pass per image set gives both the features and the member's probabilities.
        outputs = {key: self._features_and_probabilities(images)
                   for key, images in (("train", stage_two_images), ("val", data.x_val), ("test", data.x_test))}
        member = Trained(name, self.model, history, p_val=outputs["val"][1], p_test=outputs["test"][1],
                         settings={"optimizer": "rmsprop", "learning_rate": self.spec.learning_rate,
                                   "epochs_run": len(history["loss"]), "training_images": len(data.x_train)})
        return member, {key: features for key, (features, _) in outputs.items()}

    def _features_and_probabilities(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not len(images):
            return np.zeros((0, self.extractor.output[0].shape[-1]), dtype="float32"), np.zeros(0)
        pooled, p = self.extractor.predict(images, batch_size=self.spec.batch_size, verbose=0)
        return np.asarray(pooled), np.asarray(p, dtype=float).ravel()


def train_combined(features: SplitArrays, spec, *, class_weight: dict[int, float], seed: int,
                   name: str = "combined", verbose: int = 2) -> Trained:
    """Stage 2: the combined head trained on the members' cached features of all training cells.

    ``features`` holds, in place of images, one array per member (from
    :meth:`MemberTrainer.train`) for each of train, validation and test. The
    schedule is the members' (:class:`MemberTrainer`), for at most
    ``spec.combined_epochs``; ``class_weight`` weights
    the loss per class label (the report: ``{0: 1.0, 1: 2.5}``, ALL = 1);
    ``verbose`` as in :func:`cytobook.training.fit`.
    """
    keras.utils.set_random_seed(seed)
    head = combined_head([block.shape[1] for block in features.x_train])
    head.compile(optimizer=make_optimizer("rmsprop", spec.learning_rate), loss="sparse_categorical_crossentropy",
                 metrics=["accuracy"])
    history = fit(head, features, epochs=spec.combined_epochs, batch_size=spec.batch_size, patience=spec.patience,
                  reduce_lr_patience=spec.reduce_lr_patience, monitor=spec.monitor, class_weight=class_weight,
                  verbose=verbose)
    return Trained(name, head, history, p_val=predict_proba(head, features.x_val),
                   p_test=predict_proba(head, features.x_test),
                   settings={"class_weight": dict(class_weight), "epochs_run": len(history["loss"])})


def class_weight_trade_off(features: SplitArrays, spec, weights: Sequence[float], *,
                           seeds: Sequence[int]) -> pd.DataFrame:
    """Stage 2 trained again at each loss weight of ALL, once per seed: test recall of each class.

    The members' cached ``features`` (as for :func:`train_combined`) stay the
    same; only the weight of ALL (HEM: 1.0) and the seed of the head's
    initialisation and shuffling change, so the spread over seeds shows how
    much of a difference between weights is chance.

    Returns
    -------
    pandas.DataFrame
        One row per weight (index ``ALL weight``): the mean and standard
        deviation over ``seeds`` of the recall of ALL and of HEM and of the
        weighted F1 (columns ``recall ALL mean``, ``recall ALL sd``...), and
        ``epochs mean``.
    """
    rows = []
    for weight in weights:
        for seed in seeds:
            trained = train_combined(features, spec, class_weight={0: 1.0, 1: float(weight)}, seed=seed, verbose=0)
            scores = binary_report(features.y_test, trained.p_test)
            rows.append({"ALL weight": float(weight), "recall ALL": scores["recall"]["ALL"],
                         "recall HEM": scores["recall"]["HEM"], "weighted F1": scores["weighted_f1"],
                         "epochs": len(trained.history["loss"])})
    runs = pd.DataFrame(rows).groupby("ALL weight")
    table = runs[["recall ALL", "recall HEM", "weighted F1"]].agg(["mean", "std"])
    table.columns = [f"{metric} {'sd' if stat == 'std' else 'mean'}" for metric, stat in table.columns]
    table["epochs mean"] = runs["epochs"].mean()
    return table
