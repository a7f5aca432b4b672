"""CAGAN baseline (Jetchev & Bergmann 2017): swap the worn garment for a product one, no person representation.

A U-Net (the VITON encoder-decoder with its 4-channel head) takes the person, the product photo of the
garment they wear and the target product photo, and returns an image and an alpha mask; the try-on is
alpha * generated + (1 - alpha) * person, so the mask decides which pixels change.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from viton_tf.config import CAGANConfig
from viton_tf.models.baselines.base import GeneratorBaseline


@keras.saving.register_keras_serializable(package="viton_tf")
class CAGAN(GeneratorBaseline):
    """{"person", "worn_cloth", "cloth"} -> {"tryon", "generated", "composition_mask"}."""

    config_class = CAGANConfig

    def call(self, inputs, training=False):
        person = inputs["person"]
        outputs = self.generator(
            {"representation": tf.concat([person, inputs["worn_cloth"]], axis=-1), "cloth": inputs["cloth"]},
            training=training)
        generated, composition_mask = outputs["coarse_person"], outputs["cloth_mask"]
        tryon = composition_mask * generated + (1.0 - composition_mask) * person
        return {"tryon": tryon, "generated": generated, "composition_mask": composition_mask}
