"""Multi-task encoder-decoder G_C: person representation + product cloth -> coarse person and clothing mask.

The official VITON U-Net (model_zalando_mask_content.py:95-174): six 4x4 stride-2 encoder convolutions
and six 4x4 stride-2 transposed convolutions with skip connections.
"""
from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from viton_tf.config import GeneratorConfig, from_dict

# Six stride-2 levels: the U-Net sees inputs padded to a multiple of 2**6.
_LEVELS_MULTIPLE = 64


def _init() -> keras.initializers.Initializer:
    return keras.initializers.RandomNormal(0.0, 0.02)  # utils.py:387 (random_normal_initializer(0, 0.02))


def downsample(filters: int, config: GeneratorConfig, name: str, first: bool = False) -> keras.Sequential:
    """lrelu -> pad 1 -> 4x4 stride-2 conv -> batch norm (utils.py:381-395); the first level is a bare conv."""
    layers = [] if first else [keras.layers.LeakyReLU(config.leaky_relu_slope)]
    layers += [
        keras.layers.ZeroPadding2D(1),  # utils.py:391: pad 1 then VALID, i.e. symmetric padding
        keras.layers.Conv2D(filters, config.kernel_size, strides=2, padding="valid", use_bias=False,
                            kernel_initializer=_init()),
    ]
    if not first:
        layers.append(_batch_norm(config))
    return keras.Sequential(layers, name=name)


# Below this many input pixels a transposed convolution is one matmul and an overlap-add: oneDNN's
# backward-data kernel is slow on few pixels and many channels (measured 2x at 8x6x1024 -> 16x12x512).
_MATMUL_MAX_PIXELS = 64


@keras.saving.register_keras_serializable(package="viton_tf")
class Conv2DTranspose(keras.layers.Conv2DTranspose):
    """keras' stride-2 'same' 4x4 transposed convolution, computed as one matmul + overlap-add on few pixels.

    Named as keras' layer: Keras finds saved weights by class name, so weights saved with keras' layer load."""

    def call(self, inputs):
        height, width = inputs.shape[1], inputs.shape[2]
        if (height is None or width is None or height * width > _MATMUL_MAX_PIXELS or self.use_bias
                or self.activation is not keras.activations.linear or tuple(self.strides) != (2, 2)
                or tuple(self.kernel_size) != (4, 4) or self.padding != "same"):
            return super().call(inputs)
        return _transposed_conv_matmul(inputs, self.kernel)


def _transposed_conv_matmul(x, kernel):
    """x [B, H, W, C_in], kernel [4, 4, C_out, C_in] -> [B, 2H, 2W, C_out], as tf.nn.conv2d_transpose(SAME, 2).

    Every input pixel times the kernel (one matmul) gives a 4x4 patch per pixel; output row 2m takes kernel
    rows 1 (from input row m) and 3 (row m - 1), row 2m + 1 kernel rows 0 (row m + 1) and 2 (row m); columns
    alike."""
    batch, height, width, channels = tf.unstack(tf.shape(x))
    filters = kernel.shape[2]
    patches = tf.matmul(tf.reshape(x, [-1, channels]), tf.reshape(kernel, [-1, channels]), transpose_b=True)
    patches = tf.pad(tf.reshape(patches, [batch, height, width, 4, 4, filters]),
                     [[0, 0], [1, 1], [1, 1], [0, 0], [0, 0], [0, 0]])
    taps = (((1, 0), (3, -1)), ((0, 1), (2, 0)))  # per output phase: (kernel index, input offset)
    rows = []
    for row_taps in taps:
        columns = []
        for column_taps in taps:
            columns.append(tf.add_n([patches[:, 1 + dy:1 + dy + height, 1 + dx:1 + dx + width, ky, kx]
                                     for ky, dy in row_taps for kx, dx in column_taps]))
        rows.append(tf.stack(columns, axis=3))
    return tf.reshape(tf.stack(rows, axis=2), [batch, 2 * height, 2 * width, filters])


def upsample(filters: int, config: GeneratorConfig, name: str, dropout: float = 0.0,
             last: bool = False) -> keras.Sequential:
    """relu -> 4x4 stride-2 transposed conv -> batch norm [-> dropout] (utils.py:444-460)."""
    layers = [
        keras.layers.ReLU(),
        Conv2DTranspose(filters, config.kernel_size, strides=2, padding="same", use_bias=False,
                        kernel_initializer=_init()),
    ]
    if not last:
        layers.append(_batch_norm(config))
    if dropout > 0.0:
        layers.append(keras.layers.Dropout(dropout))
    return keras.Sequential(layers, name=name)


def _batch_norm(config: GeneratorConfig) -> keras.layers.BatchNormalization:
    # Keras' momentum is the official decay; synchronized = statistics over the global batch
    # under tf.distribute, as the official single-GPU run saw them.
    return keras.layers.BatchNormalization(momentum=config.batch_norm_momentum, epsilon=config.batch_norm_epsilon,
                                           synchronized=config.synchronized_batch_norm)


@keras.saving.register_keras_serializable(package="viton_tf")
class Generator(keras.Model):
    """G_C: {"representation", "cloth"} -> {"coarse_person" (tanh), "cloth_mask" (sigmoid)}."""

    def __init__(self, config: GeneratorConfig = GeneratorConfig(), **kwargs):
        super().__init__(**kwargs)
        self.config = config
        filters = [config.base_filters * m for m in config.filter_multipliers]
        self.encoders = [downsample(f, config, f"encoder_{i + 1}", first=i == 0) for i, f in enumerate(filters)]
        # Decoders mirror the encoders; dropout only on the deepest one (model_zalando_mask_content.py:132).
        self.decoders = [
            upsample(f, config, f"decoder_{i + 2}", dropout=config.dropout if i == len(filters) - 2 else 0.0)
            for i, f in reversed(list(enumerate(filters[:-1])))
        ]
        # One output layer for 1 mask + 3 image channels, as the official 4-channel decoder_1.
        self.output_layer = upsample(4, config, "decoder_1", last=True)

    def call(self, inputs, training=False):
        x = tf.concat([inputs["cloth"], inputs["representation"]], axis=-1)
        height, width = tf.shape(x)[1], tf.shape(x)[2]
        pad_h = -height % _LEVELS_MULTIPLE
        pad_w = -width % _LEVELS_MULTIPLE
        x = tf.pad(x, [[0, 0], [pad_h // 2, pad_h - pad_h // 2], [pad_w // 2, pad_w - pad_w // 2], [0, 0]])

        skips = []
        for encoder in self.encoders:
            x = encoder(x, training=training)
            skips.append(x)
        for decoder, skip in zip(self.decoders, reversed(skips[:-1])):
            x = decoder(x, training=training)
            x = tf.concat([x, skip], axis=-1)
        x = self.output_layer(x, training=training)
        x = x[:, pad_h // 2:pad_h // 2 + height, pad_w // 2:pad_w // 2 + width, :]
        return {"coarse_person": tf.tanh(x[..., 1:]), "cloth_mask": tf.sigmoid(x[..., :1])}

    def get_config(self):
        return {**super().get_config(), "config": dataclasses.asdict(self.config)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(config=from_dict(GeneratorConfig, config.pop("config")), **config)
