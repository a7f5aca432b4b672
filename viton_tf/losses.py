"""Losses of both stages: VGG19 perceptual, L1, mask L1, total variation, adversarial."""
from __future__ import annotations

import sys
from pathlib import Path

import keras
import tensorflow as tf

from viton_tf.config import LossConfig
from viton_tf.errors import UserError

# keras.applications.vgg19.preprocess_input ("caffe"): BGR means of ImageNet, on [0, 255].
_VGG_BGR_MEAN = (103.939, 116.779, 123.68)
# VGG19 convolutions up to the deepest layer any loss reads (block5_conv2).
_VGG_BLOCKS = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 2))
_random_vgg_warned = False


def l1(target, prediction):
    return tf.reduce_mean(tf.abs(target - prediction))


def total_variation(images):
    """Batch mean of tf.image.total_variation (a sum per image), as model_zalando_tps_warp.py:278."""
    return tf.reduce_mean(tf.image.total_variation(images))


def discriminator_loss(real_logits, fake_logits, kind: str = "lsgan"):
    if kind == "lsgan":
        return 0.5 * (tf.reduce_mean(tf.square(real_logits - 1.0)) + tf.reduce_mean(tf.square(fake_logits)))
    if kind == "hinge":
        return tf.reduce_mean(tf.nn.relu(1.0 - real_logits)) + tf.reduce_mean(tf.nn.relu(1.0 + fake_logits))
    raise ValueError(f"DiscriminatorConfig.gan_loss: expected 'lsgan' or 'hinge', got {kind!r}")


def generator_adversarial_loss(fake_logits, kind: str = "lsgan"):
    if kind == "lsgan":
        return 0.5 * tf.reduce_mean(tf.square(fake_logits - 1.0))
    if kind == "hinge":
        return -tf.reduce_mean(fake_logits)
    raise ValueError(f"DiscriminatorConfig.gan_loss: expected 'lsgan' or 'hinge', got {kind!r}")


def vgg19_features(layers: tuple[str, ...], weights: str = "imagenet", seed: int = 0) -> keras.Model:
    """Frozen VGG19 convolutions [B,H,W,3] (caffe-preprocessed) -> the outputs of `layers`.

    Average pooling as the official build_vgg19 (utils.py:469); weights "imagenet" (Keras download),
    "none" (random, seeded) or a path to Keras VGG19 weights (notop .h5 or .weights.h5).
    """
    inputs = keras.Input((None, None, 3))
    x, outputs = inputs, {}
    for block, (filters, count) in enumerate(_VGG_BLOCKS, start=1):
        if block > 1:
            x = keras.layers.AveragePooling2D(2, padding="same", name=f"block{block - 1}_pool")(x)
        for i in range(1, count + 1):
            name = f"block{block}_conv{i}"
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=name,
                                    kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 10 * block + i))(x)
            outputs[name] = x
    unknown = sorted(set(layers) - set(outputs))
    if unknown:
        raise ValueError(f"LossConfig: unknown VGG19 layers {unknown}; expected some of {sorted(outputs)}")
    model = keras.Model(inputs, [outputs[name] for name in layers], name="vgg19_features")
    if weights == "none":
        _warn_random_vgg()
    else:
        reference = _keras_vgg19(weights)
        for layer in model.layers:
            if isinstance(layer, keras.layers.Conv2D):
                layer.set_weights(reference.get_layer(layer.name).get_weights())
    model.trainable = False
    return model


def _keras_vgg19(weights: str) -> keras.Model:
    if weights == "imagenet":
        try:
            return keras.applications.VGG19(weights="imagenet", include_top=False)
        except Exception as error:  # any download failure: offline, proxy, truncated file
            raise UserError(
                f"--vgg-weights imagenet: could not download the Keras VGG19 ImageNet weights ({error}); "
                "pass --vgg-weights PATH to a local vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5, "
                "or --vgg-weights none (random VGG19: the perceptual loss is then not the paper's)") from None
    path = Path(weights)
    if not path.is_file():
        raise UserError(f"--vgg-weights: no such file {path} (expected imagenet, none or a VGG19 weights file)")
    try:
        return keras.applications.VGG19(weights=str(path), include_top=False)
    except Exception as error:
        raise UserError(f"--vgg-weights: {path} is not a Keras VGG19 (include_top=False) weights file: {error}") from None


