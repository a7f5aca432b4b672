"""G_C, G_R and the PatchGAN: shapes, round trips, and what the official code fixes about them."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from helpers import run_model_test

from viton_tf.config import DiscriminatorConfig, GeneratorConfig, RefinementConfig
from viton_tf.models.discriminator import PatchDiscriminator
from viton_tf.models.generator import Generator
from viton_tf.models.refinement import Refinement

SMALL_GENERATOR = GeneratorConfig(base_filters=8)


def _random(shape, low=-1.0, high=1.0, seed=0):
    return tf.random.stateless_uniform(shape, seed=[seed, 1], minval=low, maxval=high)


def generator_inputs(height, width):
    return {"representation": _random([2, height, width, 22], 0.0, 1.0, 1), "cloth": _random([2, height, width, 3])}


def refinement_inputs(height, width):
    return {"warped_cloth": _random([2, height, width, 3], seed=2), "coarse_person": _random([2, height, width, 3], seed=3),
            "garment_mask": tf.cast(_random([2, height, width, 1], 0.0, 1.0, 4) > 0.5, tf.float32)}


def test_generator():
    run_model_test(Generator, SMALL_GENERATOR, generator_inputs,
                   lambda h, w: {"coarse_person": (2, h, w, 3), "cloth_mask": (2, h, w, 1)})


def test_refinement():
    run_model_test(Refinement, RefinementConfig(), refinement_inputs,
                   lambda h, w: {"composition_mask": (2, h, w, 1), "tryon": (2, h, w, 3)})


def test_discriminator():
    def inputs(height, width):
        return {"condition": _random([2, height, width, 25], seed=5), "image": _random([2, height, width, 3], seed=6)}

    run_model_test(PatchDiscriminator, DiscriminatorConfig(base_filters=16), inputs,
                   lambda h, w: {"output": (2, h // 8 - 2, w // 8 - 2, 1)})


def test_generator_has_the_official_widths_and_one_dropout():
    generator = Generator()
    generator(generator_inputs(64, 48))
    encoder_filters = [block.layers[-2 if i else -1].filters for i, block in enumerate(generator.encoders)]
    assert encoder_filters == [64, 128, 256, 512, 512, 512]
    assert [block.layers[1].filters for block in generator.decoders] == [512, 512, 256, 128, 64]
    with_dropout = [block.name for block in generator.decoders + [generator.output_layer]
                    if any(layer.__class__.__name__ == "Dropout" for layer in block.layers)]
    assert with_dropout == ["decoder_6"]
    # No biases anywhere: batch norm follows every conv but the last (utils.py:381-460).
    kernels = [w.path for w in generator.weights if w.path.endswith("kernel")]
    assert len(kernels) == 12 and not [w.path for w in generator.weights if w.path.endswith("bias")]


@pytest.mark.parametrize("size", [(64, 48), (80, 64)])
def test_generator_ranges_at_any_multiple_of_16(size):
    outputs = Generator(SMALL_GENERATOR)(generator_inputs(*size))
    person, mask = outputs["coarse_person"].numpy(), outputs["cloth_mask"].numpy()
    assert person.shape[1:3] == size and mask.shape[1:3] == size
    assert -1.0 <= person.min() and person.max() <= 1.0 and person.std() > 0
    assert 0.0 <= mask.min() and mask.max() <= 1.0


def test_generator_dropout_only_in_training():
    generator = Generator(SMALL_GENERATOR)
    x = generator_inputs(64, 48)
    a, b = generator(x)["coarse_person"], generator(x)["coarse_person"]
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    c, d = generator(x, training=True)["coarse_person"], generator(x, training=True)["coarse_person"]
    assert np.abs(c.numpy() - d.numpy()).max() > 1e-4


def test_refinement_composes_inside_the_garment_only():
    x = refinement_inputs(64, 48)
    outputs = Refinement()(x)
    alpha, tryon = outputs["composition_mask"].numpy(), outputs["tryon"].numpy()
    garment = x["garment_mask"].numpy()
    assert np.all(alpha[garment == 0] == 0) and alpha[garment == 1].min() > 0
    expected = alpha * x["warped_cloth"].numpy() + (1 - alpha) * x["coarse_person"].numpy()
    np.testing.assert_allclose(tryon, expected, atol=1e-6)
    outside = np.broadcast_to(garment == 0, tryon.shape)
    np.testing.assert_array_equal(tryon[outside], x["coarse_person"].numpy()[outside])


def test_refinement_layer_norm_is_per_sample():
    """slim.layer_norm: each sample normalised on its own, so the batch does not change a sample's alpha."""
    x = refinement_inputs(64, 48)
    refinement = Refinement()
    both = refinement(x)["composition_mask"].numpy()
    first = refinement({k: v[:1] for k, v in x.items()})["composition_mask"].numpy()
    np.testing.assert_allclose(both[:1], first, atol=1e-5)


@pytest.mark.parametrize("height, width, batch", [(1, 1, 1), (4, 3, 2), (8, 6, 1)])
def test_transposed_conv_matmul_matches_keras(height, width, batch):
    """The few-pixel transposed convolution (matmul + overlap-add) computes keras' Conv2DTranspose."""
    import keras

    from viton_tf.models.generator import Conv2DTranspose

    ours = Conv2DTranspose(5, 4, strides=2, padding="same", use_bias=False)
    theirs = keras.layers.Conv2DTranspose(5, 4, strides=2, padding="same", use_bias=False)
    x = _random([batch, height, width, 7], seed=5)
    expected = theirs(x)
    ours(x)
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(ours(x).numpy(), expected.numpy(), atol=1e-5)
    assert ours.get_config()["filters"] == 5
