"""Report 3's network: a UNet whose decoder reconstructs the image, with a classification and a mask branch.

Le Tan Dang Khoa's CS5242 report (2.1, Fig. 4) builds one auto-encoder for
three kinds of ground truth: the image itself (every data set), a class label
(CAMELYON16 and the white cells) and, for about one image in ten, a mask.

* **Encoder and decoder**: 2×2 max pooling down and upsampling layers (not
  transposed convolutions, "to reduce the effect of overfitting") up, each
  decoder level concatenating the encoder's map of the same resolution (the
  skip connections), ending in the **reconstruction**.
* **Classification branch**: from the bottleneck, one more downsampling
  (24×24 to 12×12 for a 384 input), global average pooling to a
  **512-d embedding**, and a dense softmax classifier.
* **Mask branch**: C sigmoid maps of the input's size, one per class.

The loss (2.2, Eq. 2) is MSE reconstruction + ``lambda_ce`` × cross-entropy +
``lambda_dice`` × the generalised Dice loss of Sudre et al. (weights
``1 / (sum of the class's mask)^2``), with ``lambda_ce = 2`` and
``lambda_dice = 1`` (3.1). :class:`MultitaskUNet` computes it in one training
step for every data set: the targets carry ``has_label`` and ``has_mask``
flags, and the cross-entropy is averaged over the labelled samples of a batch,
the Dice term over those with a mask (pRCC, unlabelled, has neither).

*Our choices* where the report is silent: two 3×3 convolutions with batch
normalisation and ReLU per level (the original UNet's block, with the batch
normalisation that lets it train from scratch in few epochs, with PyTorch's
momentum); the number of
channels doubling from ``width`` (64, as in UNet) per level; a sigmoid
reconstruction of the image scaled to [0, 1].
"""

from __future__ import annotations

import math

import cv2
import keras
import numpy as np
import pandas as pd
from keras import ops

from ..augment import crop_and_flip
from ..datasets.wbc import read_binary_mask
from ..io import read_image

__all__ = ["MultitaskBatches", "MultitaskUNet", "generalised_dice_loss", "mask_dice", "mask_targets", "multitask_unet",
           "predict_multitask", "step_schedule", "train_multitask", "transfer_weights", "unet_from_spec"]

#: Output names, in the model's output order.
OUTPUTS = ("reconstruction", "classes", "masks")


def _conv_block(x, channels: int, name: str):
    for index in (1, 2):
        x = keras.layers.Conv2D(channels, 3, padding="same", use_bias=False, name=f"{name}_conv{index}")(x)
        # PyTorch's momentum (0.1 there, 0.9 here): the report's "step size" schedule is PyTorch's StepLR, and
        # with Keras's 0.99 the moving statistics lag the weights for hundreds of steps (a few epochs of WBC_1).
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_norm{index}")(x)
        x = keras.layers.ReLU(name=f"{name}_relu{index}")(x)
    return x