def _warn_random_vgg() -> None:
    global _random_vgg_warned
    if not _random_vgg_warned:
        _random_vgg_warned = True
        print("WARNING: --vgg-weights none: the VGG19 of the perceptual loss is RANDOMLY initialised; "
              "the perceptual loss is NOT the paper's. Use --vgg-weights imagenet or a weights file "
              "for real training.", file=sys.stderr, flush=True)


class PerceptualLoss:
    """Weighted L1 between VGG19 features of two images in [-1, 1] (model_zalando_mask_content.py:199-215).

    Each layer's mean absolute difference is scaled by its LossConfig weight; the sum is divided by the
    number of layers and by LossConfig.perceptual_normaliser. A plain object, not a Keras layer, so the
    frozen VGG stays out of checkpoints and backups.
    """

    def __init__(self, layers: tuple[str, ...], config: LossConfig = LossConfig(),
                 weights: str = "imagenet", seed: int = 0):
        layer_weights = dict(zip(config.vgg_layers, config.vgg_layer_weights))
        self.layers = tuple(layers)
        self.layer_weights = [layer_weights[name] for name in self.layers]
        self.normaliser = config.perceptual_normaliser
        self.features = vgg19_features(self.layers, weights, seed)

    @staticmethod
    def preprocess(images):
        """[-1, 1] RGB -> keras.applications.vgg19.preprocess_input: [0, 255] BGR minus the ImageNet mean."""
        bgr = (images[..., ::-1] + 1.0) * 127.5
        return bgr - tf.constant(_VGG_BGR_MEAN, images.dtype)

    def __call__(self, target, prediction):
        batch = tf.shape(target)[0]
        # One VGG pass over both images.
        features = self.features(self.preprocess(tf.concat([target, prediction], axis=0)), training=False)
        if not isinstance(features, (list, tuple)):
            features = [features]
        total = 0.0
        for weight, feature in zip(self.layer_weights, features):
            feature = tf.cast(feature, tf.float32)  # a mixed-precision VGG answers in float16/bfloat16
            total += weight * l1(feature[:batch], feature[batch:])
        return total / len(self.layers) / self.normaliser


def _perceptual(perceptual: PerceptualLoss | None, target, prediction):
    # model_zalando_mask_content.py:198,221-223: with a zero weight there is no VGG and the term is 0.
    return tf.constant(0.0) if perceptual is None else perceptual(target, prediction)


def stage1_losses(target_person, target_mask, outputs: dict, perceptual: PerceptualLoss | None,
                  config: LossConfig = LossConfig()) -> dict:
    """Stage 1 (model_zalando_mask_content.py:195-220): pixels L1 + VGG conv1_2..conv5_2 + clothing-mask L1."""
    terms = {
        "l1": l1(target_person, outputs["coarse_person"]),
        "mask_l1": l1(target_mask, outputs["cloth_mask"]),
        "perceptual": _perceptual(perceptual, target_person, outputs["coarse_person"]),
    }
    terms["loss"] = (config.stage1_l1 * terms["l1"] + config.stage1_mask_l1 * terms["mask_l1"]
                     + config.stage1_perceptual * terms["perceptual"])
    return terms


def stage2_losses(target_person, outputs: dict, perceptual: PerceptualLoss | None,
                  config: LossConfig = LossConfig()) -> dict:
    """Stage 2 (model_zalando_tps_warp.py:261-284): L1 + VGG conv3_2..conv5_2 - mean(alpha) + TV(alpha)."""
    alpha = outputs["composition_mask"]
    terms = {
        "l1": l1(target_person, outputs["tryon"]),
        "perceptual": _perceptual(perceptual, target_person, outputs["tryon"]),
        "composition_mask": tf.reduce_mean(alpha),
        "tv": total_variation(alpha),
    }
    terms["loss"] = (config.stage2_l1 * terms["l1"] + config.stage2_perceptual * terms["perceptual"]
                     - config.stage2_mask * terms["composition_mask"] + config.stage2_tv * terms["tv"])
    return terms
