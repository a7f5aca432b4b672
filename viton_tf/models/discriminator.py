"""PatchGAN discriminator (pix2pix, Isola et al. 2017): real/fake logits per 70x70 patch, conditioned on the input."""
from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from viton_tf.config import DiscriminatorConfig, from_dict


def patch_conv(filters: int, stride: int, config: DiscriminatorConfig, name: str,
               norm: bool = True, activation: bool = True) -> keras.Sequential:
    """pad 1 -> 4x4 conv [-> batch norm] [-> lrelu], pix2pix's discriminator block."""
    layers = [
        keras.layers.ZeroPadding2D(1),
        keras.layers.Conv2D(filters, 4, strides=stride, padding="valid", use_bias=not norm,
                            kernel_initializer=keras.initializers.RandomNormal(0.0, 0.02)),
    ]
    if norm:
        layers.append(keras.layers.BatchNormalization(epsilon=1e-5, synchronized=True))
    if activation:
        layers.append(keras.layers.LeakyReLU(config.leaky_relu_slope))
    return keras.Sequential(layers, name=name)


@keras.saving.register_keras_serializable(package="viton_tf")
class PatchDiscriminator(keras.Model):
    """{"condition" [B,H,W,C], "image" [B,H,W,3]} -> raw logits [B, H/8 - 2, W/8 - 2, 1]."""

    def __init__(self, config: DiscriminatorConfig = DiscriminatorConfig(), **kwargs):
        super().__init__(**kwargs)
        self.config = config
        n = config.num_layers
        self.blocks = [patch_conv(config.base_filters, 2, config, "layer_1", norm=False)]
        for i in range(1, n + 1):  # the last of these keeps the resolution (stride 1): a 70x70 field for n = 3
            filters = config.base_filters * min(2 ** i, 8)
            self.blocks.append(patch_conv(filters, 1 if i == n else 2, config, f"layer_{i + 1}"))
        self.blocks.append(patch_conv(1, 1, config, f"layer_{n + 2}", norm=False, activation=False))

    def call(self, inputs, training=False):
        x = tf.concat([inputs["condition"], inputs["image"]], axis=-1)
        for block in self.blocks:
            x = block(x, training=training)
        return x

    def get_config(self):
        return {**super().get_config(), "config": dataclasses.asdict(self.config)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(config=from_dict(DiscriminatorConfig, config.pop("config")), **config)
