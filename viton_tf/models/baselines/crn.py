"""CRN baseline (Chen & Koltun 2017): a cascade of refinement modules from 8x6 up to the full image.

Each module upsamples the previous module's features, concatenates the conditioning (representation +
cloth) resized to its resolution, and applies two 3x3 convolutions with layer norm and leaky ReLU; a
final 1x1 convolution gives the image. Trained with the perceptual loss alone.
"""
from __future__ import annotations

import dataclasses
import math

import keras
import tensorflow as tf

from viton_tf.config import CRNConfig, from_dict


def refinement_module(filters: int, slope: float, name: str) -> keras.Sequential:
    """Two 3x3 convolutions, each followed by layer norm and leaky ReLU."""
    layers = []
    for i in (1, 2):
        # Layer norm over each example's (H, W, C) with a per-channel scale: group norm with one group,
        # as refinement.py.
        layers += [keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}"),
                   keras.layers.GroupNormalization(groups=1, epsilon=1e-12, name=f"norm{i}"),
                   keras.layers.LeakyReLU(slope)]
    return keras.Sequential(layers, name=name)


def cascade_sizes(height: int, width: int, coarsest_height: int) -> list[tuple[int, int]]:
    """Resolutions of the modules, coarsest first; each doubles the previous one."""
    doublings = math.log2(height / coarsest_height) if height >= coarsest_height else -1.0
    if doublings != int(doublings) or width % 2 ** int(doublings):
        raise ValueError(f"CRN: image size {height}x{width} must be {coarsest_height} * 2**k high "
                         f"and a multiple of 2**k wide")
    levels = int(doublings)
    return [(height >> (levels - i), width >> (levels - i)) for i in range(levels + 1)]


@keras.saving.register_keras_serializable(package="viton_tf")
class CRN(keras.Model):
    """{"representation", "cloth"} -> {"tryon"}, built for one output size (height, width)."""

    def __init__(self, config: CRNConfig = CRNConfig(), height: int = 256, width: int = 192, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.height, self.width = height, width
        self.sizes = cascade_sizes(height, width, config.coarsest_height)
        self.modules_ = [
            refinement_module(max(config.min_filters, config.max_filters >> i), config.leaky_relu_slope,
                              f"module_{h}x{w}")
            for i, (h, w) in enumerate(self.sizes)
        ]
        self.to_image = keras.layers.Conv2D(3, 1, name="to_image")

    def call(self, inputs, training=False):
        conditioning = tf.concat([inputs["representation"], inputs["cloth"]], axis=-1)
        features = None
        for (height, width), module in zip(self.sizes, self.modules_):
            level = tf.image.resize(conditioning, (height, width), method="area")
            if features is not None:
                features = tf.image.resize(features, (height, width), method="bilinear")
                level = tf.concat([features, level], axis=-1)
            features = module(level, training=training)
        # CRN's output is linear; tanh keeps it in the image range like every other method here.
        return {"tryon": tf.tanh(self.to_image(features))}

    def get_config(self):
        return {**super().get_config(), "config": dataclasses.asdict(self.config),
                "height": self.height, "width": self.width}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(config=from_dict(CRNConfig, config.pop("config")), **config)
