"""The classifier: a small residual separable-convolution network for CPU serving."""

from __future__ import annotations

import keras
from keras import layers, ops

from ml.preprocess import SIZE

LAST_CONV = "last_conv"  # Grad-CAM reads this layer's activations
FEATURES = "features"  # pooled embedding, used by the out-of-distribution gate


@keras.saving.register_keras_serializable(package="brainscan")
class PerImageStandardization(layers.Layer):
    """Zero mean, unit variance per image.

    Inputs in [0, 1] give first-layer activations far below BatchNormalization's epsilon,
    and inference-mode BN then disagrees with training mode (docs/MODEL.md, "Architecture"); per-image
    standardisation also removes global brightness and contrast differences between
    scanners.
    """

    def call(self, x):
        mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
        std = ops.std(x, axis=(1, 2, 3), keepdims=True)
        return (x - mean) / ops.maximum(std, 1e-3)


def _conv_bn(x, filters, kernel=3, strides=1, name=None):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU(name=name)(x)


def _sep_block(x, filters, strides=1, name=None):
    shortcut = x
    y = layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False)(x)
    y = layers.BatchNormalization()(y)
    y = layers.ReLU()(y)
    y = layers.Conv2D(filters, 1, use_bias=False)(y)
    y = layers.BatchNormalization()(y)
    y = layers.ReLU()(y)
    y = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(y)
    y = layers.BatchNormalization()(y)
    y = layers.ReLU()(y)
    y = layers.Conv2D(filters, 1, use_bias=False)(y)
    y = layers.BatchNormalization()(y)
    if strides != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=strides, use_bias=False)(shortcut)
        shortcut = layers.BatchNormalization()(shortcut)
    return layers.ReLU(name=name)(layers.Add()([y, shortcut]))


def build_model(n_classes: int = 4, size: int = SIZE, widths=(32, 64, 128, 256), dropout=0.3):
    """Logits model: (size, size, 1) in [0, 1] -> n_classes logits."""
    inputs = keras.Input((size, size, 1), name="image")
    x = PerImageStandardization(name="standardise")(inputs)
    x = _conv_bn(x, widths[0], strides=2)  # 64x64
    x = _conv_bn(x, widths[0])
    x = _sep_block(x, widths[1], strides=2)  # 32x32
    x = _sep_block(x, widths[1])
    x = _sep_block(x, widths[2], strides=2)  # 16x16
    x = _sep_block(x, widths[2])
    x = _sep_block(x, widths[3], strides=2)  # 8x8
    x = _sep_block(x, widths[3], name=LAST_CONV)
    x = layers.GlobalAveragePooling2D(name=FEATURES)(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(n_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="brainscan_classifier")


def masked_nll(y_true, logits):
    """-log P(true label set): y_true is a 0/1 mask over classes.

    A one-hot mask gives ordinary cross-entropy; the mask "any tumour class" trains
    1 - p(notumor) for images whose tumour type is unknown (Br35H "yes").
    """
    log_p = ops.log_softmax(logits, axis=-1)
    masked = ops.where(y_true > 0, log_p, ops.full_like(log_p, -1e9))
    return -ops.logsumexp(masked, axis=-1)
