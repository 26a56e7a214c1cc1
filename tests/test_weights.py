"""ImageNet weights resolve offline, or fail at once with instructions."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from cytobook.weights import MissingWeightsError, build_backbone, imagenet_file, resolve_imagenet

MOBILENET_V2 = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test instead of hanging."""

    def refuse(*args, **kwargs):
        raise AssertionError("tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def empty_keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return tmp_path / "keras"


@pytest.fixture
def keras_home_with_mobilenet(tmp_path, monkeypatch, keras_models):
    models = tmp_path / "keras" / "models"
    models.mkdir(parents=True)
    (models / MOBILENET_V2).symlink_to(keras_models / MOBILENET_V2)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return models


def test_file_names_match_keras_applications():
    assert imagenet_file("vgg16").file_name == "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert imagenet_file("resnet50").url.endswith("/resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")
    assert imagenet_file("mobilenet_v2").file_name == MOBILENET_V2
    assert imagenet_file("mobilenet", alpha=0.25).file_name == "mobilenet_2_5_224_tf_no_top.h5"
    assert imagenet_file("inception_resnet_v2").file_name == "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with pytest.raises(ValueError, match="unknown architecture"):
        imagenet_file("alexnet")


def test_missing_weights_fail_fast_naming_file_url_and_place(empty_keras_home, no_network):
    with pytest.raises(MissingWeightsError) as caught:
        build_backbone("vgg16", (64, 64, 3), required=True)
    message = str(caught.value)
    assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/" in message
    assert str(empty_keras_home / "models") in message


def test_missing_weights_outside_full_profile_say_random_init_loudly(empty_keras_home, no_network, capsys):
    model = build_backbone("mobilenet_v2", (48, 48, 3), required=False)
    assert model.imagenet_weights is None
    assert "RANDOM initial weights" in capsys.readouterr().out


def test_cached_mobilenet_v2_weights_are_loaded(keras_home_with_mobilenet, no_network):
    import h5py

    path = resolve_imagenet("mobilenet_v2", required=True, rows=96)  # falls back to the 224 file
    assert path == keras_home_with_mobilenet / MOBILENET_V2
    model = build_backbone("mobilenet_v2", (96, 96, 3), required=True)
    kernel = model.get_layer("Conv1").get_weights()[0]
    with h5py.File(path) as f:
        group = f["Conv1"]["Conv1"]
        stored = np.asarray(group["kernel"] if "kernel" in group else group["kernel:0"])
    np.testing.assert_allclose(kernel, stored)
    random = build_backbone("mobilenet_v2", (96, 96, 3), weights=None)
    assert not np.allclose(kernel, random.get_layer("Conv1").get_weights()[0])
