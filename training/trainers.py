"""The Keras models that `model.fit` trains: one custom `train_step` per VITON stage.

A training model owns its networks, computes the loss terms, applies the gradients and reports every
term as a metric (so the progress bar, CSVLogger and TensorBoard see them). Baselines add theirs to
`training.train.METHODS` with the same interface: `saved_networks()` and `image_grid(batch)`.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from viton_tf import losses
from viton_tf.config import DiscriminatorConfig, LossConfig, WarpConfig
from viton_tf.models.discriminator import PatchDiscriminator
from viton_tf.tryon import as_float32, make_warp, refine, refinement_inputs


class Frozen:
    """Holds a network outside Keras' tracking: its weights stay out of the optimizer, backups and checkpoints."""

    def __init__(self, network: keras.Model):
        network.trainable = False
        self.network = network

    def __call__(self, inputs, training=False):
        return self.network(inputs, training=False)  # always inference: batch norm keeps its statistics


class TrainingModel(keras.Model):
    """Base: one Mean metric per loss term, gradient steps that are correct under tf.distribute, an optional PatchGAN."""

    def __init__(self, loss_names: tuple[str, ...], discriminator_config: DiscriminatorConfig | None = None,
                 adversarial_weight: float = 0.0, **kwargs):
        # No autocasting of the batch under a mixed policy: the networks cast their own inputs, and the warp
        # and the losses stay in float32.
        super().__init__(autocast=False, **kwargs)
        self.discriminator = None
        self.adversarial_weight = adversarial_weight
        if discriminator_config is not None:
            self.discriminator = PatchDiscriminator(discriminator_config, name="discriminator")
            self.gan_loss = discriminator_config.gan_loss
            loss_names += ("adversarial", "discriminator")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in loss_names}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def compile(self, optimizer, discriminator_optimizer=None):
        super().compile(optimizer=optimizer)
        self.discriminator_optimizer = discriminator_optimizer

    def build_all(self, batch) -> None:
        """Create every network's variables from one batch (BackupAndRestore restores into built models)."""
        if self.discriminator is not None:  # first: Keras warns when a call leaves a sub-network unbuilt
            self.discriminator({"condition": _condition(batch), "image": batch["person"]})
        self(batch)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras builds models under a strategy by reducing one dict batch, which MultiWorkerMirroredStrategy
        # cannot do (keras 3.15); build_all has built everything already, as without a strategy.
        return

    def build_optimizers(self, variables: list) -> None:
        """Create the optimizer slots up front, so a backup restores into the exact variables it saved."""
        self.optimizer.build(variables)
        if self.discriminator is not None:
            self.discriminator_optimizer.build(self.discriminator.trainable_variables)

    @staticmethod
    def apply(optimizer, tape, loss, variables) -> None:
        # Gradients are summed over replicas: the per-replica mean loss is divided by their number.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        gradients = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip([g / replicas for g in gradients], variables))

    def optimise(self, variables, forward) -> dict:
        """One step: `forward()` returns the loss terms, computed under both tapes ("loss" for
        `variables`, and "discriminator" for the discriminator when there is one). Under mixed_float16 the
        optimizers are LossScaleOptimizers: the losses are scaled inside the tapes, unscaled when applied."""
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            terms = {name: tf.cast(value, tf.float32) for name, value in forward().items()}
            scaled = self.optimizer.scale_loss(terms["loss"])
            if "discriminator" in terms:
                scaled_discriminator = self.discriminator_optimizer.scale_loss(terms["discriminator"])
        self.apply(self.optimizer, g_tape, scaled, variables)
        if "discriminator" in terms:
            self.apply(self.discriminator_optimizer, d_tape, scaled_discriminator,
                       self.discriminator.trainable_variables)
        return self.record(terms)

    def loss_terms(self, batch, training: bool = True) -> dict:
        """The loss terms of a batch (the networks in training or inference mode): what `train_step`
        minimises and `test_step` reports on validation pairs."""
        raise NotImplementedError

    def test_step(self, batch):
        return self.record({name: tf.cast(value, tf.float32)
                            for name, value in self.loss_terms(batch, training=False).items()})

    def adversarial_terms(self, terms: dict, condition, real, fake, training: bool = True) -> None:
        """Add the generator's adversarial term and the discriminator's loss to `terms` (inside both tapes)."""
        discriminate = lambda image: tf.cast(self.discriminator({"condition": condition, "image": image},
                                                                training=training), tf.float32)
        real_logits = discriminate(real)
        fake_logits = discriminate(tf.stop_gradient(fake))
        terms["discriminator"] = losses.discriminator_loss(real_logits, fake_logits, self.gan_loss)
        fool_logits = discriminate(fake)
        terms["adversarial"] = losses.generator_adversarial_loss(fool_logits, self.gan_loss)
        terms["loss"] = terms["loss"] + self.adversarial_weight * terms["adversarial"]

    def record(self, terms: dict) -> dict:
        for name, value in terms.items():
            self.trackers[name].update_state(value)
        results = {name: tracker.result() for name, tracker in self.trackers.items()}
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            # keras 3.15 averages step results over workers along axis 0, which a scalar lacks.
            results = {name: tf.reshape(value, [1]) for name, value in results.items()}
        return results

    def saved_networks(self) -> dict[str, keras.Model]:
        """Weight-file stem -> the network this stage trains (RUN/<stem>.weights.h5)."""
        raise NotImplementedError

    def image_grid(self, batch) -> list[tuple[str, tf.Tensor]]:
        """(name, [B,H,W,3] in [0, 1]) columns of the TensorBoard image grid, left to right."""
        raise NotImplementedError