def multitask_unet(size: int, n_classes: int, *, width: int = 64, depth: int = 4, embedding: int = 512,
                   lambda_ce: float = 2.0, lambda_dice: float = 1.0) -> MultitaskUNet:
    """The report's UNet variant for ``size`` × ``size`` RGB images (``uint8`` range) and ``n_classes``.

    Parameters
    ----------
    size
        Input side; a multiple of ``2 ** (depth + 1)`` (384 in the report:
        a 24×24 bottleneck and the 12×12 map of the classification branch).
    n_classes
        Classes of the classifier and maps of the mask branch.
    width, depth
        Channels of the first level (doubling per level) and number of 2×2
        poolings before the bottleneck.
    embedding
        Channels of the classification branch, i.e. the embedding's length (512).
    lambda_ce, lambda_dice
        Weights of the cross-entropy and generalised Dice terms (2 and 1;
        ``lambda_dice = 0`` trains without masks).

    Returns
    -------
    MultitaskUNet
        Outputs ``reconstruction`` ``(n, size, size, 3)`` in [0, 1],
        ``classes`` ``(n, n_classes)`` softmax and ``masks``
        ``(n, size, size, n_classes)`` sigmoid; the layer ``embedding`` gives
        the 512-d vectors (:meth:`MultitaskUNet.embedder`).
    """
    step = 2 ** (depth + 1)
    if size % step:
        raise ValueError(f"the input side must be a multiple of {step} (2 ** (depth + 1)) for depth {depth}, got {size}")
    if n_classes < 2:
        raise ValueError(f"need at least two classes, got {n_classes}")
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Rescaling(1 / 255, name="scale")(inputs)
    skips = []
    for level in range(depth):
        x = _conv_block(x, width * 2**level, f"down{level}")
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{level}")(x)
    bottleneck = _conv_block(x, width * 2**depth, "bottleneck")

    branch = keras.layers.MaxPooling2D(2, name="class_pool")(bottleneck)
    branch = _conv_block(branch, embedding, "class_block")
    embedded = keras.layers.GlobalAveragePooling2D(name="embedding")(branch)
    classes = keras.layers.Dense(n_classes, activation="softmax", name="classes", dtype="float32")(embedded)

    x = bottleneck
    for level in reversed(range(depth)):
        x = keras.layers.UpSampling2D(2, name=f"up{level}")(x)
        x = keras.layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        x = _conv_block(x, width * 2**level, f"decode{level}")
    reconstruction = keras.layers.Conv2D(3, 1, activation="sigmoid", name="reconstruction", dtype="float32")(x)
    masks = keras.layers.Conv2D(n_classes, 1, activation="sigmoid", name="masks", dtype="float32")(x)
    return MultitaskUNet(inputs, [reconstruction, classes, masks], lambda_ce=lambda_ce, lambda_dice=lambda_dice,
                         name="multitask_unet")


def unet_from_spec(spec, n_classes: int, *, masks: bool = True, seed: int = 0) -> MultitaskUNet:
    """:func:`multitask_unet` with a profile's :class:`~cytobook.profiles.UnetSpec`, seeded; ``masks=False``
    drops the Dice term (the report's "w/o mask" and "CE only" variants)."""
    keras.utils.set_random_seed(seed)
    return multitask_unet(spec.image_size, n_classes, width=spec.width, depth=spec.depth, embedding=spec.embedding,
                          lambda_ce=spec.lambda_ce, lambda_dice=spec.lambda_dice if masks else 0.0)


def generalised_dice_loss(y_true, y_pred, epsilon: float = 1e-6):
    """Sudre et al.'s generalised Dice loss of each sample, shape ``(n,)``.

    ``1 - 2 sum_l w_l sum_i p_li r_li / sum_l w_l sum_i (p_li + r_li)`` over the
    maps ``(n, H, W, C)``, with ``w_l = 1 / (sum_i r_li)^2``. A class absent
    from a sample's mask (an infinite weight) takes the largest weight of the
    classes present, as MONAI does, so predicting it is still penalised; an
    all-empty mask gives 0.
    """
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    volume = ops.sum(y_true, axis=(1, 2))  # (n, C)
    present = volume > 0
    weights = ops.where(present, 1.0 / ops.maximum(volume, 1.0) ** 2, 0.0)
    weights = ops.where(present, weights, ops.max(weights, axis=-1, keepdims=True))
    overlap = ops.sum(weights * ops.sum(y_true * y_pred, axis=(1, 2)), axis=-1)
    total = ops.sum(weights * ops.sum(y_true + y_pred, axis=(1, 2)), axis=-1)
    return 1.0 - (2.0 * overlap + epsilon) / (total + epsilon)


