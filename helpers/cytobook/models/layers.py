"""Input preprocessing inside the model, written with ``keras.ops`` so it runs on every backend.

``keras.applications.<family>.preprocess_input`` is a function applied
outside the model; putting the same arithmetic in a layer makes a saved model
self-contained and keeps the NumPy pipeline identical for every backbone.
"""

from __future__ import annotations

import keras
from keras import ops

#: ImageNet channel means in BGR order, as the Caffe-trained VGG16 and ResNet50 expect.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="cytobook")
class CaffePreprocess(keras.layers.Layer):
    """RGB in [0, 255] to the BGR, mean-subtracted input of VGG16 and ResNet50."""

    def call(self, inputs):
        bgr = ops.flip(ops.cast(inputs, self.compute_dtype), axis=-1)
        return bgr - ops.convert_to_tensor(_CAFFE_MEAN_BGR, dtype=self.compute_dtype)


def imagenet_preprocessing(arch: str) -> keras.layers.Layer:
    """The layer that maps RGB in [0, 255] to what ``arch``'s ImageNet weights expect."""
    if arch in ("vgg16", "resnet50"):
        return CaffePreprocess(name="preprocess")
    if arch in ("mobilenet", "mobilenet_v2", "inception_resnet_v2"):
        return keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess")
    if arch.startswith("convnext"):
        return keras.layers.Identity(name="preprocess")  # ConvNeXt normalises internally
    raise ValueError(f"no ImageNet preprocessing known for {arch!r}")
