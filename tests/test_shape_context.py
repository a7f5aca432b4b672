"""The shape-context TPS warp: match-and-fit rounds, occluders, gradients (64x48 masks)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import tensorflow as tf

from viton_tf.config import WarpConfig
from viton_tf.warp import matching, shape_context, tps, tps_fit

HEIGHT, WIDTH = 64, 48
PLAIN = WarpConfig(collar_fix=False, neck_label_fix=False)


def shirt_mask(affine: np.ndarray | None = None) -> np.ndarray:
    """A T-shirt silhouette [1, 64, 48, 1], optionally moved by a 2x3 affine map."""
    outline = np.array([[0.3, 0.1], [0.42, 0.12], [0.5, 0.18], [0.58, 0.12], [0.7, 0.1], [0.92, 0.3],
                        [0.82, 0.38], [0.75, 0.3], [0.75, 0.9], [0.25, 0.9], [0.25, 0.3], [0.18, 0.38],
                        [0.08, 0.3]]) * [WIDTH, HEIGHT]
    if affine is not None:
        outline = outline @ affine[:, :2].T + affine[:, 2]
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    cv2.fillPoly(mask, [np.round(outline * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    return mask.astype(np.float32)[None, ..., None]


AFFINE = np.array([[0.85, 0.1, 5.0], [-0.05, 0.9, 4.0]])


def iou(a, b) -> float:
    a, b = np.asarray(a) > 0.5, np.asarray(b) > 0.5
    return float((a & b).sum() / (a | b).sum())


@pytest.mark.parametrize("matcher, tolerance", [("hungarian", 1e-3), ("sinkhorn", 0.5)])
def test_equal_masks_give_the_identity(matcher, tolerance):
    mask = shirt_mask()
    source, target = shape_context.fit_tps(mask, mask, PLAIN, matcher)
    assert source.shape == (1, 100, 2)
    assert np.abs(source - target).max() < tolerance


def test_both_matchers_recover_an_affine_deformation():
    source_mask, target_mask = shirt_mask(), shirt_mask(AFFINE)
    assert iou(source_mask, target_mask) < 0.7
    controls = {}
    for matcher in ("hungarian", "sinkhorn"):
        source, target = shape_context.fit_tps(source_mask, target_mask, PLAIN, matcher)
        warped, _ = tps.sparse_image_warp(source_mask, source, target)
        assert iou(warped, target_mask) > 0.9, matcher
        controls[matcher] = source.numpy()
    assert np.abs(controls["hungarian"] - controls["sinkhorn"]).mean() < 1.0


def test_warp_cloth_in_tf_function_with_unknown_batch():
    cloth = np.tile(np.linspace(-1, 1, WIDTH, dtype=np.float32)[None, None, :, None], (2, HEIGHT, 1, 3))
    masks = np.concatenate([shirt_mask(), shirt_mask()])
    targets = np.concatenate([shirt_mask(AFFINE), shirt_mask()])
    spec = [tf.TensorSpec([None, HEIGHT, WIDTH, 3]), tf.TensorSpec([None, HEIGHT, WIDTH, 1]),
            tf.TensorSpec([None, HEIGHT, WIDTH, 1])]
    function = tf.function(lambda c, m, t: shape_context.warp_cloth(c, m, t, WarpConfig(), "sinkhorn"),
                           input_signature=spec, jit_compile=True)
    warped, warped_mask = function(cloth, masks, targets)
    assert warped.shape == (2, HEIGHT, WIDTH, 3) and warped_mask.shape == (2, HEIGHT, WIDTH, 1)
    assert iou(warped_mask[0], targets[0]) > 0.9
    assert iou(warped_mask[1], masks[1]) > 0.97  # equal masks: (nearly) unchanged


def test_gradients_flow_through_sinkhorn_and_the_warp():
    cost = tf.Variable(tf.random.stateless_uniform([1, 125, 125], seed=[3, 4]))
    with tf.GradientTape() as tape:
        plan = matching.sinkhorn_plan(cost, 0.02, 20, 0.1)
        loss = tf.reduce_sum(plan[:, :100, :100] * tf.range(100, dtype=tf.float32)[None, None])
    gradient = tape.gradient(loss, cost).numpy()
    assert np.isfinite(gradient).all() and np.abs(gradient).max() > 1e-3

    cloth = tf.Variable(tf.random.stateless_uniform([1, HEIGHT, WIDTH, 3], seed=[5, 6]) * 2 - 1)
    points = tf.Variable(tf.constant(np.random.default_rng(1).uniform(5, 40, (1, 100, 2)), tf.float32))
    with tf.GradientTape() as tape:
        warped, _ = shape_context.warp_cloth(cloth, shirt_mask(), shirt_mask(AFFINE), WarpConfig(), "sinkhorn")
        hist, _ = matching.shape_context(points, None, PLAIN)
        fitted = tps_fit.fit_weighted_tps(points, points * 1.1, tf.ones([1, 100]), tf.constant([10.0]))
        loss = tf.reduce_sum(warped) + tf.reduce_sum(fitted[1])
    cloth_gradient, point_gradient = tape.gradient(loss, [cloth, points])
    assert np.abs(cloth_gradient.numpy()).sum() > 0
    assert np.isfinite(point_gradient.numpy()).all()


def test_degenerate_masks_give_the_identity_warp_instead_of_a_singular_solve():
    """An empty or frame-filling target (an untrained G_C predicts these) must not break stage 2."""
    cloth = tf.random.uniform([3, 64, 48, 3], -1.0, 1.0, seed=1)
    band = tf.concat([tf.zeros([3, 16, 48, 1]), tf.ones([3, 32, 48, 1]), tf.zeros([3, 16, 48, 1])], axis=1)
    targets = tf.stack([tf.zeros([64, 48, 1]), tf.ones([64, 48, 1]), band[0]])
    warped, warped_mask = shape_context.warp_cloth(cloth, band, targets,
                                                   WarpConfig(collar_fix=False, neck_label_fix=False))
    assert np.isfinite(warped.numpy()).all()
    # Identity: the cloth's band comes back where it was; onto an empty target nothing goes.
    np.testing.assert_allclose(warped.numpy()[:2], cloth.numpy()[:2], atol=1e-3)
    np.testing.assert_allclose(warped_mask.numpy()[1], band.numpy()[1], atol=1e-3)
    assert warped_mask.numpy()[0].max() == 0.0


def arm_across(mask: np.ndarray, rows: slice, columns: slice) -> tuple[np.ndarray, np.ndarray]:
    """(the mask with an arm painted over it, the arm) [1, 64, 48, 1]."""
    arm = np.zeros_like(mask)
    arm[:, rows, columns] = 1.0
    return mask * (1.0 - arm), arm


def test_occluders_bridging_the_garment_complete_its_outline_and_others_do_not():
    shirt = shirt_mask()
    covered, across = arm_across(shirt, slice(36, 41), slice(8, 40))  # an arm across the torso
    _, beside = arm_across(np.zeros_like(shirt), slice(26, 50), slice(38, 41))  # one hanging beside it
    beside = beside * (1.0 - shirt)
    completed = shape_context.complete_occluded(covered, across + beside, reach=8).numpy()
    np.testing.assert_array_equal(completed, shirt)  # exactly the shirt: the arm beyond it stays out
    assert completed[0, 36:41, 12:36].min() == 1.0 and (completed * beside).max() == 0.0


def test_occluders_lift_the_warp_iou_and_hide_the_garment_under_them():
    cloth = np.tile(np.linspace(-1, 1, WIDTH, dtype=np.float32)[None, None, :, None], (1, HEIGHT, 1, 3))
    target = shirt_mask(AFFINE)
    covered, arm = arm_across(target, slice(34, 40), slice(6, 42))
    bare = shape_context.warp_cloth(cloth, shirt_mask(), covered, PLAIN, "sinkhorn")[1].numpy()
    occluded = shape_context.warp_cloth(cloth, shirt_mask(), covered, PLAIN, "sinkhorn", arm)[1].numpy()
    assert (occluded * arm).max() == 0.0
    assert iou(occluded, covered) > 0.9 and iou(occluded, covered) > iou(bare, covered) + 0.03