def mask_targets(masks: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """The mask branch's targets: each sample's binary mask in its class's map, zeros in the others.

    ``masks`` is ``(n, H, W)`` (bool or 0/1), ``labels`` ``(n,)``; returns
    ``float32`` ``(n, H, W, n_classes)``. A sample without a mask gets zeros
    and must be flagged ``has_mask = 0`` (:class:`MultitaskUNet`).
    """
    masks = np.asarray(masks, dtype="float32")
    labels = np.asarray(labels, dtype=int)
    targets = np.zeros(masks.shape + (n_classes,), dtype="float32")
    targets[np.arange(len(masks)), ..., labels] = masks
    return targets


class MultitaskUNet(keras.Model):
    """The report's UNet with its joint loss, for any data set (see the module's description).

    Train it with ``fit(images, targets)``, ``targets`` a dict of
    ``reconstruction`` (ignored: the input is the target), ``classes``
    (integer labels, any value where unlabelled), ``masks``
    (:func:`mask_targets`), ``has_label`` and ``has_mask`` (0/1 per sample).
    The logged losses are ``loss`` (the total), ``reconstruction``,
    ``cross_entropy`` and ``dice`` (each term before its weight).
    """

    def __init__(self, *args, lambda_ce: float = 2.0, lambda_dice: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.lambda_ce, self.lambda_dice = float(lambda_ce), float(lambda_dice)
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in ("loss", "reconstruction", "cross_entropy", "dice")}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        reconstruction, classes, masks = y_pred
        image = ops.cast(x, "float32") / 255.0
        mse = ops.mean(ops.square(reconstruction - image))
        has_label = ops.cast(y["has_label"], "float32")
        has_mask = ops.cast(y["has_mask"], "float32")
        labels = ops.cast(ops.where(has_label > 0, y["classes"], 0), "int32")
        cross_entropy = keras.losses.sparse_categorical_crossentropy(labels, classes)
        cross_entropy = ops.sum(cross_entropy * has_label) / ops.maximum(ops.sum(has_label), 1.0)
        dice = generalised_dice_loss(y["masks"], masks)
        dice = ops.sum(dice * has_mask) / ops.maximum(ops.sum(has_mask), 1.0)
        total = mse + self.lambda_ce * cross_entropy + self.lambda_dice * dice
        for name, value in (("loss", total), ("reconstruction", mse), ("cross_entropy", cross_entropy),
                            ("dice", dice)):
            self.trackers[name].update_state(value)
        return total

    @property
    def metrics(self):
        return list(self.trackers.values())

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def embedder(self) -> keras.Model:
        """Images -> the 512-d embeddings of the classification branch (shares this model's weights)."""
        return keras.Model(self.input, self.get_layer("embedding").output, name="embedder")


class MultitaskBatches(keras.utils.PyDataset):
    """Batches of a table of images for :class:`MultitaskUNet`: the images and their targets with presence flags.

    Parameters
    ----------
    table
        Rows with ``path``, ``mask_path`` (missing where there is no mask; a
        binary mask, or Zheng's three-level one whose nucleus and cytoplasm
        both count as the cell, see :func:`cytobook.datasets.wbc.read_binary_mask`)
        and ``label`` (missing where unlabelled), as the loaders of
        :mod:`cytobook.datasets.wbc` return.
    size, n_classes
        The model's input side and number of classes.
    batch_size
        Images per batch; the last batch may be smaller.
    augment
        Training: the order is shuffled every epoch, and each image and its
        mask take the same random crop and flips
        (:func:`cytobook.augment.crop_and_flip`). Otherwise the order is the
        table's and the crop centred.
    seed
        Seeds the order and the augmentation: the same seed gives the same batches epoch by epoch.
    side
        If given, every image (and its mask) is first resized to ``side`` ×
        ``side``: cells of another data set then fill as much of the crop as
        the training cells did (the notebooks pass the course copy's image side).
    batches_per_epoch
        Training only: if given, every epoch is this many batches, drawn from
        the table shuffled anew and repeated as often as needed (a few images
        are seen many times, many images not all each epoch), so that models
        trained on fractions of different sizes take the same number of steps
        (``UnetSpec.fraction_batches_per_epoch``).
    **kwargs
        ``workers`` and ``use_multiprocessing`` of :class:`keras.utils.PyDataset`.
    """

    def __init__(self, table: pd.DataFrame, size: int, n_classes: int, batch_size: int, *, augment: bool,
                 seed: int = 0, side: int | None = None, batches_per_epoch: int | None = None, **kwargs):
        super().__init__(**kwargs)
        missing = [column for column in ("path", "mask_path", "label") if column not in table.columns]
        if missing:
            raise ValueError(f"a table of images needs the columns path, mask_path and label; missing {missing}")
        if table.empty:
            raise ValueError("the table of images is empty; expected at least one image")
        self.paths = table["path"].astype(str).tolist()
        self.mask_paths = [None if pd.isna(path) else str(path) for path in table["mask_path"]]
        self.labels = table["label"].astype("Int64")
        self.size, self.n_classes, self.batch_size = size, n_classes, batch_size
        self.augment, self.seed, self.epoch, self.side = augment, seed, 0, side
        self.draws = batches_per_epoch * batch_size if augment and batches_per_epoch else len(self.paths)
        self.order = self._order()

    def _order(self) -> np.ndarray:
        if not self.augment:
            return np.arange(len(self.paths))
        rng = np.random.default_rng([self.seed, self.epoch])
        shuffles = math.ceil(self.draws / len(self.paths))
        return np.concatenate([rng.permutation(len(self.paths)) for _ in range(shuffles)])[:self.draws]

    def __len__(self) -> int:
        return math.ceil(len(self.order) / self.batch_size)

    def __getitem__(self, index: int):
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        rng = np.random.default_rng([self.seed, self.epoch, index, 1]) if self.augment else None
        images, masks, has_mask = [], [], []
        for row in rows:
            image, mask = self.image_and_mask(row, rng)
            images.append(image)
            masks.append(np.zeros((self.size, self.size), bool) if mask is None else mask)
            has_mask.append(mask is not None)
        labels = self.labels.iloc[rows]
        classes = labels.fillna(0).to_numpy(dtype=int)
        return np.stack(images), {
            "classes": classes,
            "masks": mask_targets(np.stack(masks), classes, self.n_classes),
            "has_label": labels.notna().to_numpy(dtype="float32"),
            "has_mask": np.asarray(has_mask, dtype="float32"),
        }

    def image_and_mask(self, row: int, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Row ``row``'s image and mask (None without one) as the model sees them: resized to ``side`` if
        given, then cropped (and flipped with ``rng``; centred without)."""
        mask_path = self.mask_paths[row]
        image = read_image(self.paths[row])
        mask = None if mask_path is None else read_binary_mask(mask_path)
        if self.side is not None:
            image = cv2.resize(image, (self.side, self.side), interpolation=cv2.INTER_AREA)
            mask = None if mask is None else cv2.resize(mask.astype(np.uint8), (self.side, self.side),
                                                        interpolation=cv2.INTER_NEAREST).astype(bool)
        return crop_and_flip(image, mask, self.size, rng)

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.order = self._order()


def step_schedule(learning_rate: float, step_size: int, gamma: float) -> keras.callbacks.LearningRateScheduler:
    """The report's step schedule: ``learning_rate * gamma ** (epoch // step_size)``."""
    return keras.callbacks.LearningRateScheduler(lambda epoch: learning_rate * gamma ** (epoch // step_size))


def transfer_weights(source: keras.Model, target: keras.Model) -> list[str]:
    """Copy every layer's weights from ``source`` to ``target`` where the name and shapes match; returns those names.

    The pretraining chain (pRCC, then CAMELYON16, then the white cells) keeps
    the encoder, decoder and embedding from stage to stage; the classifier
    and the mask maps, sized by each data set's classes, start anew when
    their shapes differ.
    """
    copied = []
    for layer in target.layers:
        try:
            other = source.get_layer(layer.name)
        except ValueError:
            continue
        weights = other.get_weights()
        if weights and [w.shape for w in weights] == [w.shape for w in layer.get_weights()]:
            layer.set_weights(weights)
            copied.append(layer.name)
    return copied


def train_multitask(model: MultitaskUNet, train: pd.DataFrame, val: pd.DataFrame | None, spec, *, n_classes: int,
                    seed: int, epochs: int | None = None, side: int | None = None,
                    batches_per_epoch: int | None = None, verbose: int = 2) -> dict[str, list[float]]:
    """Fit ``model`` on a table of images (:class:`MultitaskBatches`) with the report's optimiser and schedule.

    Adam at ``spec.learning_rate`` with gradient clipping (``spec.clipnorm``),
    the step schedule of :func:`step_schedule`, ``spec.epochs`` (or
    ``epochs``) epochs, no early stopping (the report trains its 32 epochs).
    ``val`` (optional) is scored after each epoch with centred crops.
    ``side`` resizes every image first and ``batches_per_epoch`` fixes the
    length of an epoch (see :class:`MultitaskBatches`).
    A model trained here before with the same clipping keeps its compiled
    training step (building it costs seconds a model on a CPU): its
    optimiser's state is reset instead, so that setting the model's weights
    back and training again equals training a new model from those weights.
    Returns the history: ``loss``, ``reconstruction``, ``cross_entropy``,
    ``dice`` and their ``val_`` twins, and ``learning_rate``.
    """
    keras.utils.set_random_seed(seed)
    optimizer = getattr(model, "optimizer", None)
    if model.compiled and isinstance(optimizer, keras.optimizers.Adam) and optimizer.clipnorm == spec.clipnorm:
        for variable in optimizer.variables:
            variable.assign(keras.ops.zeros_like(variable))
    else:
        model.compile(optimizer=keras.optimizers.Adam(spec.learning_rate, clipnorm=spec.clipnorm))
    batches = MultitaskBatches(train, spec.image_size, n_classes, spec.batch_size, augment=True, seed=seed, side=side,
                               batches_per_epoch=batches_per_epoch)
    validation = None if val is None else MultitaskBatches(val, spec.image_size, n_classes, spec.batch_size,
                                                           augment=False, side=side)
    result = model.fit(batches, validation_data=validation, epochs=epochs or spec.epochs, verbose=verbose,
                       callbacks=[step_schedule(spec.learning_rate, spec.step_size, spec.gamma)])
    return {key: [float(v) for v in values] for key, values in result.history.items()}


def predict_multitask(model: MultitaskUNet, table: pd.DataFrame, spec, *, n_classes: int, side: int | None = None,
                      batch_size: int = 32) -> dict[str, np.ndarray]:
    """Centre-crop predictions of every row: ``probabilities`` ``(n, C)``, ``embeddings`` ``(n, 512)``,
    and ``masks`` ``(n, H, W)``, the predicted map of each row's predicted class (sigmoid > 0.5).
    ``side`` resizes every image first (see :class:`MultitaskBatches`)."""
    batches = MultitaskBatches(table.assign(mask_path=None), spec.image_size, n_classes, batch_size,
                               augment=False, side=side)
    embedder = keras.Model(model.input, [model.get_layer("embedding").output, *model.outputs[1:]])
    probabilities, embeddings, masks = [], [], []
    for index in range(len(batches)):
        embedded, classes, maps = (keras.ops.convert_to_numpy(o) for o in embedder(batches[index][0], training=False))
        chosen = classes.argmax(axis=1)
        probabilities.append(classes)
        embeddings.append(embedded)
        masks.append(maps[np.arange(len(maps)), ..., chosen] > 0.5)
    return {"probabilities": np.concatenate(probabilities), "embeddings": np.concatenate(embeddings),
            "masks": np.concatenate(masks)}


def mask_dice(predicted: np.ndarray, table: pd.DataFrame, spec, *, side: int | None = None) -> np.ndarray:
    """Dice of each predicted mask (``predict_multitask(...)["masks"]``) against the row's own mask.

    The row's mask is read, resized and centre-cropped as the model saw the
    image (:meth:`MultitaskBatches.image_and_mask`); a Zheng mask counts
    nucleus and cytoplasm together as the cell. Two empty masks score 1.

    Raises
    ------
    ValueError
        If a row has no mask (its ``path`` is named), or the counts differ.
    """
    missing = table.loc[table["mask_path"].isna(), "path"].tolist()
    if missing:
        raise ValueError(f"{len(missing)} rows have no mask to score against, e.g. {missing[0]}")
    if len(predicted) != len(table):
        raise ValueError(f"{len(predicted)} predicted masks for {len(table)} rows")
    batches = MultitaskBatches(table, spec.image_size, 1, 1, augment=False, side=side)
    scores = []
    for row, guess in enumerate(predicted):
        truth = batches.image_and_mask(row)[1]
        total = guess.sum() + truth.sum()
        scores.append(1.0 if total == 0 else 2.0 * np.logical_and(guess, truth).sum() / total)
    return np.asarray(scores)
