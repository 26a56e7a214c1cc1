"""Report 4's training mechanics: patient bags, their batches, training, prediction and cross-validation.

The lymphocytosis notebooks say *which* model is trained on *which* patients;
this module does the rest the same way for every model. :class:`Bags` holds
each patient's images (or a frozen backbone's per-image features), handmade
features, age, lymphocyte count and label; :class:`Standardizer` learns their
scaling on training patients only; :class:`BagBatches` feeds one patient per
step; :func:`train_mil` trains with the report's recipe;
:func:`cross_validate` runs any model or baseline on the same stratified
folds; :func:`cv_table`, :func:`count_nmse` and :func:`gate_figure` read the
results.

The multitask head's target is the standardised log lymphocyte count, so its
mean squared error is the report's normalised MSE.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import cv2
import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedKFold, train_test_split

from .io import read_image
from .models.mil import WeightedBinaryCrossentropy, analysis_model, balanced_class_weights
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
        features of a frozen backbone.
    handmade
        Per patient, ``(n_i, F)`` raw handmade features (NaN where the nucleus
        was not found).
    age, lymph_count
        ``(P,)`` years and lymphocytes per microlitre (×10^9/L).
    labels
        ``(P,)`` 1 malignant, 0 reactive, -1 unknown (test patients).
    """

    patient_ids: list[str]
    instances: list[np.ndarray]
    handmade: list[np.ndarray]
    age: np.ndarray
    lymph_count: np.ndarray
    labels: np.ndarray

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
            [self.handmade[i] for i in index], self.age[index], self.lymph_count[index], self.labels[index],
        )

    def with_instances(self, instances: list[np.ndarray]) -> "Bags":
        """The same patients with other instances (e.g. a backbone's features instead of images)."""
        return replace(self, instances=instances)

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
    """Scaling learnt on training bags: handmade features per column, age and log count.

    Missing handmade values (no nucleus found) become the training mean,
    i.e. 0 after scaling.
    """

    handmade_mean: np.ndarray
    handmade_std: np.ndarray
    clinical_mean: np.ndarray
    clinical_std: np.ndarray

    @classmethod
    def fit(cls, bags: Bags) -> "Standardizer":
        """Learn the scaling from ``bags`` (training patients only)."""
        handmade = np.concatenate(bags.handmade)
        clinical = clinical_matrix(bags)
        return cls(
            np.nanmean(handmade, axis=0), _nonzero(np.nanstd(handmade, axis=0)),
            clinical.mean(axis=0), _nonzero(clinical.std(axis=0)),
        )

    def handmade(self, values: np.ndarray) -> np.ndarray:
        """Scaled ``(n, F)`` handmade features, NaN imputed by the training mean."""
        scaled = (values - self.handmade_mean) / self.handmade_std
        return np.nan_to_num(scaled, nan=0.0).astype(np.float32)

    def clinical(self, bags: Bags) -> np.ndarray:
        """Scaled ``(P, 2)`` age and log lymphocyte count."""
        return ((clinical_matrix(bags) - self.clinical_mean) / self.clinical_std).astype(np.float32)


def clinical_matrix(bags: Bags) -> np.ndarray:
    """``(P, 2)`` age in years and log lymphocyte count (the count is heavy-tailed)."""
    return np.column_stack([bags.age, np.log(bags.lymph_count)])


def _nonzero(std: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(std) & (std > 0), std, 1.0)


