"""The paper's baselines as `model.fit` training models, the non-parametric warp-and-paste, and predictors.

Each training model has the interface of `training.trainers`: a custom `train_step`, `saved_networks()`
(RUN/<stem>.weights.h5) and `image_grid(batch)`. `load_predictor` turns any run folder back into a
function batch -> {"tryon"[, "warped_mask"]} for `viton-tf evaluate`.
"""
from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from training.trainers import TrainingModel, _generator_inputs, _image, _mask
from viton_tf import losses
from viton_tf.config import (CAGANConfig, CRNConfig, DiscriminatorConfig, GeneratorConfig,
                             PRGANConfig, RefinementConfig, WarpConfig, from_dict)
from viton_tf.errors import UserError
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


# --- building and loading -----------------------------------------------------------------------

def _section(config: dict, name: str, cls: type):
    """A dataclass from `name` in a run's config.json (top level), or its defaults."""
    values = config.get(name) if isinstance(config.get(name), dict) else None
    return from_dict(cls, values) if values else cls()


def build_network(method: str, config: dict, height: int, width: int) -> keras.Model | None:
    """The network a baseline trains, from the config sections of its run (None for nonparametric)."""
    generator = _section(config, "generator", GeneratorConfig)
    if method == "prgan":
        return PRGAN(_section(config, "prgan", PRGANConfig), generator)
    if method == "cagan":
        return CAGAN(_section(config, "cagan", CAGANConfig), generator)
    if method == "crn":
        return CRN(_section(config, "crn", CRNConfig), height, width)
    if method == "nonparametric":
        return None
    raise ValueError(f"no baseline network for method {method!r}")


def _load(network: keras.Model, inputs: dict, path: Path) -> keras.Model:
    if not path.is_file():
        raise UserError(f"{path}: weights not found (train the run first: `viton-tf train --out {path.parent}`)")
    network(inputs, training=False)  # build the variables before loading into them
    network.load_weights(str(path))
    return network


def load_predictor(folder: Path, method: str, config: dict, height: int, width: int):
    """A function batch -> {"tryon"[, "warped_mask"]} for a trained run; the batch has the readers' keys plus
    "representation" and "worn_cloth" (the product photo of the garment the person wears)."""
    from viton_tf.models.generator import Generator
    from viton_tf.models.refinement import Refinement
    from viton_tf.config import DataConfig
    from viton_tf.pipeline import nonparametric_tryon
    from viton_tf.representation import garment_mask, label_mask
    from viton_tf.warp.shape_context import warp_cloth

    folder = Path(folder)
    warp = _section(config, "warp", WarpConfig)
    zeros = {"representation": tf.zeros([1, height, width, 22]), "cloth": tf.zeros([1, height, width, 3]),
             "person": tf.zeros([1, height, width, 3]), "worn_cloth": tf.zeros([1, height, width, 3])}

    data = _section(config, "data", DataConfig)
    occluders = lambda batch: label_mask(batch["parsing"], data.occluder_labels)
    if method == "nonparametric":
        return lambda batch: nonparametric_tryon(batch["person"], batch["cloth"], batch["cloth_mask"],
                                                 garment_mask(batch["parsing"], data.garment_labels),
                                                 occluders(batch), warp)
    if method in ("prgan", "crn"):
        network = _load(build_network(method, config, height, width), zeros, folder / f"{method}.weights.h5")
        return lambda batch: {"tryon": network(_generator_inputs(batch), training=False)["tryon"]}
    if method == "cagan":
        network = _load(build_network(method, config, height, width), zeros, folder / "cagan.weights.h5")
        return lambda batch: {"tryon": network({"person": batch["person"], "worn_cloth": batch["worn_cloth"],
                                                "cloth": batch["cloth"]}, training=False)["tryon"]}

    generator = _load(Generator(_section(config, "generator", GeneratorConfig)), zeros,
                      folder / "generator.weights.h5")
    if method == "encoder_decoder":
        return lambda batch: {"tryon": generator(_generator_inputs(batch), training=False)["coarse_person"]}
    if method != "viton":
        raise ValueError(f"unknown method {method!r}")
    refinement = _load(Refinement(_section(config, "refinement", RefinementConfig)),
                       {"warped_cloth": zeros["cloth"], "coarse_person": zeros["cloth"],
                        "garment_mask": tf.zeros([1, height, width, 1])},
                       folder / "refinement.weights.h5")

    def predict(batch):
        coarse = generator(_generator_inputs(batch), training=False)
        mask = tf.cast(coarse["cloth_mask"] > 0.5, tf.float32)  # as training.trainers.VitonStage2
        warped_cloth, warped_mask = warp_cloth(batch["cloth"], batch["cloth_mask"], mask, warp,
                                               occluder_mask=occluders(batch))
        outputs = refinement({"warped_cloth": warped_cloth, "coarse_person": coarse["coarse_person"],
                              "garment_mask": mask}, training=False)
        return {"tryon": outputs["tryon"], "warped_mask": warped_mask}

    return predict


# --- `viton-tf train --method NAME` ---------------------------------------------------------------

def build_prgan(job):
    return PRGANTraining(PRGAN(PRGANConfig(), job.generator, name="prgan"), job.discriminator)


def build_cagan(job):
    return CAGANTraining(CAGAN(CAGANConfig(), job.generator, name="cagan"), job.discriminator)


def build_crn(job):
    config = job.config
    perceptual = losses.PerceptualLoss(job.loss.vgg_layers, job.loss, config.vgg_weights, config.seed)
    return CRNTraining(CRN(CRNConfig(), config.height, config.width, name="crn"), perceptual)


def build_encoder_decoder(job):
    """VITON's stage 1 alone: its coarse person is the result."""
    import dataclasses

    from training.train import build_viton

    return build_viton(dataclasses.replace(job, config=dataclasses.replace(job.config, stage=1)))


from viton_tf.methods import METHODS  # noqa: E402 (the one table of methods; training/fit.py maps them to builders)
