"""Shape-context descriptors and matching (viton_tf/warp/matching.py) on 64x48 masks."""
from __future__ import annotations

import cv2
import numpy as np
import tensorflow as tf
from test_shape_context import AFFINE, HEIGHT, PLAIN, WIDTH, shirt_mask

from viton_tf.warp import matching


def test_contour_points_lie_on_the_boundary_in_graph():
    masks = np.concatenate([shirt_mask(), shirt_mask(AFFINE)])
    function = tf.function(lambda m: matching.sample_contour(m, PLAIN),
                           input_signature=[tf.TensorSpec([None, HEIGHT, WIDTH, 1])], jit_compile=True)
    points, tangents, counts = (t.numpy() for t in function(masks))
    assert points.shape == (2, 100, 2) and tangents.shape == (2, 100)
    for mask, pts, count in zip(masks, points, counts):
        binary = mask[..., 0] > 0.5
        boundary = binary & ~cv2.erode(binary.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        assert count == boundary.sum() >= 100
        ys, xs = np.nonzero(boundary)
        distance = np.sqrt(((pts[:, None] - np.stack([xs, ys], 1)[None]) ** 2).sum(-1)).min(1)
        assert distance.max() <= 0.51  # half a pixel outwards, onto the 0.5 level line
        assert len(np.unique(np.round(pts, 3), axis=0)) == 100
        # Farthest-point sampling spreads them: no two closer than half the mean spacing.
        gaps = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1)) + np.eye(100) * 1e9
        assert gaps.min() > 0.5 * np.sqrt(boundary.sum() / 100.0)


def test_shape_context_histograms_count_neighbours_and_are_scale_invariant():
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 40, (2, 100, 2)).astype(np.float32)
    hist, mean_dist = matching.shape_context(points, None, PLAIN)
    hist = hist.numpy()
    assert hist.shape == (2, 100, 60)
    distance = np.sqrt(((points[:, :, None] - points[:, None]) ** 2).sum(-1))
    np.testing.assert_allclose(mean_dist, distance.mean(axis=(1, 2)), rtol=1e-5)
    # Every point within r_outer mean distances (itself included) lands in exactly one bin.
    within = (distance / distance.mean(axis=(1, 2))[:, None, None] < 2.0).sum(-1)
    np.testing.assert_array_equal(hist.sum(-1), within)
    moved, _ = matching.shape_context(points * 2.5 + 7.0, None, PLAIN)
    np.testing.assert_array_equal(moved.numpy(), hist)
    cost = matching.chi2_cost(hist, hist).numpy()
    assert np.abs(np.diagonal(cost, axis1=1, axis2=2)).max() < 1e-6
    assert cost.min() >= -1e-6 and cost.max() <= 1.0 + 1e-6


def test_sinkhorn_plan_is_doubly_stochastic():
    cost = tf.random.stateless_uniform([2, 125, 125], seed=[1, 2])
    plan = matching.sinkhorn_plan(cost, 0.005, 200, 0.1).numpy()  # random costs converge slowly
    np.testing.assert_allclose(plan.sum(2), 1.0, atol=1e-2)
    np.testing.assert_allclose(plan.sum(1), 1.0, atol=1e-3)
