"""The paper's baselines as `model.fit` training models, the non-parametric warp-and-paste, and predictors.

Each training model has the interface of `training.trainers`: a custom `train_step`, `saved_networks()`
(RUN/<stem>.weights.h5) and `image_grid(batch)`. `viton_tf.run.load_predictor` turns any run folder back into a
function batch -> {"tryon"[, "warped_mask"]} for `viton-tf evaluate`.
"""
from __future__ import annotations

import tensorflow as tf

from training.trainers import TrainingModel, _generator_inputs, _image, _mask
from viton_tf import losses
from viton_tf.config import DiscriminatorConfig
from viton_tf.models.baselines.cagan import CAGAN
from viton_tf.models.baselines.crn import CRN
from viton_tf.models.baselines.prgan import PRGAN


def _tryon_grid(batch, tryon) -> list:
    return [("person", _image(batch["person"])), ("cloth", _image(batch["cloth"])), ("tryon", _image(tryon))]


class PRGANTraining(TrainingModel):
    """PRGAN: L1 to the person plus a PatchGAN conditioned on the same reduced representation and cloth."""

    def __init__(self, network: PRGAN, discriminator_config: DiscriminatorConfig = DiscriminatorConfig(), **kwargs):
        super().__init__(("loss", "l1"), discriminator_config, network.config.adversarial, **kwargs)
        self.network = network

    def call(self, batch, training=False):
        return self.network(_generator_inputs(batch), training=training)

    def condition(self, batch):
        channels = self.network.config.representation_channels
        return tf.concat([batch["representation"][..., :channels], batch["cloth"]], axis=-1)

    def build_all(self, batch) -> None:
        # The discriminator first: Keras warns when a model is built while a sublayer is not.
        self.discriminator({"condition": self.condition(batch), "image": batch["person"]})
        self(batch)

    def train_step(self, batch):
        def forward():
            tryon = self.network(_generator_inputs(batch), training=True)["tryon"]
            terms = {"l1": losses.l1(batch["person"], tryon)}
            terms["loss"] = self.network.config.l1 * terms["l1"]
            self.adversarial_terms(terms, self.condition(batch), batch["person"], tryon)
            return terms

        return self.optimise(self.network.trainable_variables, forward)

    def saved_networks(self):
        return {"prgan": self.network}

    def image_grid(self, batch):
        return _tryon_grid(batch, self.network(_generator_inputs(batch), training=False)["tryon"])


class CAGANTraining(TrainingModel):
    """CAGAN (Jetchev & Bergmann 2017, Sec. 3): swap each person's garment for the next example's cloth.

    The discriminator judges (person, cloth) pairs: real = a person with the cloth they wear; fake = the
    swapped person with the new cloth, and a real person with a cloth they do not wear. The cycle term
    swaps back to the worn cloth; the L1 on the alpha mask keeps changes small.
    """

    def __init__(self, network: CAGAN, discriminator_config: DiscriminatorConfig = DiscriminatorConfig(), **kwargs):
        super().__init__(("loss", "cycle", "alpha"), discriminator_config, network.config.adversarial, **kwargs)
        self.network = network

    def call(self, batch, training=False):
        return self.network(self.swap_inputs(batch), training=training)

    @staticmethod
    def swap_inputs(batch) -> dict:
        # The target cloth is the next example's (a batch of one swaps with itself).
        return {"person": batch["person"], "worn_cloth": batch["cloth"], "cloth": tf.roll(batch["cloth"], 1, axis=0)}

    def discriminate(self, person, cloth, training=True):
        return self.discriminator({"condition": cloth, "image": person}, training=training)

    def build_all(self, batch) -> None:
        self.discriminate(batch["person"], batch["cloth"], training=False)
        self(batch)

    def train_step(self, batch):
        config, kind = self.network.config, self.gan_loss
        inputs = self.swap_inputs(batch)

        def forward():
            swapped = self.network(inputs, training=True)
            back = self.network({"person": swapped["tryon"], "worn_cloth": inputs["cloth"],
                                 "cloth": inputs["worn_cloth"]}, training=True)
            terms = {"cycle": losses.l1(inputs["person"], back["tryon"]),
                     "alpha": 0.5 * (tf.reduce_mean(swapped["composition_mask"])
                                     + tf.reduce_mean(back["composition_mask"]))}
            real = self.discriminate(inputs["person"], inputs["worn_cloth"])
            fake = self.discriminate(tf.stop_gradient(swapped["tryon"]), inputs["cloth"])
            mismatched = self.discriminate(inputs["person"], inputs["cloth"])
            terms["discriminator"] = 0.5 * (losses.discriminator_loss(real, fake, kind)
                                            + losses.discriminator_loss(real, mismatched, kind))
            terms["adversarial"] = losses.generator_adversarial_loss(
                self.discriminate(swapped["tryon"], inputs["cloth"]), kind)
            terms["loss"] = (config.adversarial * terms["adversarial"] + config.cycle * terms["cycle"]
                             + config.alpha * terms["alpha"])
            return terms

        return self.optimise(self.network.trainable_variables, forward)

    def saved_networks(self):
        return {"cagan": self.network}

    def image_grid(self, batch):
        inputs = self.swap_inputs(batch)
        outputs = self.network(inputs, training=False)
        return [("person", _image(inputs["person"])), ("cloth", _image(inputs["cloth"])),
                ("tryon", _image(outputs["tryon"])), ("composition_mask", _mask(outputs["composition_mask"]))]


class CRNTraining(TrainingModel):
    """CRN: the perceptual loss alone (VGG19 conv1_2..conv5_2, the stage-1 layers), no adversary."""

    def __init__(self, network: CRN, perceptual: losses.PerceptualLoss, **kwargs):
        super().__init__(("loss",), None, 0.0, **kwargs)
        self.network = network
        self.perceptual = perceptual

    def call(self, batch, training=False):
        return self.network(_generator_inputs(batch), training=training)

    def train_step(self, batch):
        def forward():
            tryon = self.network(_generator_inputs(batch), training=True)["tryon"]
            return {"loss": self.perceptual(batch["person"], tryon)}

        return self.optimise(self.network.trainable_variables, forward)

    def saved_networks(self):
        return {"crn": self.network}

    def image_grid(self, batch):
        return _tryon_grid(batch, self.network(_generator_inputs(batch), training=False)["tryon"])


# --- `viton-tf train --method encoder_decoder` (the other builders are in training/fit.py) ---------------------------------------------------------------

def build_encoder_decoder(job):
    """VITON's stage 1 alone: its coarse person is the result."""
    import dataclasses

    from training.train import build_viton

    return build_viton(dataclasses.replace(job, config=dataclasses.replace(job.config, stage=1)))

