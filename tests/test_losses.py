"""Losses: the official perceptual combination, VGG weights handling, TV, adversarial terms."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from viton_tf import losses
from viton_tf.config import LossConfig
from viton_tf.errors import UserError


def _images(seed, shape=(2, 32, 32, 3)):
    return tf.random.stateless_uniform(shape, seed=[seed, 7], minval=-1.0, maxval=1.0)


@pytest.fixture(scope="module")
def stage1_perceptual():
    return losses.PerceptualLoss(LossConfig().vgg_layers, weights="none")


def test_preprocess_is_keras_vgg19_caffe():
    images = _images(0)
    expected = keras.applications.vgg19.preprocess_input((images.numpy() + 1.0) * 127.5)
    np.testing.assert_allclose(losses.PerceptualLoss.preprocess(images).numpy(), expected, atol=1e-3)


def test_perceptual_is_the_official_weighted_sum(stage1_perceptual):
    a, b = _images(1), _images(2)
    features = stage1_perceptual.features(losses.PerceptualLoss.preprocess(tf.concat([a, b], 0)))
    # model_zalando_mask_content.py:205-215
    divisors = [5.3 / 2.5, 2.7 * 1.2, 1.35 * 2.3, 0.67 * 8.2, 0.16]
    expected = sum(np.abs(f[:2] - f[2:]).mean() / d for f, d in zip(features, divisors)) / 5.0 / 128.0
    assert float(stage1_perceptual(a, b)) == pytest.approx(expected, rel=1e-4)
    assert float(stage1_perceptual(a, a)) == 0.0


def test_stage2_perceptual_uses_conv3_to_conv5():
    perceptual = losses.PerceptualLoss(LossConfig().stage2_vgg_layers, weights="none")
    assert [layer.name for layer in perceptual.features.layers if "conv" in layer.name][-1] == "block5_conv2"
    np.testing.assert_allclose(perceptual.layer_weights, [1 / 1.35 / 2.3, 1 / 0.67 / 8.2, 1 / 0.16])
    # model_zalando_tps_warp.py:275 averages over its three layers.
    a, b = _images(3), _images(4)
    features = perceptual.features(losses.PerceptualLoss.preprocess(tf.concat([a, b], 0)))
    expected = sum(w * np.abs(f[:2] - f[2:]).mean() for f, w in zip(features, perceptual.layer_weights)) / 3 / 128
    assert float(perceptual(a, b)) == pytest.approx(expected, rel=1e-4)


def test_vgg_is_frozen_with_average_pooling(stage1_perceptual):
    vgg = stage1_perceptual.features
    assert not vgg.trainable_weights and len(vgg.non_trainable_weights) == 2 * 14
    assert {type(layer).__name__ for layer in vgg.layers if "pool" in layer.name} == {"AveragePooling2D"}


def test_random_vgg_warns_once(capsys, monkeypatch):
    monkeypatch.setattr(losses, "_random_vgg_warned", False)
    losses.vgg19_features(("block1_conv2",), "none")
    losses.vgg19_features(("block1_conv2",), "none")
    assert capsys.readouterr().err.count("NOT the paper's") == 1


def test_random_vgg_is_seeded():
    a = losses.vgg19_features(("block1_conv2",), "none", seed=3).get_weights()[0]
    b = losses.vgg19_features(("block1_conv2",), "none", seed=3).get_weights()[0]
    np.testing.assert_array_equal(a, b)


def test_imagenet_download_failure_says_what_to_do(monkeypatch):
    def offline(**kwargs):
        raise Exception("URL fetch failure: no network")

    monkeypatch.setattr(keras.applications, "VGG19", offline)
    with pytest.raises(UserError, match="--vgg-weights PATH.*--vgg-weights none"):
        losses.vgg19_features(("block1_conv2",), "imagenet")


def test_weights_path_errors_name_the_file(tmp_path):
    with pytest.raises(UserError, match="no such file .*missing.h5"):
        losses.vgg19_features(("block1_conv2",), str(tmp_path / "missing.h5"))
    bad = tmp_path / "bad.h5"
    bad.write_text("not weights")
    with pytest.raises(UserError, match="bad.h5"):
        losses.vgg19_features(("block1_conv2",), str(bad))


def test_weights_path_loads_keras_vgg19_weights(tmp_path):
    reference = keras.applications.VGG19(weights=None, include_top=False)
    path = tmp_path / "vgg19.weights.h5"
    reference.save_weights(path)
    vgg = losses.vgg19_features(("block3_conv2",), str(path))
    np.testing.assert_array_equal(vgg.get_layer("block3_conv2").get_weights()[0],
                                  reference.get_layer("block3_conv2").get_weights()[0])


def test_total_variation_is_the_batch_mean():
    masks = tf.constant([[[0.0], [1.0]], [[1.0], [1.0]]])[None, ...]  # 1x2x2x1: |0-1| down + |0-1| across
    assert float(losses.total_variation(masks)) == pytest.approx(2.0)
    two = tf.concat([masks, tf.zeros_like(masks)], axis=0)
    assert float(losses.total_variation(two)) == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["lsgan", "hinge"])
def test_adversarial_losses(kind):
    ones, minus = tf.ones([2, 4, 4, 1]), -tf.ones([2, 4, 4, 1])
    # A perfect discriminator: real -> 1, fake -> -1 (hinge) or 0 (lsgan).
    fake = minus if kind == "hinge" else tf.zeros_like(ones)
    assert float(losses.discriminator_loss(ones, fake, kind)) == pytest.approx(0.0)
    assert float(losses.discriminator_loss(fake, ones, kind)) > 0.9
    assert float(losses.generator_adversarial_loss(ones, kind)) <= float(losses.generator_adversarial_loss(fake, kind))
    with pytest.raises(ValueError, match="lsgan"):
        losses.discriminator_loss(ones, fake, "wgan")


def test_stage_losses_combine_with_the_official_weights(stage1_perceptual):
    person = _images(5)
    target_mask = tf.ones([2, 32, 32, 1])
    outputs = {"coarse_person": _images(6), "cloth_mask": tf.fill([2, 32, 32, 1], 0.25)}
    terms = losses.stage1_losses(person, target_mask, outputs, stage1_perceptual)
    assert float(terms["mask_l1"]) == pytest.approx(0.75)
    assert float(terms["loss"]) == pytest.approx(
        float(terms["l1"]) + float(terms["mask_l1"]) + 3.0 * float(terms["perceptual"]), rel=1e-6)

    alpha = tf.concat([tf.ones([2, 32, 16, 1]), tf.zeros([2, 32, 16, 1])], axis=2)
    stage2 = losses.PerceptualLoss(LossConfig().stage2_vgg_layers, weights="none")
    terms = losses.stage2_losses(person, {"composition_mask": alpha, "tryon": _images(7)}, stage2)
    assert float(terms["composition_mask"]) == pytest.approx(0.5)
    assert float(terms["tv"]) == pytest.approx(32.0)  # one vertical edge of 32 pixels per image
    assert float(terms["loss"]) == pytest.approx(
        0.2 * float(terms["l1"]) + 0.8 * float(terms["perceptual"]) - 0.1 * 0.5 + 5e-6 * 32.0, rel=1e-6)
