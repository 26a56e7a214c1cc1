"""Report 1's MobileNetV2 classifier loads the offline ImageNet file, or names it when it is required and absent."""

from __future__ import annotations

import numpy as np
import pytest

from cytobook.notebook import _import_keras_quietly

_import_keras_quietly()

from cytobook.models.transfer import transfer_classifier  # noqa: E402
from cytobook.weights import MissingWeightsError  # noqa: E402

MOBILENET_V2 = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


def test_transfer_classifier_loads_cached_imagenet_weights(tmp_path, monkeypatch, keras_models):
    import h5py

    models = tmp_path / "keras" / "models"
    models.mkdir(parents=True)
    (models / MOBILENET_V2).symlink_to(keras_models / MOBILENET_V2)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))

    model = transfer_classifier("mobilenet_v2", 96, required=True)
    assert model.imagenet_weights == models / MOBILENET_V2
    kernel = model.get_layer("base").get_layer("Conv1").get_weights()[0]
    with h5py.File(models / MOBILENET_V2) as f:
        group = f["Conv1"]["Conv1"]
        stored = np.asarray(group["kernel"] if "kernel" in group else group["kernel:0"])
    np.testing.assert_array_equal(kernel, stored)


@pytest.mark.parametrize("size", [64, 300])  # the notebook's input sizes: smoke and demo, full
def test_transfer_classifier_without_required_weights_names_the_file(tmp_path, monkeypatch, size):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty"))
    monkeypatch.setenv("CYTOBOOK_OFFLINE", "1")  # a machine with a network would otherwise download the file
    with pytest.raises(MissingWeightsError) as caught:
        transfer_classifier("mobilenet_v2", size, required=True)
    message = str(caught.value)
    assert MOBILENET_V2 in message
    assert str(tmp_path / "empty" / "models" / MOBILENET_V2) in message
    assert f"https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/{MOBILENET_V2}" in message
