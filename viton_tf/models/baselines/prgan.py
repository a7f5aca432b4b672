"""PRGAN baseline: the VITON encoder-decoder fed the representation without face and hair, trained as a GAN.

The paper's Sec. 4.2 baseline: pose and body shape (channels 0..18) + product cloth -> the person wearing
it, one encoder-decoder with a PatchGAN discriminator and an L1 term, no mask output, no refinement.
"""
from __future__ import annotations

import keras

from viton_tf.config import PRGANConfig
from viton_tf.models.baselines.base import GeneratorBaseline


@keras.saving.register_keras_serializable(package="viton_tf")
class PRGAN(GeneratorBaseline):
    """{"representation" [B,H,W,22], "cloth"} -> {"tryon"}; the face and hair channels are dropped here."""

    config_class = PRGANConfig

    def call(self, inputs, training=False):
        representation = inputs["representation"][..., :self.config.representation_channels]
        outputs = self.generator({"representation": representation, "cloth": inputs["cloth"]}, training=training)
        return {"tryon": outputs["coarse_person"]}