def bag_indices(n: int, size: int, rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
    """Which of a bag's ``n`` images fill ``size`` slots, and each slot's weight.

    A larger bag is subsampled without replacement (at random with ``rng``,
    else evenly spaced, for a deterministic evaluation); a smaller one is
    repeated cyclically. Weights sum to one and a repeated image shares its
    weight between its copies, so the weighted sum is the plain mean over the
    distinct images used.
    """
    if n < 1:
        raise ValueError("a bag needs at least one image")
    if n >= size:
        chosen = np.sort(rng.choice(n, size, replace=False)) if rng is not None else np.linspace(0, n - 1, size).round().astype(int)
        return chosen, np.full(size, 1.0 / size, dtype=np.float32)
    chosen = np.arange(size) % n
    copies = np.bincount(chosen, minlength=n)[chosen]
    return chosen, (1.0 / (n * copies)).astype(np.float32)


class BagBatches(keras.utils.PyDataset):
    """One patient per batch, as the inputs and targets of :func:`cytobook.models.mil.mixture_of_experts`.

    Parameters
    ----------
    bags, standardizer
        The patients, and the scaling learnt on the training patients.
    bag_size
        Fixed number of instance slots (see :func:`bag_indices`).
    shuffle
        Shuffle the patients and redraw subsamples every epoch (training);
        otherwise a fixed order and evenly spaced subsamples.
    seed
        Seed of the shuffling and subsampling.
    targets
        The targets given, those of the model's outputs (a one-task model has no ``count``).
    """

    def __init__(self, bags: Bags, standardizer: Standardizer, bag_size: int, *, shuffle: bool = False, seed: int = 0,
                 targets: Sequence[str] = ("p", "count")) -> None:
        super().__init__()
        self.bags = bags
        self.bag_size = bag_size
        self.shuffle = shuffle
        self.targets = tuple(targets)
        self.rng = np.random.default_rng(seed)
        self.handmade = [standardizer.handmade(values) for values in bags.handmade]
        self.clinical = standardizer.clinical(bags)
        self.count = self.clinical[:, 1:2]
        self.order = np.arange(len(bags))
        self.on_epoch_end()

    def __len__(self) -> int:
        return len(self.bags)

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.rng.shuffle(self.order)

    def __getitem__(self, step: int):
        i = int(self.order[step])
        chosen, weights = bag_indices(len(self.bags.instances[i]), self.bag_size, self.rng if self.shuffle else None)
        inputs = {
            "instances": self.bags.instances[i][chosen][None],
            "weights": weights[None],
            "handmade": self.handmade[i][chosen][None],
            "clinical": self.clinical[i : i + 1],
        }
        label = np.array([[max(int(self.bags.labels[i]), 0)]], dtype=np.float32)
        targets = {"p": label, "count": self.count[i : i + 1]}
        return inputs, {key: targets[key] for key in self.targets}


@dataclass
class TrainedMil:
    """A trained multi-instance model with what is needed to apply it to new patients."""

    model: keras.Model
    standardizer: Standardizer
    bag_size: int
    history: dict[str, list[float]] = field(default_factory=dict)

    def predict(self, bags: Bags) -> pd.DataFrame:
        """Per patient: ``p`` and, where the model has them, ``pi``, ``p_image``, ``p_scalar``, ``count``.

        ``count`` is converted back to lymphocytes per microlitre.
        """
        batches = BagBatches(bags, self.standardizer, self.bag_size)
        viewer = analysis_model(self.model)
        rows = []
        for step in range(len(batches)):
            inputs, _ = batches[step]
            outputs = viewer.predict_on_batch(inputs)
            rows.append({key: float(np.asarray(value).reshape(-1)[0]) for key, value in outputs.items()})
        table = pd.DataFrame(rows, index=pd.Index(bags.patient_ids, name="patient_id"))
        if "count" in table:
            log_count = table["count"] * self.standardizer.clinical_std[1] + self.standardizer.clinical_mean[1]
            table["count"] = np.exp(log_count)
        table["label"] = bags.labels
        table["lymph_count"] = bags.lymph_count
        table["age"] = bags.age
        return table


def train_mil(
    build: Callable[[], keras.Model],
    train: Bags,
    val: Bags,
    spec: MilSpec,
    *,
    count_weight: float = 1.0,
    seed: int = 0,
    verbose: int = 0,
) -> TrainedMil:
    """Train a model of :func:`cytobook.models.mil.mixture_of_experts` with the report's recipe.

    AdamW at ``spec.learning_rate`` with the losses of ``spec.bags_per_step``
    patients accumulated per optimiser step, the learning rate divided by ten
    after ``spec.lr_patience`` epochs without a lower validation loss, early
    stopping after ``spec.stop_patience`` and the best weights kept.

    Parameters
    ----------
    build
        Returns a fresh, uncompiled model (called once, after seeding).
    train, val
        Training and validation patients (the latter drive the schedule and stopping).
    spec
        The profile's :class:`~cytobook.profiles.MilSpec`; bags are fitted to the model's instance axis.
    count_weight
        Weight of the count loss beside the BCE, for a multitask model.
    verbose
        Passed to ``fit``: 0 silent, 2 one line per epoch.
    """
    keras.utils.set_random_seed(seed)
    model = build()
    standardizer = Standardizer.fit(train)
    bag_size = model.input["instances"].shape[1]  # every bag is padded or subsampled to the model's size
    negative, positive = balanced_class_weights(train.labels)
    losses = {"p": WeightedBinaryCrossentropy(negative, positive)}
    loss_weights = {"p": 1.0}
    if "count" in model.output:
        losses["count"] = "mse"
        loss_weights["count"] = count_weight
    model.compile(
        optimizer=keras.optimizers.AdamW(spec.learning_rate, gradient_accumulation_steps=spec.bags_per_step),
        loss=losses, loss_weights=loss_weights,
    )
    callbacks = [
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.1, patience=spec.lr_patience),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=spec.stop_patience, restore_best_weights=True),
    ]
    targets = tuple(model.output)
    result = model.fit(
        BagBatches(train, standardizer, bag_size, shuffle=True, seed=seed, targets=targets),
        validation_data=BagBatches(val, standardizer, bag_size, targets=targets),
        epochs=spec.epochs, callbacks=callbacks, verbose=verbose,
    )
    history = {key: [float(v) for v in values] for key, values in result.history.items()}
    return TrainedMil(model, standardizer, bag_size, history)


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
    build: Callable[[], keras.Model],
    spec: MilSpec,
    histories: list[dict[str, list[float]]] | None = None,
    **train_options,
) -> Callable[[Bags, Bags, Bags, int], pd.DataFrame]:
    """A ``fit_predict`` for :func:`cross_validate` that trains a multi-instance model.

    Each fold's training history is appended to ``histories`` when given
    (for learning curves); ``train_options`` go to :func:`train_mil`.
    """

    def fit_predict(train: Bags, val: Bags, test: Bags, seed: int) -> pd.DataFrame:
        trained = train_mil(build, train, val, spec, seed=seed, **train_options)
        if histories is not None:
            histories.append(trained.history)
        return trained.predict(test)

    return fit_predict


