"""ImageNet weights: the cache first, a quick download second, a clear failure last.

Downloads are tested against servers started here on 127.0.0.1; nothing talks
to any other address.
"""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from cytobook import weights
from cytobook.weights import MissingWeightsError, build_backbone, imagenet_file, resolve_imagenet

MOBILENET_V2 = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
VGG16 = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
RESNET50 = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
#: A small stand-in for a weight file: the HDF5 signature, then bytes that tell truncation apart.
FAKE_H5 = b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 64


@pytest.fixture(autouse=True)
def fresh_download_state(monkeypatch):
    """Each test starts with the network not yet known to fail, and no proxy or download settings."""
    monkeypatch.setattr(weights, "_network_failure", None)
    for name in ("CYTOBOOK_OFFLINE", "CYTOBOOK_DOWNLOAD_TIMEOUT", "http_proxy", "https_proxy", "all_proxy",
                 "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test instead of hanging."""

    def refuse(*args, **kwargs):
        raise AssertionError("tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("CYTOBOOK_OFFLINE", "1")


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


class _Server:
    """A local HTTP server: ``routes`` maps a path to ``(status, body, declared length)``."""

    def __init__(self):
        self.routes: dict[str, tuple[int, bytes, int | None]] = {}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                status, body, length = server.routes.get(self.path, (404, b"not found", None))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                self.wfile.write(body)  # HTTP/1.0: the connection closes after this, however short

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    """A local server standing in for storage.googleapis.com."""
    local = _Server()
    monkeypatch.setattr(weights, "_BASE_URL", local.base_url)
    yield local
    local.close()


class _Silent:
    """A local server that accepts connections and never answers; ``connections`` counts them."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.base_url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/"
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.held.append(connection)

    @property
    def connections(self) -> int:
        return len(self.held)

    def close(self):
        self.listener.close()
        for connection in self.held:
            connection.close()


@pytest.fixture
def silent(monkeypatch):
    """A server that never answers, and a download timeout of a fifth of a second."""
    local = _Silent()
    monkeypatch.setattr(weights, "_BASE_URL", local.base_url)
    monkeypatch.setenv("CYTOBOOK_DOWNLOAD_TIMEOUT", "0.2")
    yield local
    local.close()


def test_file_names_match_keras_applications():
    assert imagenet_file("vgg16").file_name == VGG16
    assert imagenet_file("resnet50").url.endswith("/resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")
    assert imagenet_file("mobilenet_v2").file_name == MOBILENET_V2
    assert imagenet_file("mobilenet", alpha=0.25).file_name == "mobilenet_2_5_224_tf_no_top.h5"
    assert imagenet_file("inception_resnet_v2").file_name == "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with pytest.raises(ValueError, match="unknown architecture"):
        imagenet_file("alexnet")


def test_offline_missing_weights_fail_fast_naming_file_url_and_place(empty_keras_home, offline, no_network):
    with pytest.raises(MissingWeightsError) as caught:
        build_backbone("vgg16", (64, 64, 3), required=True)
    message = str(caught.value)
    assert VGG16 in message
    assert "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/" in message
    assert str(empty_keras_home / "models") in message
    assert "CYTOBOOK_OFFLINE" in message


def test_offline_missing_weights_outside_full_profile_say_random_init_loudly(empty_keras_home, offline, no_network,
                                                                             capsys):
    model = build_backbone("mobilenet_v2", (48, 48, 3), required=False)
    assert model.imagenet_weights is None
    out = capsys.readouterr().out
    assert "RANDOM initial weights" in out
    assert "Downloading" not in out
    assert not (empty_keras_home / "models").exists()


def test_cached_file_is_used_without_any_download(empty_keras_home, no_network):
    models = empty_keras_home / "models"
    models.mkdir(parents=True)
    (models / VGG16).write_bytes(FAKE_H5)
    assert resolve_imagenet("vgg16", required=True) == models / VGG16


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


def test_missing_file_is_downloaded_into_the_keras_cache(empty_keras_home, server, capsys):
    server.routes[f"/vgg16/{VGG16}"] = (200, FAKE_H5, None)
    path = resolve_imagenet("vgg16", required=True)
    assert path == empty_keras_home / "models" / VGG16
    assert path.read_bytes() == FAKE_H5
    assert sorted(p.name for p in path.parent.iterdir()) == [VGG16]  # no temporary file left
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert f"{server.base_url}vgg16/{VGG16}" in out and str(path) in out
    # Now cached: no second request.
    assert resolve_imagenet("vgg16", required=True) == path
    assert server.requests == [f"/vgg16/{VGG16}"]


def test_mobilenet_at_a_size_keras_has_no_file_for_downloads_the_224_file(empty_keras_home, server):
    name = "mobilenet_1_0_224_tf_no_top.h5"
    server.routes[f"/mobilenet/{name}"] = (200, FAKE_H5, None)
    assert resolve_imagenet("mobilenet", required=True, rows=96) == empty_keras_home / "models" / name
    assert server.requests == [f"/mobilenet/{name}"]


def test_server_that_never_answers_fails_fast(empty_keras_home, silent, capsys):
    started = time.monotonic()
    with pytest.raises(MissingWeightsError) as caught:
        resolve_imagenet("vgg16", required=True)
    assert time.monotonic() - started < 2
    message = str(caught.value)
    assert VGG16 in message and str(empty_keras_home / "models") in message
    assert "download failed: timed out" in message
    assert silent.connections == 1
    assert not list((empty_keras_home / "models").iterdir())


def test_server_that_never_answers_means_random_weights_outside_full(empty_keras_home, silent, capsys):
    started = time.monotonic()
    assert resolve_imagenet("mobilenet_v2", required=False) is None
    assert time.monotonic() - started < 2
    out = capsys.readouterr().out
    assert "RANDOM initial weights" in out and "timed out" in out


def test_after_a_network_failure_no_download_is_tried_again(empty_keras_home, silent, capsys):
    with pytest.raises(MissingWeightsError):
        resolve_imagenet("vgg16", required=True)
    started = time.monotonic()
    with pytest.raises(MissingWeightsError) as caught:
        resolve_imagenet("resnet50", required=True)
    assert time.monotonic() - started < 0.1
    assert silent.connections == 1
    assert "an earlier one in this process failed: timed out" in str(caught.value)
    assert resolve_imagenet("mobilenet_v2", required=False) is None
    assert silent.connections == 1


def test_refused_connection_fails_fast(empty_keras_home, monkeypatch):
    with socket.socket() as unused:  # bound, never listening: connections are refused
        unused.bind(("127.0.0.1", 0))
        monkeypatch.setattr(weights, "_BASE_URL", f"http://127.0.0.1:{unused.getsockname()[1]}/")
        with pytest.raises(MissingWeightsError, match="connection refused"):
            resolve_imagenet("vgg16", required=True)


@pytest.mark.parametrize("declared", [len(FAKE_H5) + 1000, len(FAKE_H5) * 2])
def test_truncated_transfer_leaves_nothing_in_the_cache(empty_keras_home, server, declared):
    server.routes[f"/vgg16/{VGG16}"] = (200, FAKE_H5, declared)
    with pytest.raises(MissingWeightsError) as caught:
        resolve_imagenet("vgg16", required=True)
    assert f"stopped after {len(FAKE_H5)} of {declared} bytes" in str(caught.value)
    assert not list((empty_keras_home / "models").iterdir())


def test_a_page_that_is_not_hdf5_is_not_cached(empty_keras_home, server):
    server.routes[f"/vgg16/{VGG16}"] = (200, b"<html>Please log in to the hotel wifi</html>", None)
    with pytest.raises(MissingWeightsError, match="not an HDF5 file"):
        resolve_imagenet("vgg16", required=True)
    assert not list((empty_keras_home / "models").iterdir())


def test_http_error_names_the_status_and_does_not_stop_other_downloads(empty_keras_home, server):
    server.routes[f"/resnet/{RESNET50}"] = (200, FAKE_H5, None)
    with pytest.raises(MissingWeightsError, match="HTTP 404"):
        resolve_imagenet("vgg16", required=True)
    assert resolve_imagenet("resnet50", required=True) == empty_keras_home / "models" / RESNET50


def test_offline_makes_no_attempt_even_with_a_server(empty_keras_home, server, offline):
    server.routes[f"/vgg16/{VGG16}"] = (200, FAKE_H5, None)
    assert resolve_imagenet("vgg16", required=False) is None
    assert server.requests == []


def test_download_timeout_setting(monkeypatch):
    assert weights.download_timeout() == weights.DOWNLOAD_TIMEOUT_S
    monkeypatch.setenv("CYTOBOOK_DOWNLOAD_TIMEOUT", "2.5")
    assert weights.download_timeout() == 2.5
    for bad in ("soon", "0", "-1", "nan"):
        monkeypatch.setenv("CYTOBOOK_DOWNLOAD_TIMEOUT", bad)
        with pytest.raises(ValueError, match="CYTOBOOK_DOWNLOAD_TIMEOUT"):
            weights.download_timeout()
    for value, expected in (("1", True), ("yes", True), ("0", False), ("false", False), ("", False)):
        monkeypatch.setenv("CYTOBOOK_OFFLINE", value)
        assert weights.offline() is expected


def test_a_shared_weights_folder_is_read_after_the_cache(empty_keras_home, monkeypatch, keras_models, no_network):
    monkeypatch.setenv("CYTOBOOK_OFFLINE", "1")
    monkeypatch.setenv("CYTOBOOK_WEIGHTS_DIR", str(keras_models))
    assert resolve_imagenet("mobilenet_v2", required=True, rows=64) == keras_models / MOBILENET_V2
    assert not (empty_keras_home / "models" / MOBILENET_V2).exists()  # read in place, never copied
    monkeypatch.setenv("CYTOBOOK_WEIGHTS_DIR", str(empty_keras_home))
    assert resolve_imagenet("mobilenet_v2", required=False) is None
