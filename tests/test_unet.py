"""Report 3's multitask UNet: shapes, the generalised Dice loss, and one loss for labelled, masked and bare data."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cytobook.models.unet import generalised_dice_loss, mask_targets, multitask_unet


def small_unet(**kwargs):
    keras.utils.set_random_seed(0)
    return multitask_unet(32, 3, width=4, depth=2, embedding=8, **kwargs)


def test_outputs_and_the_report_geometry():
    model = small_unet()
    reconstruction, classes, masks = model.outputs
    assert tuple(reconstruction.shape) == (None, 32, 32, 3) and tuple(classes.shape) == (None, 3)
    assert tuple(masks.shape) == (None, 32, 32, 3)
    assert tuple(model.embedder().output.shape) == (None, 8)
    # At the report's 384 px, four poolings give a 24x24 bottleneck and the branch's extra one 12x12.
    report = multitask_unet(384, 5, width=2, embedding=512)
    assert tuple(report.get_layer("class_pool").output.shape) == (None, 12, 12, 32)
    assert tuple(report.embedder().output.shape) == (None, 512)
    assert not any(isinstance(layer, keras.layers.Conv2DTranspose) for layer in report.layers)  # upsampling only
    with pytest.raises(ValueError, match="multiple of 32"):
        multitask_unet(100, 5)


def test_generalised_dice_loss():
    truth = np.zeros((2, 8, 8, 2), "float32")
    truth[0, 2:6, 2:6, 0] = 1  # a class-0 mask; class 1 absent
    truth[1, :4, :, 1] = 1
    assert np.allclose(keras.ops.convert_to_numpy(generalised_dice_loss(truth, truth)), 0.0, atol=1e-5)
    assert np.allclose(keras.ops.convert_to_numpy(generalised_dice_loss(truth, 1 - truth)), 1.0, atol=1e-5)
    # Predicting the absent class as well costs something: its weight is the largest present one's.
    spill = truth.copy()
    spill[0, 2:6, 2:6, 1] = 1
    assert keras.ops.convert_to_numpy(generalised_dice_loss(truth, spill))[0] > 0.2
    empty = np.zeros((1, 8, 8, 2), "float32")
    assert keras.ops.convert_to_numpy(generalised_dice_loss(empty, empty))[0] == pytest.approx(0.0, abs=1e-6)


def test_mask_targets_put_each_mask_in_its_class_map():
    masks = np.zeros((2, 4, 4), bool)
    masks[0, :2] = masks[1, 2:] = True
    targets = mask_targets(masks, np.array([2, 0]), 3)
    assert targets.shape == (2, 4, 4, 3) and targets.dtype == np.float32
    assert targets[0, ..., 2].sum() == 8 and targets[0, ..., :2].sum() == 0 and targets[1, ..., 0].sum() == 8


def batch(n=8, labelled=True, masked=2):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (n, 32, 32, 3)).astype("uint8")
    y = np.arange(n) % 3
    masks = np.zeros((n, 32, 32), bool)
    masks[:, 8:24, 8:24] = True
    return x, {"classes": y, "masks": mask_targets(masks, y, 3), "has_label": np.full(n, float(labelled)),
               "has_mask": (np.arange(n) < masked).astype("float32")}


def test_each_term_counts_only_the_samples_that_have_its_target():
    model = small_unet()
    x, y = batch()
    outputs = model(x, training=False)
    full = float(model.compute_loss(x, y, outputs))
    bare = float(model.compute_loss(x, {**y, "has_label": np.zeros(8), "has_mask": np.zeros(8)}, outputs))
    mse = float(keras.ops.mean((outputs[0] - x / 255.0) ** 2))
    assert bare == pytest.approx(mse, rel=1e-5)  # pRCC: reconstruction only
    # The cross-entropy is a mean over labelled samples: labelling half of them changes it only by their mix.
    ce = float(keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y["classes"], outputs[1])))
    dice = float(keras.ops.mean(generalised_dice_loss(y["masks"][:2], outputs[2][:2])))
    assert full == pytest.approx(mse + 2.0 * ce + 1.0 * dice, rel=1e-4)
    no_dice = small_unet(lambda_dice=0.0)
    assert float(no_dice.compute_loss(x, y, no_dice(x, training=False))) == pytest.approx(mse + 2.0 * ce, rel=1e-4)


def test_one_training_loop_learns_from_every_kind_of_data():
    model = small_unet()
    model.compile(optimizer=keras.optimizers.Adam(3e-3, clipnorm=1.0))
    x, y = batch(n=24, masked=6)
    history = model.fit(x, y, epochs=4, batch_size=8, verbose=0).history
    assert set(history) >= {"loss", "reconstruction", "cross_entropy", "dice"}
    assert history["loss"][-1] < history["loss"][0]
    x_bare, y_bare = batch(n=8, labelled=False, masked=0)
    bare = model.fit(x_bare, y_bare, epochs=1, batch_size=8, verbose=0).history
    assert bare["cross_entropy"] == [0.0] and bare["dice"] == [0.0]


def test_batches_of_a_generated_course_copy(tmp_path):
    from cytobook.datasets.wbc import load_wbc_course
    from cytobook.datasets.wbc_synthetic import generate_wbc_course
    from cytobook.models.unet import MultitaskBatches
    from cytobook.profiles import WbcSpec

    spec = WbcSpec(image_size=40, train_per_class=10, val_per_class=1, cam16_size=32, cam16_images=(4, 2, 2),
                   prcc_size=48, prcc_tiles=2)
    table = load_wbc_course(generate_wbc_course(tmp_path, spec, seed=0))
    cells = table[(table["source"] == "wbc") & (table["fraction"] == 100) & (table["split"] == "train")]
    batches = MultitaskBatches(cells, 32, 5, 16, augment=True, seed=1)
    assert len(batches) == 4
    x, y = batches[0]
    assert x.shape == (16, 32, 32, 3) and x.dtype == np.uint8 and y["masks"].shape == (16, 32, 32, 5)
    assert y["has_label"].all() and y["has_mask"].sum() == y["masks"].any(axis=(1, 2, 3)).sum()
    again, _ = MultitaskBatches(cells, 32, 5, 16, augment=True, seed=1)[0]
    np.testing.assert_array_equal(x, again)  # the seed fixes order and crops
    batches.on_epoch_end()
    assert not np.array_equal(batches[0][0], x)
    prcc = MultitaskBatches(table[table["source"] == "prcc"], 32, 5, 8, augment=False)
    _, bare = prcc[0]
    assert not bare["has_label"].any() and not bare["has_mask"].any()
    keras.utils.set_random_seed(0)
    model = multitask_unet(32, 5, width=4, depth=2, embedding=8)
    model.compile(optimizer=keras.optimizers.Adam(1e-3, clipnorm=1.0))
    history = model.fit(batches, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0]) and history["dice"][0] > 0
    with pytest.raises(ValueError, match="missing \\['mask_path'\\]"):
        MultitaskBatches(cells.drop(columns="mask_path"), 32, 5, 8, augment=False)


def test_step_schedule_and_weight_transfer_between_stages():
    from cytobook.models.unet import step_schedule, transfer_weights

    schedule = step_schedule(1e-3, 12, 0.1).schedule
    assert [schedule(e) for e in (0, 11, 12, 24)] == pytest.approx([1e-3, 1e-3, 1e-4, 1e-5])
    keras.utils.set_random_seed(1)
    cam16 = multitask_unet(32, 2, width=4, depth=2, embedding=8)
    white_cells = multitask_unet(32, 5, width=4, depth=2, embedding=8)
    copied = transfer_weights(cam16, white_cells)
    assert "bottleneck_conv1" in copied and "classes" not in copied and "masks" not in copied
    np.testing.assert_array_equal(white_cells.get_layer("down0_conv1").get_weights()[0],
                                  cam16.get_layer("down0_conv1").get_weights()[0])


def test_train_and_predict_on_tables(tmp_path):
    from cytobook.datasets.wbc import load_wbc_course
    from cytobook.datasets.wbc_synthetic import generate_wbc_course
    from cytobook.models.unet import predict_multitask, train_multitask
    from cytobook.profiles import UnetSpec, WbcSpec

    table = load_wbc_course(generate_wbc_course(tmp_path, WbcSpec(
        image_size=40, train_per_class=4, val_per_class=2, cam16_size=32, cam16_images=(4, 2, 2), prcc_size=48,
        prcc_tiles=2), seed=0))
    cells = table[table["source"] == "wbc"]
    spec = UnetSpec(image_size=32, width=4, depth=2, embedding=8, epochs=2, step_size=1, batch_size=8)
    keras.utils.set_random_seed(0)
    model = multitask_unet(32, 5, width=4, depth=2, embedding=8)
    history = train_multitask(model, cells[(cells["split"] == "train") & (cells["fraction"] == 100)],
                              cells[cells["split"] == "val"], spec, n_classes=5, seed=0, verbose=0)
    assert history["learning_rate"] == pytest.approx([1e-3, 1e-4]) and len(history["val_cross_entropy"]) == 2
    predicted = predict_multitask(model, cells[cells["split"] == "val"], spec, n_classes=5)
    assert predicted["probabilities"].shape == (10, 5) and predicted["embeddings"].shape == (10, 8)
    assert predicted["masks"].shape == (10, 32, 32) and predicted["masks"].dtype == bool


def image_table(tmp_path, sides=(40, 64), masks=True):
    """One white square on black per side, the mask its own square: a table as the loaders return."""
    import cv2
    import pandas as pd

    rows = []
    for index, side in enumerate(sides):
        image = np.zeros((side, side, 3), np.uint8)
        image[side // 4: 3 * side // 4, side // 4: 3 * side // 4] = 255
        cv2.imwrite(str(tmp_path / f"{index}.png"), image)
        cv2.imwrite(str(tmp_path / f"{index}_mask.png"), image[..., 0])
        rows.append({"path": str(tmp_path / f"{index}.png"), "mask_path": str(tmp_path / f"{index}_mask.png") if masks
                     else None, "label": index % 5})
    return pd.DataFrame(rows)


def test_side_resizes_every_image_and_mask_before_the_crop(tmp_path):
    from cytobook.models.unet import MultitaskBatches

    table = image_table(tmp_path, sides=(40, 64))
    resized = MultitaskBatches(table, 32, 5, 2, augment=False, side=48)
    for row in range(2):
        image, mask = resized.image_and_mask(row)
        assert image.shape == (32, 32, 3) and mask.shape == (32, 32)
        # the 48-px square's centre half is 24 px: cropped to 32, it keeps 24 px of white per side, as the mask
        assert (image[..., 0] > 127).sum(axis=0).max() == 24 and mask.sum(axis=0).max() == 24
    native = MultitaskBatches(table, 32, 5, 2, augment=False)
    assert native.image_and_mask(0)[1].sum(axis=0).max() == 20 and native.image_and_mask(1)[1].sum(axis=0).max() == 32


def test_a_fixed_number_of_batches_per_epoch_repeats_or_samples_the_images(tmp_path):
    from cytobook.models.unet import MultitaskBatches

    table = image_table(tmp_path, sides=(40, 40, 40))
    few = MultitaskBatches(table, 32, 5, 4, augment=True, batches_per_epoch=5)
    assert len(few) == 5 and len(few.order) == 20 and sorted(np.bincount(few.order)) == [6, 7, 7]
    few.on_epoch_end()
    assert len(few) == 5
    many = MultitaskBatches(table, 32, 5, 1, augment=True, batches_per_epoch=2)
    assert len(many) == 2 and len(set(many.order)) == 2
    assert len(MultitaskBatches(table, 32, 5, 4, augment=False, batches_per_epoch=5)) == 1  # not when predicting


def test_mask_dice_scores_each_prediction_against_its_own_mask(tmp_path):
    from cytobook.models.unet import MultitaskBatches, mask_dice
    from cytobook.profiles import UnetSpec

    table = image_table(tmp_path, sides=(32, 32))
    spec = UnetSpec(image_size=32)
    truth = MultitaskBatches(table, 32, 5, 1, augment=False).image_and_mask(0)[1]
    half = truth.copy()
    half[:, :16] = False  # keeps half of the cell
    assert mask_dice(np.stack([truth, half]), table, spec) == pytest.approx([1.0, 2 * 128 / (128 + 256)])
    with pytest.raises(ValueError, match="1.png"):
        mask_dice(np.stack([truth, truth]), table.assign(mask_path=[table["mask_path"][0], None]), spec)
    with pytest.raises(ValueError, match="1 predicted masks for 2 rows"):
        mask_dice(truth[None], table, spec)


def test_training_again_from_the_same_start_equals_a_new_model(tmp_path):
    from cytobook.models.unet import train_multitask, unet_from_spec
    from cytobook.profiles import UnetSpec

    table = image_table(tmp_path, sides=(40, 40, 40, 40))
    spec = UnetSpec(image_size=32, width=4, depth=2, embedding=8, epochs=2, step_size=1, batch_size=2)
    fresh = unet_from_spec(spec, 5, seed=0)
    start = fresh.get_weights()
    train_multitask(fresh, table, None, spec, n_classes=5, seed=0, verbose=0)
    reused = unet_from_spec(spec, 5, seed=1)
    train_multitask(reused, table.iloc[:2], None, spec, n_classes=5, seed=3, verbose=0)
    reused.set_weights(start)
    train_multitask(reused, table, None, spec, n_classes=5, seed=0, verbose=0)  # the optimiser restarts too
    for trained, retrained in zip(fresh.get_weights(), reused.get_weights()):
        np.testing.assert_allclose(trained, retrained, atol=1e-6)
