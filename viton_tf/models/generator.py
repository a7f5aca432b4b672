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


def upsample(filters: int, config: GeneratorConfig, name: str, dropout: float = 0.0,
             last: bool = False) -> keras.Sequential:
    """relu -> 4x4 stride-2 transposed conv -> batch norm [-> dropout] (utils.py:444-460)."""
    layers = [
        keras.layers.ReLU(),
        keras.layers.Conv2DTranspose(filters, config.kernel_size, strides=2, padding="same", use_bias=False,
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