def resnet_mixture_builder(spec: MilSpec, experts: str = "mixture", multitask: bool = False) -> Callable[[], keras.Model]:
    """A builder, for :func:`train_mil`, of the report's model with a fresh ResNet-18-like encoder.

    :func:`cytobook.models.mil.resnet18_like` at ``spec.image_size`` and
    ``spec.encoder_width``, bags of ``spec.max_instances``; ``experts`` and
    ``multitask`` as in :func:`cytobook.models.mil.mixture_of_experts`.
    """
    from .handmade import FEATURE_NAMES
    from .models.mil import mixture_of_experts, resnet18_like

    def build() -> keras.Model:
        encoder = resnet18_like(spec.image_size, width=spec.encoder_width)
        return mixture_of_experts((spec.max_instances, spec.image_size, spec.image_size, 3), len(FEATURE_NAMES),
                                  encoder=encoder, experts=experts, multitask=multitask)

    return build


def scalar_expert_builder(spec: MilSpec) -> Callable[[], keras.Model]:
    """A builder of the scalar expert alone; train it on :func:`without_images` bags."""
    from .handmade import FEATURE_NAMES
    from .models.mil import mixture_of_experts

    return lambda: mixture_of_experts((spec.max_instances, 1), len(FEATURE_NAMES), experts="scalar")


def without_images(bags: Bags) -> Bags:
    """The same patients with a one-column placeholder instead of images (for the scalar expert, which reads none)."""
    return bags.with_instances([np.zeros((len(instances), 1), np.float32) for instances in bags.instances])


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
    model = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", random_state=seed))
    model.fit(clinical_matrix(both), both.labels)
    p = model.predict_proba(clinical_matrix(test))[:, 1]
    return pd.DataFrame({"p": p, "label": test.labels, "lymph_count": test.lymph_count, "age": test.age},
                        index=pd.Index(test.patient_ids, name="patient_id"))


def encode_images(encoder: keras.Model, bags: Bags, batch_size: int = 64) -> list[np.ndarray]:
    """Run a frozen encoder once over every image; its per-image features (vectors or feature maps), as bags.

    Frozen-backbone experiments then train on these, a fraction of a second per epoch.
    """
    flat = np.concatenate(bags.instances)
    features = encoder.predict(flat, batch_size=batch_size, verbose=0).astype(np.float32)
    return bags.split_instances(features)


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