def _generator_inputs(batch) -> dict:
    return {"representation": batch["representation"], "cloth": batch["cloth"]}


def _condition(batch):
    return tf.concat([batch["representation"], batch["cloth"]], axis=-1)


def _image(x):
    return (x + 1.0) / 2.0


def _mask(x):
    return tf.tile(x, [1, 1, 1, 3])


class VitonStage1(TrainingModel):
    """Stage 1: G_C learns the coarse person and the clothing mask."""

    def __init__(self, generator: keras.Model, perceptual: losses.PerceptualLoss | None,
                 loss_config: LossConfig = LossConfig(), discriminator_config: DiscriminatorConfig | None = None,
                 **kwargs):
        super().__init__(("loss", "l1", "mask_l1", "perceptual"), discriminator_config, loss_config.adversarial,
                         **kwargs)
        self.generator = generator
        self.perceptual = perceptual
        self.loss_config = loss_config

    def call(self, batch, training=False):
        return self.generator(_generator_inputs(batch), training=training)

    def loss_terms(self, batch, training=True):
        outputs = as_float32(self.generator(_generator_inputs(batch), training=training))
        terms = losses.stage1_losses(batch["person"], batch["garment_mask"], outputs, self.perceptual,
                                     self.loss_config)
        if self.discriminator is not None:
            self.adversarial_terms(terms, _condition(batch), batch["person"], outputs["coarse_person"], training)
        return terms

    def train_step(self, batch):
        return self.optimise(self.generator.trainable_variables, lambda: self.loss_terms(batch))

    def saved_networks(self):
        return {"generator": self.generator}

    def image_grid(self, batch):
        outputs = self.generator(_generator_inputs(batch), training=False)
        return [("person", _image(batch["person"])), ("cloth", _image(batch["cloth"])),
                ("coarse_person", _image(outputs["coarse_person"])), ("cloth_mask", _mask(outputs["cloth_mask"])),
                ("target_mask", _mask(batch["garment_mask"]))]


class VitonStage2(TrainingModel):
    """Stage 2: G_R learns the composition mask; G_C is frozen, the cloth is warped onto its mask by shape-context TPS."""

    def __init__(self, generator: keras.Model, refinement: keras.Model, perceptual: losses.PerceptualLoss | None,
                 loss_config: LossConfig = LossConfig(), warp_config: WarpConfig = WarpConfig(),
                 target_mask: str = "predicted", discriminator_config: DiscriminatorConfig | None = None,
                 **kwargs):
        super().__init__(("loss", "l1", "perceptual", "composition_mask", "tv"), discriminator_config,
                         loss_config.adversarial, **kwargs)
        if target_mask not in ("predicted", "ground_truth"):
            raise ValueError(f"TrainConfig.stage2_target_mask: expected 'predicted' or 'ground_truth', got {target_mask!r}")
        self.generator = Frozen(generator)
        self.refinement = refinement
        self.perceptual = perceptual
        self.loss_config = loss_config
        self.warp = make_warp(warp_config, one_by_one=False)  # batched: training has no clients to keep apart
        self.target_mask = target_mask

    def refinement_inputs(self, batch) -> dict:
        """G_C's coarse person, the cloth warped onto the target garment mask, and that mask."""
        target = None if self.target_mask == "predicted" else batch["garment_mask"]
        return refinement_inputs(self.generator, batch["representation"], batch["cloth"], batch["cloth_mask"],
                                 batch.get("occluder_mask"), self.warp, target_mask=target)

    def call(self, batch, training=False):
        return refine(self.refinement, self.refinement_inputs(batch), training=training)

    def loss_terms(self, batch, training=True, inputs=None):
        inputs = self.refinement_inputs(batch) if inputs is None else inputs
        outputs = refine(self.refinement, inputs, training=training)
        terms = losses.stage2_losses(batch["person"], outputs, self.perceptual, self.loss_config)
        if self.discriminator is not None:
            self.adversarial_terms(terms, _condition(batch), batch["person"], outputs["tryon"], training)
        return terms

    def train_step(self, batch):
        inputs = self.refinement_inputs(batch)  # outside the tape: G_C is frozen, the warp has no gradient
        return self.optimise(self.refinement.trainable_variables, lambda: self.loss_terms(batch, True, inputs))

    def saved_networks(self):
        return {"refinement": self.refinement}

    def image_grid(self, batch):
        inputs = self.refinement_inputs(batch)
        outputs = refine(self.refinement, inputs)
        return [("person", _image(batch["person"])), ("cloth", _image(batch["cloth"])),
                ("coarse_person", _image(inputs["coarse_person"])), ("cloth_mask", _mask(inputs["garment_mask"])),
                ("warped_cloth", _image(inputs["warped_cloth"])),
                ("composition_mask", _mask(outputs["composition_mask"])), ("tryon", _image(outputs["tryon"]))]
