"""The baselines' networks: shapes, round trips, and what defines each method."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from helpers import run_model_test

from viton_tf.config import CAGANConfig, CRNConfig, GeneratorConfig, PRGANConfig
from viton_tf.models.baselines.cagan import CAGAN
from viton_tf.models.baselines.crn import CRN, cascade_sizes
from viton_tf.models.baselines.prgan import PRGAN

SMALL_GENERATOR = GeneratorConfig(base_filters=8)
SMALL_CRN = CRNConfig(max_filters=32, min_filters=8)


def _random(shape, low=-1.0, high=1.0, seed=0):
    return tf.random.stateless_uniform(shape, seed=[seed, 7], minval=low, maxval=high)


def representation_inputs(height, width):
    return {"representation": _random([2, height, width, 22], 0.0, 1.0, 1), "cloth": _random([2, height, width, 3], seed=2)}


def cagan_inputs(height, width):
    return {"person": _random([2, height, width, 3], seed=3), "worn_cloth": _random([2, height, width, 3], seed=4),
            "cloth": _random([2, height, width, 3], seed=5)}


def test_prgan():
    run_model_test(PRGAN, {"config": PRGANConfig(), "generator_config": SMALL_GENERATOR}, representation_inputs,
                   lambda h, w: {"tryon": (2, h, w, 3)})


def test_prgan_does_not_see_face_and_hair():
    model = PRGAN(generator_config=SMALL_GENERATOR)
    inputs = representation_inputs(64, 48)
    changed = dict(inputs, representation=tf.concat(
        [inputs["representation"][..., :19], _random([2, 64, 48, 3], seed=9)], axis=-1))
    np.testing.assert_array_equal(model(inputs)["tryon"].numpy(), model(changed)["tryon"].numpy())
    pose_changed = dict(inputs, representation=1.0 - inputs["representation"])
    assert np.abs(model(pose_changed)["tryon"].numpy() - model(inputs)["tryon"].numpy()).max() > 1e-4


def test_cagan():
    run_model_test(CAGAN, {"config": CAGANConfig(), "generator_config": SMALL_GENERATOR}, cagan_inputs,
                   lambda h, w: {"tryon": (2, h, w, 3), "generated": (2, h, w, 3), "composition_mask": (2, h, w, 1)})


def test_cagan_blends_the_person_with_its_alpha_mask():
    inputs = cagan_inputs(64, 48)
    outputs = {k: v.numpy() for k, v in CAGAN(generator_config=SMALL_GENERATOR)(inputs).items()}
    mask = outputs["composition_mask"]
    assert 0.0 <= mask.min() and mask.max() <= 1.0
    expected = mask * outputs["generated"] + (1.0 - mask) * inputs["person"].numpy()
    np.testing.assert_allclose(outputs["tryon"], expected, atol=1e-6)


@pytest.mark.parametrize("height,width", [(64, 48), (256, 192)])
def test_crn(height, width):
    run_model_test(CRN, {"config": SMALL_CRN, "height": height, "width": width}, representation_inputs,
                   lambda h, w: {"tryon": (2, h, w, 3)}, sizes=((height, width),))


def test_crn_cascade_starts_at_8x6_and_doubles():
    assert cascade_sizes(256, 192, 8) == [(8, 6), (16, 12), (32, 24), (64, 48), (128, 96), (256, 192)]
    assert cascade_sizes(64, 48, 8) == [(8, 6), (16, 12), (32, 24), (64, 48)]
    model = CRN(CRNConfig(), 256, 192)
    filters = [module.layers[0].filters for module in model.modules_]
    assert filters == [512, 256, 128, 64, 64, 64]
    with pytest.raises(ValueError, match="96x48"):
        CRN(SMALL_CRN, 96, 48)


def test_nonparametric_tryon_onto_an_empty_mask_pastes_nothing(synthetic_world):
    from viton_tf.tryon import nonparametric_tryon
    from viton_tf.data.readers import load_example

    example = load_example(synthetic_world, "00000_00.jpg", "00000_00.jpg", split="train", height=64, width=48)
    batch = {k: tf.constant(example[k][None]) for k in ("person", "cloth", "cloth_mask")}
    garment = tf.constant((example["parsing"] == 5).astype(np.float32)[None, ..., None])
    both = nonparametric_tryon(tf.concat([batch["person"]] * 2, 0), tf.concat([batch["cloth"]] * 2, 0),
                               tf.concat([batch["cloth_mask"]] * 2, 0), tf.concat([garment, tf.zeros_like(garment)], 0))
    assert both["warped_mask"][0].numpy().sum() > 100 and both["warped_mask"][1].numpy().max() == 0.0
    np.testing.assert_array_equal(both["tryon"][1].numpy(), example["person"])
