"""Report 4's training mechanics: patient bags, their batches, training, prediction and cross-validation.

The lymphocytosis notebooks say *which* model is trained on *which* patients;
this module does the rest the same way for every model. :class:`Bags` holds
each patient's images (or a frozen backbone's per-image features), handmade
features, age, lymphocyte count and label; :class:`Standardizer` learns their
scaling on training patients only; :class:`BagBatches` feeds several padded
bags per step; :class:`MilTrainer` compiles a model once and trains it on
every fold with the report's recipe; :func:`cross_validate` runs any model or
baseline on the same stratified folds; :func:`cv_table`, :func:`count_nmse`
and :func:`gate_figure` read the results.

The multitask head's target is the standardised log lymphocyte count, so its
mean squared error is a normalised MSE (NMSE) of the log count. *Our choice*:
the report normalises the count's own MSE; the log scale keeps a few patients
with counts near 300 from dominating a loss over counts mostly below 30.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import cv2
import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from keras import ops
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedKFold, train_test_split

from .io import cache_dir, read_image
from .models.mil import analysis_model, balanced_class_weights
from .profiles import MilSpec


@dataclass
class Bags:
    """Patients as bags of instances, aligned by position.

    Attributes
    ----------
    patient_ids
        ``"P26"``... one per patient.
    instances
        Per patient, ``(n_i, H, W, 3)`` uint8 images or ``(n_i, D)`` float
        features of a frozen backbone; with ``views``, ``(n_i, V, ...)``.
    handmade
        Per patient, ``(n_i, F)`` raw handmade features (NaN where the nucleus
        was not found).
    age, lymph_count
        ``(P,)`` years and lymphocytes per microlitre (×10^9/L).
    labels
        ``(P,)`` 1 malignant, 0 reactive, -1 unknown (test patients).
    views
        Whether each instance comes as ``V`` precomputed views (a frozen
        backbone's features of the image and of its flips, view 0 the image
        itself): training draws one view per instance, evaluation takes view 0.
    """

    patient_ids: list[str]
    instances: list[np.ndarray]
    handmade: list[np.ndarray]
    age: np.ndarray
    lymph_count: np.ndarray
    labels: np.ndarray
    views: bool = False

    def __post_init__(self) -> None:
        sizes = {len(self.patient_ids), len(self.instances), len(self.handmade), len(self.age), len(self.lymph_count), len(self.labels)}
        if len(sizes) != 1:
            raise ValueError(f"bags are misaligned: lengths {sizes}")
        for pid, inst, hand in zip(self.patient_ids, self.instances, self.handmade):
            if len(inst) == 0:
                raise ValueError(f"patient {pid} has no images: every bag needs at least one")
            if len(inst) != len(hand):
                raise ValueError(f"patient {pid}: {len(inst)} instances but {len(hand)} rows of handmade features")

    def __len__(self) -> int:
        return len(self.patient_ids)

    def subset(self, index: Sequence[int] | np.ndarray) -> "Bags":
        """The patients at positions ``index``, in that order."""
        index = np.asarray(index, dtype=int)
        return Bags(
            [self.patient_ids[i] for i in index], [self.instances[i] for i in index],
            [self.handmade[i] for i in index], self.age[index], self.lymph_count[index], self.labels[index], self.views,
        )

    def with_instances(self, instances: list[np.ndarray], views: bool = False) -> "Bags":
        """The same patients with other instances (e.g. a backbone's features instead of images)."""
        return replace(self, instances=instances, views=views)

    def instance_shape(self, bag_size: int) -> tuple[int, ...]:
        """A model's ``instances`` input for bags of ``bag_size`` slots: ``(bag_size, *one instance)``."""
        return (bag_size, *self.instances[0].shape[2 if self.views else 1:])

    def split_instances(self, flat: np.ndarray) -> list[np.ndarray]:
        """Cut a ``(sum n_i, ...)`` array of per-image values back into bags."""
        sizes = [len(bag) for bag in self.instances]
        if len(flat) != sum(sizes):
            raise ValueError(f"{len(flat)} rows for {sum(sizes)} images")
        return list(np.split(flat, np.cumsum(sizes)[:-1]))


def build_bags(patients: pd.DataFrame, images: pd.DataFrame, handmade: pd.DataFrame, image_size: int, workers: int = 8) -> Bags:
    """Read every patient's images, resized to ``image_size``, into :class:`Bags`.

    ``patients`` and ``images`` are the tables of :func:`cytobook.datasets.dlmi.load_dlmi`,
    ``handmade`` the features by image path (:func:`cytobook.handmade.features_table`);
    images are resized with area interpolation.
    """
    missing = set(images["path"]) - set(handmade.index)
    if missing:
        raise KeyError(f"no handmade features for {len(missing)} images, e.g. {sorted(missing)[0]}")

    def load(path: str) -> np.ndarray:
        image = read_image(path)
        if image.shape[:2] != (image_size, image_size):
            image = cv2.resize(image, (image_size, image_size), interpolation=cv2.INTER_AREA)
        return image

    by_patient = images.groupby("patient_id", sort=False)["path"].apply(list)
    bag_images, bag_features = [], []
    with ThreadPoolExecutor(workers) as pool:
        for pid in patients["patient_id"]:
            if pid not in by_patient.index:
                raise ValueError(f"patient {pid} has no images")
            paths = by_patient[pid]
            bag_images.append(np.stack(list(pool.map(load, paths))))
            bag_features.append(handmade.loc[paths].to_numpy(dtype=np.float32))
    return Bags(
        list(patients["patient_id"]), bag_images, bag_features,
        patients["age"].to_numpy(float), patients["lymph_count"].to_numpy(float), patients["label"].to_numpy(int),
    )


@dataclass
class Standardizer:
    """Scaling learnt on training bags: handmade features per column, age and log count, and frozen features.

    Missing handmade values (no nucleus found) become the training mean,
    i.e. 0 after scaling. Per-image feature vectors of a frozen backbone
    (bags with ``views`` of ``(n_i, V, D)``) are scaled per feature too
    (*our choice*: the report does not say; a linear layer on scaled
    features can express the same functions, and trains well even when a
    backbone's features span very different ranges, as random weights' do).
    """

    handmade_mean: np.ndarray
    handmade_std: np.ndarray
    clinical_mean: np.ndarray
    clinical_std: np.ndarray
    instance_mean: np.ndarray | None = None
    instance_std: np.ndarray | None = None

    @classmethod
    def fit(cls, bags: Bags) -> "Standardizer":
        """Learn the scaling from ``bags`` (training patients only)."""
        handmade = np.concatenate(bags.handmade)
        clinical = clinical_matrix(bags)
        instance_mean = instance_std = None
        if bags.views and bags.instances[0].ndim == 3:
            vectors = np.concatenate([bag.reshape(-1, bag.shape[-1]) for bag in bags.instances])
            std = vectors.std(axis=0)
            # A feature nearly constant on the training images would turn a test image's small
            # difference into a huge value: no scale below a hundredth of the typical one.
            instance_mean, instance_std = vectors.mean(axis=0), np.maximum(std, 0.01 * np.median(_nonzero(std)))
        return cls(
            np.nanmean(handmade, axis=0), _nonzero(np.nanstd(handmade, axis=0)),
            clinical.mean(axis=0), _nonzero(clinical.std(axis=0)), instance_mean, instance_std,
        )

    def handmade(self, values: np.ndarray) -> np.ndarray:
        """Scaled ``(n, F)`` handmade features, NaN imputed by the training mean."""
        scaled = (values - self.handmade_mean) / self.handmade_std
        return np.nan_to_num(scaled, nan=0.0).astype(np.float32)

    def clinical(self, bags: Bags) -> np.ndarray:
        """Scaled ``(P, 2)`` age and log lymphocyte count."""
        return ((clinical_matrix(bags) - self.clinical_mean) / self.clinical_std).astype(np.float32)

    def instances(self, values: np.ndarray) -> np.ndarray:
        """Frozen features scaled as the training ones were; anything else as it is."""
        if self.instance_mean is None:
            return values
        return ((values - self.instance_mean) / self.instance_std).astype(np.float32)


def clinical_matrix(bags: Bags) -> np.ndarray:
    """``(P, 2)`` age in years and log lymphocyte count (the count is heavy-tailed)."""
    return np.column_stack([bags.age, np.log(bags.lymph_count)])


def _nonzero(std: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(std) & (std > 0), std, 1.0)


def bag_indices(n: int, size: int, rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
    """Which of a bag's ``n`` images fill ``size`` slots, and each slot's weight.

    A larger bag is subsampled without replacement (at random with ``rng``,
    else evenly spaced, for a deterministic evaluation); a smaller one is
    padded with slots of weight zero (they repeat image 0, which they do not
    count). Weights sum to one, so the weighted sum is the plain mean over
    the images used.
    """
    if n < 1:
        raise ValueError("a bag needs at least one image")
    if n >= size:
        chosen = np.sort(rng.choice(n, size, replace=False)) if rng is not None else np.linspace(0, n - 1, size).round().astype(int)
        return chosen, np.full(size, 1.0 / size, dtype=np.float32)
    chosen = np.concatenate([np.arange(n), np.zeros(size - n, dtype=int)])
    weights = np.concatenate([np.full(n, 1.0 / n), np.zeros(size - n)]).astype(np.float32)
    return chosen, weights


def check_labelled(bags: Bags, role: str = "training") -> None:
    """Raise ``ValueError`` naming the patients whose label is not 0 or 1 (test patients, -1)."""
    unlabelled = [pid for pid, label in zip(bags.patient_ids, bags.labels) if label not in (0, 1)]
    if unlabelled:
        raise ValueError(f"{len(unlabelled)} {role} patients have no label 0 or 1 (e.g. {unlabelled[0]}, label "
                         f"{bags.labels[bags.patient_ids.index(unlabelled[0])]}): test patients cannot be trained or validated on")


class BagBatches(keras.utils.PyDataset):
    """Batches of padded bags, as the inputs, targets and sample weights of :func:`cytobook.models.mil.mixture_of_experts`.

    Parameters
    ----------
    bags, standardizer
        The patients, and the scaling learnt on the training patients.
    bag_size
        Fixed number of instance slots (see :func:`bag_indices`).
    batch_size
        Bags per batch. The report accumulates the losses of ``bs`` bags,
        one at a time, before each optimiser step; a batch of ``bs`` padded
        bags gives the same mean loss in one pass.
    shuffle
        Shuffle the patients, redraw subsamples and views every epoch
        (training); otherwise a fixed order, evenly spaced subsamples and view 0.
    seed
        Seed of the shuffling and subsampling.
    targets
        The targets given, those of the model's outputs (a one-task model has no ``count``).
    class_weights
        ``(w0, w1)``: each bag's sample weight in the BCE (the report's class
        weighting, :func:`cytobook.models.mil.balanced_class_weights`); the
        count loss weighs every bag alike. ``None``: no targets (prediction).
    """

    def __init__(self, bags: Bags, standardizer: Standardizer, bag_size: int, batch_size: int, *, shuffle: bool = False,
                 seed: int = 0, targets: Sequence[str] = ("p", "count"),
                 class_weights: tuple[float, float] | None = None) -> None:
        super().__init__()
        if class_weights is not None:
            check_labelled(bags)
        self.bags = bags
        self.standardizer = standardizer
        self.bag_size = bag_size
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.targets = tuple(targets)
        self.class_weights = class_weights
        self.rng = np.random.default_rng(seed)
        self.handmade = [standardizer.handmade(values) for values in bags.handmade]
        self.clinical = standardizer.clinical(bags)
        self.order = np.arange(len(bags))
        self.on_epoch_end()

    def __len__(self) -> int:
        return -(-len(self.bags) // self.batch_size)

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.rng.shuffle(self.order)

    def _bag(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rng = self.rng if self.shuffle else None
        instances = self.bags.instances[i]
        chosen, weights = bag_indices(len(instances), self.bag_size, rng)
        instances = instances[chosen]
        if self.bags.views:
            view = rng.integers(instances.shape[1], size=len(chosen)) if rng is not None else np.zeros(len(chosen), int)
            instances = instances[np.arange(len(chosen)), view]
        return self.standardizer.instances(instances), weights, self.handmade[i][chosen]

    def __getitem__(self, step: int):
        rows = self.order[step * self.batch_size : (step + 1) * self.batch_size]
        instances, weights, handmade = zip(*(self._bag(int(i)) for i in rows))
        inputs = {"instances": np.stack(instances), "weights": np.stack(weights), "handmade": np.stack(handmade),
                  "clinical": self.clinical[rows]}
        if self.class_weights is None:
            return (inputs,)
        labels = self.bags.labels[rows].astype(np.float32)[:, None]
        targets = {"p": labels, "count": self.clinical[rows, 1:2]}
        w0, w1 = self.class_weights
        sample_weights = {"p": np.where(labels[:, 0] == 1, w1, w0).astype(np.float32),
                          "count": np.ones(len(rows), np.float32)}
        return inputs, {key: targets[key] for key in self.targets}, {key: sample_weights[key] for key in self.targets}


@dataclass
class TrainedMil:
    """A trained multi-instance model with what is needed to apply it to new patients."""

    model: keras.Model
    standardizer: Standardizer
    bag_size: int
    batch_size: int
    history: dict[str, list[float]] = field(default_factory=dict)
    viewer: keras.Model | None = None

    def predict(self, bags: Bags) -> pd.DataFrame:
        """Per patient: ``p`` and, where the model has them, ``pi``, ``p_image``, ``p_scalar``, ``count``.

        One batched pass over all patients; ``count`` is converted back to
        lymphocytes per microlitre.
        """
        viewer = self.viewer or analysis_model(self.model)
        outputs = viewer.predict(BagBatches(bags, self.standardizer, self.bag_size, self.batch_size), verbose=0)
        table = pd.DataFrame({key: np.asarray(value).reshape(-1) for key, value in outputs.items()},
                             index=pd.Index(bags.patient_ids, name="patient_id"))
        if "count" in table:
            log_count = table["count"] * self.standardizer.clinical_std[1] + self.standardizer.clinical_mean[1]
            table["count"] = np.exp(log_count)
        table["label"] = bags.labels
        table["lymph_count"] = bags.lymph_count
        table["age"] = bags.age
        return table


class MilTrainer:
    """One model of :func:`cytobook.models.mil.mixture_of_experts`, compiled once and trained on any patients.

    The report's recipe: AdamW at ``spec.learning_rate`` on batches of
    ``spec.bags_per_step`` bags, the class-weighted BCE (plus the count's
    NMSE, for a multitask model, weighted by ``count_weight``), the learning
    rate divided by ten after ``spec.lr_patience`` epochs without a lower
    validation loss, early stopping after ``spec.stop_patience`` and the
    best weights kept.

    Every :meth:`fit` starts from the same initial weights with a fresh
    optimiser state and learning rate, so the folds of a cross-validation
    are independent; the compiled training and prediction functions are
    reused (building and compiling a model per fold cost more than training
    it on a CPU).

    Parameters
    ----------
    build
        Returns the uncompiled model (called once, after seeding with ``seed``).
    spec
        The profile's :class:`~cytobook.profiles.MilSpec`.
    count_weight
        Weight of the count loss beside the BCE, for a multitask model.
    """

    def __init__(self, build: Callable[[], keras.Model], spec: MilSpec, *, count_weight: float = 1.0, seed: int = 0) -> None:
        keras.utils.set_random_seed(seed)
        self.model = build()
        self.spec = spec
        self.bag_size = self.model.input["instances"].shape[1]  # every bag is padded or subsampled to it
        self.targets = tuple(self.model.output)
        self.model.compile(
            optimizer=keras.optimizers.AdamW(spec.learning_rate),
            loss={"p": "binary_crossentropy", "count": "mse"} if "count" in self.targets else {"p": "binary_crossentropy"},
            loss_weights={"p": 1.0, "count": count_weight} if "count" in self.targets else {"p": 1.0},
        )
        self.initial_weights = self.model.get_weights()
        self.viewer = analysis_model(self.model)

    def _reset(self) -> None:
        self.model.set_weights(self.initial_weights)
        optimizer = self.model.optimizer
        for variable in optimizer.variables:  # moments and the step counter
            variable.assign(ops.zeros(variable.shape, variable.dtype))
        optimizer.learning_rate = self.spec.learning_rate

    def fit(self, train: Bags, val: Bags, *, seed: int = 0, verbose: int = 0) -> TrainedMil:
        """Train on ``train``, with ``val`` driving the schedule and early stopping."""
        check_labelled(train)
        check_labelled(val, "validation")
        self._reset()
        standardizer = Standardizer.fit(train)
        weights = balanced_class_weights(train.labels)

        def batches(bags: Bags, shuffle: bool) -> BagBatches:
            return BagBatches(bags, standardizer, self.bag_size, self.spec.bags_per_step, shuffle=shuffle, seed=seed,
                              targets=self.targets, class_weights=weights)

        callbacks = [
            keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.1, patience=self.spec.lr_patience),
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=self.spec.stop_patience, restore_best_weights=True),
        ]
        result = self.model.fit(batches(train, True), validation_data=batches(val, False), epochs=self.spec.epochs,
                                callbacks=callbacks, verbose=verbose)
        history = {key: [float(v) for v in values] for key, values in result.history.items()}
        return TrainedMil(self.model, standardizer, self.bag_size, self.spec.bags_per_step, history, self.viewer)


# --------------------------------------------------------------------------- #
# Splits, cross-validation and baselines                                      #
# --------------------------------------------------------------------------- #


def stratified_folds(labels: np.ndarray, n_folds: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train, test)`` positions of a stratified ``n_folds``-fold split of the labelled patients."""
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [(train, test) for train, test in folds.split(np.zeros(len(labels)), labels)]


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(keep, held_out)`` positions, ``fraction`` of each class held out (at least one patient of each)."""
    positions = np.arange(len(labels))
    n_held = max(int(round(fraction * len(labels))), len(np.unique(labels)))
    keep, held = train_test_split(positions, test_size=n_held, stratify=labels, random_state=seed)
    return np.sort(keep), np.sort(held)


def balanced_accuracy(labels: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> float:
    """Balanced accuracy of ``p > threshold`` (the challenge's metric)."""
    return float(balanced_accuracy_score(np.asarray(labels, dtype=int), (np.asarray(p) > threshold).astype(int)))


@dataclass
class CvResult:
    """Out-of-fold predictions and per-fold balanced accuracy of one model.

    Attributes
    ----------
    name
        The model's name in tables.
    predictions
        One row per patient (``p`` and, for the mixture, ``pi`` and both
        experts), predicted by the fold that held the patient out, with its
        ``fold``.
    fold_scores
        Balanced accuracy on each held-out fold.
    """

    name: str
    predictions: pd.DataFrame
    fold_scores: list[float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.fold_scores))

    @property
    def std(self) -> float:
        return float(np.std(self.fold_scores))

    def summary(self) -> dict:
        """Mean and standard deviation of the fold scores, and the scores themselves."""
        return {"balanced_accuracy": self.mean, "balanced_accuracy_std": self.std, "fold_balanced_accuracy": self.fold_scores}


def cross_validate(
    name: str,
    fit_predict: Callable[[Bags, Bags, Bags, int], pd.DataFrame],
    bags: Bags,
    folds: list[tuple[np.ndarray, np.ndarray]],
    *,
    validation_fraction: float = 0.2,
    seed: int = 0,
) -> CvResult:
    """Run ``fit_predict(train, val, test, seed)`` on each fold; collect the held-out predictions.

    Inside each fold a stratified ``validation_fraction`` of the training
    patients is set aside for early stopping, so the held-out fold is never
    used for any decision.
    """
    tables, scores = [], []
    for index, (train_pos, test_pos) in enumerate(folds):
        inner_train, inner_val = stratified_holdout(bags.labels[train_pos], validation_fraction, seed + index)
        train, val = bags.subset(train_pos[inner_train]), bags.subset(train_pos[inner_val])
        test = bags.subset(test_pos)
        table = fit_predict(train, val, test, seed + index).assign(fold=index)
        scores.append(balanced_accuracy(test.labels, table["p"].to_numpy()))
        tables.append(table)
    return CvResult(name, pd.concat(tables).loc[bags.patient_ids], scores)


def mil_fit_predict(
    trainer: MilTrainer, histories: list[dict[str, list[float]]] | None = None
) -> Callable[[Bags, Bags, Bags, int], pd.DataFrame]:
    """A ``fit_predict`` for :func:`cross_validate` that trains ``trainer``'s model on each fold.

    Each fold's training history is appended to ``histories`` when given (for learning curves).
    """

    def fit_predict(train: Bags, val: Bags, test: Bags, seed: int) -> pd.DataFrame:
        trained = trainer.fit(train, val, seed=seed)
        if histories is not None:
            histories.append(trained.history)
        return trained.predict(test)

    return fit_predict


def clinical_logistic_fit_predict(train: Bags, val: Bags, test: Bags, seed: int) -> pd.DataFrame:
    """The baseline: a class-balanced logistic regression on age and log lymphocyte count alone.

    Uses training and validation patients together (it has nothing to stop
    early); a ``fit_predict`` for :func:`cross_validate`.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    both = Bags(
        train.patient_ids + val.patient_ids, train.instances + val.instances, train.handmade + val.handmade,
        np.concatenate([train.age, val.age]), np.concatenate([train.lymph_count, val.lymph_count]),
        np.concatenate([train.labels, val.labels]),
    )
    check_labelled(both)
    model = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", random_state=seed))
    model.fit(clinical_matrix(both), both.labels)
    p = model.predict_proba(clinical_matrix(test))[:, 1]
    return pd.DataFrame({"p": p, "label": test.labels, "lymph_count": test.lymph_count, "age": test.age},
                        index=pd.Index(test.patient_ids, name="patient_id"))


# --------------------------------------------------------------------------- #
# Image instances: frozen backbone features and the chapter's models           #
# --------------------------------------------------------------------------- #

#: The report's random flips, as the views cached for a frozen backbone (view 0: the image itself).
FLIPS: tuple[tuple[int, ...], ...] = ((), (2,), (1,), (1, 2))


def backbone_features(encoder: keras.Model, bags: Bags, *, cache: str | None = None, batch_size: int = 64) -> Bags:
    """The same patients with a frozen ``encoder``'s features of every image and of its three flips.

    Each instance becomes ``(4, ...)`` views (:data:`FLIPS`: none,
    horizontal, vertical, both), so training draws the report's random
    flips without running the encoder again. The features depend on no
    label, so one pass serves every fold. With ``cache`` (a name that
    identifies the encoder, its weights and the images, e.g. from
    :func:`features_cache_name`), they are kept in
    ``cache_dir()/features/<cache>.npy`` and read from there by later
    notebooks and runs.
    """
    path = cache_dir() / "features" / f"{cache}.npy" if cache else None
    if path is not None and path.is_file():
        flat = np.load(path)
    else:
        images = np.concatenate(bags.instances)
        flat = np.stack([encoder.predict(np.flip(images, axis) if axis else images, batch_size=batch_size, verbose=0)
                         for axis in FLIPS], axis=1).astype(np.float32)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(temporary, flat)
            temporary.replace(path)  # whole or absent, never a truncated file
    return bags.with_instances(bags.split_instances(flat), views=True)


def features_cache_name(encoder: keras.Model, weights: str | None, seed: int, bags: Bags) -> str:
    """A name for :func:`backbone_features`'s cache: the encoder, its weights and the images' pixels.

    Random weights depend on the seed they were drawn with.
    """
    digest = hashlib.sha256(f"{encoder.name}|{encoder.count_params()}|{weights or f'random-{seed}'}".encode())
    for images in bags.instances:
        digest.update(np.ascontiguousarray(images).data)
    return f"{encoder.name}-{digest.hexdigest()[:20]}"


@dataclass(frozen=True)
class ChapterModel:
    """One model of the chapter's tables: its experts, its image encoder and whether it is multitask.

    Attributes
    ----------
    name
        Its row in the tables.
    experts
        ``"mixture"``, ``"image"`` or ``"scalar"``.
    encoder
        What the image expert reads: ``"none"``; ``"frozen"`` (cached
        features of the profile's pretrained backbone, then the report's
        intermediate linear layer); ``"last stage"`` (that backbone's last
        stage, tuned on cached inputs); ``"resnet18"`` (a ResNet-18 trained
        whole); ``"vit_lora"`` (a ViT-Small adapted with LoRA).
    multitask
        Whether it also regresses the lymphocyte count.
    report_column
        The column of the report's Table 1 it stands for, if any.
    """

    name: str
    experts: str
    encoder: str
    multitask: bool
    report_column: str | None = None


#: Every model of notebooks 31 (the experts, on the frozen backbone) and 32 (the report's Table 1).
CHAPTER_MODELS: dict[str, ChapterModel] = {
    model.name: model
    for model in (
        ChapterModel("scalar expert", "scalar", "none", False),
        ChapterModel("image expert (frozen backbone)", "image", "frozen", False),
        ChapterModel("mixture, frozen backbone, OneTask", "mixture", "frozen", False),
        ChapterModel("mixture, frozen backbone, MultiTask", "mixture", "frozen", True, "ConvNext frozen"),
        ChapterModel("mixture, ResNet-18, OneTask", "mixture", "resnet18", False, "ResNet OneTask"),
        ChapterModel("mixture, ResNet-18, MultiTask", "mixture", "resnet18", True, "ResNet MultiTask"),
        ChapterModel("mixture, backbone last stage tuned, MultiTask", "mixture", "last stage", True, "ConvNext tuned"),
        ChapterModel("mixture, ViT + LoRA, MultiTask", "mixture", "vit_lora", True, "Vit LoRA"),
    )
}


#: Encoders trained on the images at every step, and (with the last stage) those run at every step.
TRAINED_ENCODERS = ("resnet18", "vit_lora")
STEPPED_ENCODERS = (*TRAINED_ENCODERS, "last stage")


def spec_for(model: ChapterModel, spec: MilSpec) -> MilSpec:
    """The settings ``model`` trains with.

    An encoder run at every step has its own bag slots and epochs, and an
    encoder trained on the images its own image size (the last stage reads
    the backbone's maps, at the backbone's size).
    """
    if model.encoder not in STEPPED_ENCODERS:
        return spec
    spec = replace(spec, max_instances=spec.encoder_instances, epochs=spec.encoder_epochs)
    return replace(spec, image_size=spec.encoder_image_size) if model.encoder in TRAINED_ENCODERS else spec


def chapter_trainer(
    model: ChapterModel, spec: MilSpec, instances: Bags, *, intermediate: int, count_weight: float, seed: int,
    last_stage: keras.Model | None = None, vit_weights: str | None = None,
) -> MilTrainer:
    """A :class:`MilTrainer` of one of :data:`CHAPTER_MODELS`, with its settings (:func:`spec_for`).

    ``instances`` are the bags it reads (:func:`prepare_instances`);
    ``intermediate`` the width of the linear layer after a frozen backbone;
    ``last_stage`` the backbone's last stage for ``"last stage"``;
    ``vit_weights`` a weight file for the ViT (``None``: random).
    """
    from .handmade import FEATURE_NAMES
    from .models import mil

    spec = spec_for(model, spec)
    shape = instances.instance_shape(spec.max_instances)
    options = {"experts": model.experts, "multitask": model.multitask, "name": model.encoder.replace(" ", "_")}

    def build() -> keras.Model:
        encoder = None
        if model.encoder == "resnet18":
            encoder = mil.resnet18_like(spec.image_size, width=spec.encoder_width)
        elif model.encoder == "vit_lora":
            dim, depth, heads = spec.vit
            encoder = mil.vit_small(spec.image_size, spec.vit_patch, dim, depth, heads)
            if vit_weights:
                encoder.load_weights(vit_weights)
            mil.enable_lora(encoder, spec.lora_rank)
        elif model.encoder == "last stage":
            if last_stage is None:
                raise ValueError(f"{model.name} needs the backbone's last stage")
            encoder = last_stage
        return mil.mixture_of_experts(shape, len(FEATURE_NAMES), encoder=encoder,
                                      intermediate=intermediate if model.encoder == "frozen" else None, **options)

    return MilTrainer(build, spec, count_weight=count_weight, seed=seed)


def prepare_instances(model: ChapterModel, bags: Bags, spec: MilSpec, *, seed: int, required: bool) -> tuple[Bags, keras.Model | None, str]:
    """What ``model`` reads, from bags of images: ``(instances, last_stage, weights)``.

    Images at the model's size (:func:`spec_for`) for a trained encoder; :func:`without_images` for
    the scalar expert; for ``"frozen"`` and ``"last stage"``, the cached
    :func:`backbone_features` of ``spec.backbone`` (whole, or its front
    before the last stage, which is returned to be tuned). ``weights`` says
    where the backbone's weights came from: ``"ImageNet"``, ``"random"``
    (smoke and demo without the file, as :func:`cytobook.weights.build_backbone`
    prints) or ``"—"`` without a backbone. ``required`` is the profile's
    ``imagenet_required``.
    """
    from .models.mil import split_last_stage
    from .weights import build_backbone

    if model.encoder == "none":
        return without_images(bags), None, "—"
    if model.encoder in TRAINED_ENCODERS:
        return resized(bags, spec_for(model, spec).image_size), None, "—"
    keras.utils.set_random_seed(seed)  # random weights, when there is no ImageNet file, are the seed's
    size = bags.instances[0].shape[1]
    base = build_backbone(spec.backbone, (size, size, 3), required=required, pooling="avg")
    weights = "ImageNet" if base.imagenet_weights else "random"
    encoder, last_stage = (base, None) if model.encoder == "frozen" else split_last_stage(base, spec.backbone)
    cache = features_cache_name(encoder, str(base.imagenet_weights) if base.imagenet_weights else None, seed, bags)
    return backbone_features(encoder, bags, cache=cache), last_stage, weights


def resized(bags: Bags, size: int) -> Bags:
    """The same patients with every image resized to ``size`` (area interpolation, as :func:`build_bags`)."""
    if bags.instances[0].shape[1] == size:
        return bags
    return bags.with_instances([np.stack([cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA) for image in bag])
                                for bag in bags.instances])


def without_images(bags: Bags) -> Bags:
    """The same patients with a one-column placeholder instead of images (for the scalar expert, which reads none)."""
    return bags.with_instances([np.zeros((len(instances), 1), np.float32) for instances in bags.instances])


# --------------------------------------------------------------------------- #
# Reading the results                                                         #
# --------------------------------------------------------------------------- #


def cv_table(results: Mapping[str, CvResult | Mapping]) -> pd.DataFrame:
    """Balanced accuracy of each model: mean and standard deviation over the folds, and each fold.

    ``results`` maps a model's name to its :class:`CvResult` or to the
    :meth:`CvResult.summary` an earlier notebook saved in its metrics.
    """
    rows = {}
    for name, result in results.items():
        summary = result.summary() if isinstance(result, CvResult) else result
        row = {"balanced accuracy": summary["balanced_accuracy"], "std": summary["balanced_accuracy_std"]}
        row.update({f"fold {k}": score for k, score in enumerate(summary["fold_balanced_accuracy"])})
        rows[name] = row
    return pd.DataFrame(rows).T.round(4)


def gain_table(results: Mapping[str, CvResult], model: str, baselines: Sequence[str]) -> pd.DataFrame:
    """How ``model`` fares against each baseline on the same folds.

    One row per baseline: the difference of mean balanced accuracy
    (``model`` minus baseline) and the folds where ``model`` scores higher,
    the same, and lower.
    """
    ours = np.asarray(results[model].fold_scores)
    rows = []
    for baseline in baselines:
        theirs = np.asarray(results[baseline].fold_scores)
        if len(theirs) != len(ours):
            raise ValueError(f"{model} and {baseline} were not scored on the same folds")
        rows.append({"model": model, "against": baseline, "gain in balanced accuracy": round(float(ours.mean() - theirs.mean()), 4),
                     "folds won": int((ours > theirs).sum()), "tied": int((ours == theirs).sum()),
                     "lost": int((ours < theirs).sum())})
    return pd.DataFrame(rows).set_index(["model", "against"])


def count_nmse(predictions: pd.DataFrame) -> float:
    """Normalised MSE of a multitask model's count predictions, on the log scale it is trained on.

    ``mean((log ĉ - log c)²) / var(log c)``: 1 for a model that always
    predicts the mean log count, 0 for a perfect one.
    """
    if "count" not in predictions:
        raise KeyError("these predictions have no 'count' column: the model is not multitask")
    true, predicted = np.log(predictions["lymph_count"].to_numpy()), np.log(predictions["count"].to_numpy())
    return float(np.mean((predicted - true) ** 2) / np.var(true))


def gate_figure(predictions: pd.DataFrame, title: str) -> plt.Figure:
    """The gate ``pi`` (weight of the image expert) per patient: against the count, coloured by label and
    marked right or wrong (left), and each expert's probability of malignancy against it (right)."""
    labels = predictions["label"].to_numpy()
    right = (predictions["p"].to_numpy() > 0.5) == (labels == 1)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for label, name, colour in ((1, "malignant", "C3"), (0, "reactive", "C0")):
        for correct, marker in ((True, "o"), (False, "x")):
            rows = (labels == label) & (right == correct)
            axes[0].scatter(predictions["lymph_count"][rows], predictions["pi"][rows], c=colour, marker=marker, s=22,
                            label=f"{name}, {'right' if correct else 'wrong'}")
    axes[0].set(xscale="log", xlabel="lymphocyte count (10⁹/L)", ylabel="π (weight of the image expert)", ylim=(-0.02, 1.02))
    axes[0].legend(fontsize=7)
    axes[1].scatter(predictions["pi"], predictions["p_image"], s=18, label="image expert", c="C2")
    axes[1].scatter(predictions["pi"], predictions["p_scalar"], s=18, marker="s", label="scalar expert", c="C1")
    axes[1].set(xlabel="π", ylabel="P(malignant)", ylim=(-0.02, 1.02))
    axes[1].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
