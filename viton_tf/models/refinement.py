"""Refinement network G_R: a composition mask that blends the warped cloth into the coarse person.

The official create_refine_generator (model_zalando_tps_warp.py:194-212) and its use (:254-259).
"""
from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from viton_tf.config import RefinementConfig, from_dict


def conv_block(config: RefinementConfig, name: str) -> keras.Sequential:
    """3x3 stride-1 conv -> layer norm -> lrelu, as slim.conv2d(normalizer_fn=slim.layer_norm)."""
    return keras.Sequential([
        keras.layers.Conv2D(config.filters, config.kernel_size, padding="same", use_bias=False),
        # slim.layer_norm normalises each sample over (H, W, C) with a per-channel scale and offset:
        # that is group norm with one group (keras' LayerNormalization would tie its scale to H x W).
        keras.layers.GroupNormalization(groups=1, epsilon=1e-12),
        keras.layers.LeakyReLU(config.leaky_relu_slope),
    ], name=name)


@keras.saving.register_keras_serializable(package="viton_tf")
class Refinement(keras.Model):
    """G_R: {"warped_cloth", "coarse_person", "garment_mask"} -> {"composition_mask", "tryon"}.

    The paper's alpha is `composition_mask`, kept inside the garment region; tryon = alpha * c' + (1 - alpha) * I'.
    """

    def __init__(self, config: RefinementConfig = RefinementConfig(), **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.blocks = [conv_block(config, f"conv_{i + 1}") for i in range(config.num_layers)]
        self.mask_layer = keras.layers.Conv2D(1, 1, activation="sigmoid", name="composition_mask")

    def call(self, inputs, training=False):
        warped_cloth, coarse_person = inputs["warped_cloth"], inputs["coarse_person"]
        x = tf.concat([warped_cloth, coarse_person], axis=-1)
        for block in self.blocks:
            x = block(x, training=training)
        composition_mask = self.mask_layer(x) * inputs["garment_mask"]
        tryon = composition_mask * warped_cloth + (1.0 - composition_mask) * coarse_person
        return {"composition_mask": composition_mask, "tryon": tryon}

    def get_config(self):
        return {**super().get_config(), "config": dataclasses.asdict(self.config)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(config=from_dict(RefinementConfig, config.pop("config")), **config)
