"""The shape-context TPS warp of a product cloth onto a garment mask, in TF (the official VITON MATLAB
code, shape_context/tps_main.m and the files it calls).

6 rounds of match (viton_tf/warp/matching.py) and fit (viton_tf/warp/tps_fit.py), the first one
affine, on masks resized to 64x48. The last fit, inverted, is evaluated on a 10x10 grid of the
target: those control points drive `tps.sparse_image_warp` on the full-size cloth. With the
Sinkhorn matcher everything here is pure TF (differentiable, tf.function/XLA/SavedModel safe).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from viton_tf.config import WarpConfig
from viton_tf.warp import tps
from viton_tf.warp.matching import matching_cost, resize_mask, sample_contour, shape_context, transport_plan
from viton_tf.warp.tps_fit import affine_fit, eval_tps, fit_weighted_tps, tps_smoother


def complete_occluded(target_mask: tf.Tensor, occluder_mask: tf.Tensor, reach: int) -> tf.Tensor:
    """The garment's outline behind what covers it: the occluder pixels with garment on both
    sides within `reach` pixels (left and right, or above and below) join `target_mask`.

    An arm across the torso joins it; an arm hanging beside the torso or below a short
    sleeve has garment on one side only and stays out.
    """
    garment = tf.cast(target_mask > 0.5, tf.float32)

    def left_and_right(mask):
        window = tf.nn.max_pool2d(tf.pad(mask, [[0, 0], [0, 0], [reach, reach], [0, 0]]), [1, reach], 1, "VALID")
        width = tf.shape(mask)[2]
        return window[:, :, :width] * window[:, :, reach + 1:]  # pixels x-reach..x-1 and x+1..x+reach

    above_and_below = tf.transpose(left_and_right(tf.transpose(garment, [0, 2, 1, 3])), [0, 2, 1, 3])
    across = tf.maximum(left_and_right(garment), above_and_below)
    return tf.minimum(target_mask + occluder_mask * across, 1.0)


def _match_points(source_mask, target_mask, config: WarpConfig, matcher: str, occluder_mask=None):
    """tps_main.m's loop. Returns (source points X, target points Y, final plan, beta, valid).

    Coordinates are matching-grid pixels / match_width (better conditioned in float32; the
    fit is scale-equivariant since beta scales with the mean distance squared). Round 1 is
    the exact weighted affine fit (tps_main.m's lambda_o = 1000 "to get affine behavior");
    rounds 2+ are the TPS with beta = mean_dist^2 (tps_main.m:120, beta_init = 1, r = 1),
    mean_dist taken from round 1 so that one solve serves every round, and points matched
    to a dummy keep their previous warped position instead of leaving the fit.
    """
    # Both masks in one batch: half the sequential steps of the point sampling.
    size = (config.match_height, config.match_width)
    target_mask = resize_mask(target_mask, *size)
    if occluder_mask is not None:
        target_mask = complete_occluded(target_mask, resize_mask(occluder_mask, *size), config.occlusion_reach)
    masks = tf.concat([resize_mask(source_mask, *size), target_mask], axis=0)
    points, tangents, counts = sample_contour(masks, config)
    x, y = tf.split(points, 2, axis=0)
    t1, t2 = tf.split(tangents, 2, axis=0)
    count1, count2 = tf.split(counts, 2, axis=0)
    x, y = x / config.match_width, y / config.match_width
    num = config.num_points
    # An (almost) empty or frame-filling mask has no usable contour and would make every solve
    # below singular: match a unit circle instead, and fit_tps returns the identity for it.
    valid = tf.logical_and(count1 >= config.min_boundary_pixels, count2 >= config.min_boundary_pixels)
    angles = tf.range(num, dtype=tf.float32) * (2.0 * np.pi / num)
    circle = tf.stack([0.5 + 0.25 * tf.cos(angles), 0.5 + 0.25 * tf.sin(angles)], axis=-1)[None]
    x = tf.where(valid[:, None, None], x, circle)
    y = tf.where(valid[:, None, None], y, circle)
    t1 = tf.where(valid[:, None], t1, angles[None] + np.pi / 2)
    t2 = tf.where(valid[:, None], t2, angles[None] + np.pi / 2)
    batch = tf.shape(x)[0]
    ones = tf.ones([batch, num], tf.float32)
    tips = x + tf.stack([tf.cos(t1), tf.sin(t1)], axis=-1) / config.match_width  # tps_main.m:216
    xk, tk, w1, w2 = x, t1, ones, ones
    plan = beta = smoothers = None
    for k in range(config.iterations):
        hists, mean_dists = shape_context(tf.concat([xk, y], axis=0), tf.concat([w1, w2], axis=0), config)
        hist1, hist2 = tf.split(hists, 2, axis=0)
        mean_dist2 = tf.split(mean_dists, 2, axis=0)[1]
        plan = transport_plan(matching_cost(hist1, hist2, tk, t2, config), config, matcher)
        real = plan[:, :num, :num]
        w1 = tf.reduce_sum(real, axis=2)
        w2 = tf.reduce_sum(real, axis=1)
        matched_y = tf.matmul(real, y) / (w1[..., None] + 1e-9)
        if k == 0:
            affine = affine_fit(x, matched_y, w1)
            warp = lambda q: tf.matmul(tf.concat([tf.ones_like(q[..., :1]), q], axis=-1), affine)
            new_xk, new_tips = warp(x), warp(tips)
            beta = tf.square(mean_dist2) * config.beta_init
            smoothers = tps_smoother(x, beta, [x, tips])
        else:
            values = w1[..., None] * matched_y + (1.0 - w1[..., None]) * xk
            new_xk, new_tips = (tf.matmul(smoother, values) for smoother in smoothers)
        xk = new_xk
        # tps_main.m:216-228: the warped tangent tips give the new angles.
        tk = tf.atan2(new_tips[..., 1] - xk[..., 1], new_tips[..., 0] - xk[..., 0])
    return x, y, plan, beta, valid


def _control_grid(height: int, width: int, size: int) -> tf.Tensor:
    """`size` x `size` (y, x) points spanning the image, [size*size, 2] in pixels."""
    ys, xs = tf.meshgrid(tf.linspace(0.0, height - 1.0, size), tf.linspace(0.0, width - 1.0, size), indexing="ij")
    return tf.stack([tf.reshape(ys, [-1]), tf.reshape(xs, [-1])], axis=-1)


def fit_tps(source_mask: tf.Tensor, target_mask: tf.Tensor, config: WarpConfig = WarpConfig(),
            matcher: str | None = None, occluder_mask: tf.Tensor | None = None):
    """Control points (source [B,G,2], target [B,G,2]) as (y, x) pixels of the full-size masks.

    `sparse_image_warp(cloth, source, target)` moves the cloth (shaped like `source_mask`)
    onto `target_mask`. G = control_grid^2: the target grid, and where the inverted fit
    sends it in the source. A mask with too few boundary pixels gives the identity.
    """
    matcher = matcher or config.matcher
    source_mask = tf.convert_to_tensor(source_mask, tf.float32)
    target_mask = tf.convert_to_tensor(target_mask, tf.float32)
    x, y, plan, beta, valid = _match_points(source_mask, target_mask, config, matcher, occluder_mask)
    num = config.num_points
    real = plan[:, :num, :num]
    w2 = tf.reduce_sum(real, axis=1)
    matched_x = tf.matmul(real, x, transpose_a=True) / (w2[..., None] + 1e-9)
    coefficients, affine = fit_weighted_tps(y, matched_x, w2, beta)

    def scales(mask):  # full-size pixels per matching-grid pixel, (y, x)
        height = mask.shape[1] if mask.shape[1] is not None else tf.shape(mask)[1]
        width = mask.shape[2] if mask.shape[2] is not None else tf.shape(mask)[2]
        return (tf.cast(height, tf.float32), tf.cast(width, tf.float32),
                tf.cast(height, tf.float32) / config.match_height, tf.cast(width, tf.float32) / config.match_width)

    height, width, target_sy, target_sx = scales(target_mask)
    _, _, source_sy, source_sx = scales(source_mask)
    grid = _control_grid(height, width, config.control_grid)
    target = tf.tile(grid[None], [tf.shape(x)[0], 1, 1])
    # (y, x) full-size pixels -> (x, y) matching-grid pixels (/ match_width) and back, pixel centres aligned.
    query = tf.stack([(target[..., 1] + 0.5) / target_sx - 0.5, (target[..., 0] + 0.5) / target_sy - 0.5], axis=-1)
    mapped = eval_tps(y, coefficients, affine, query / config.match_width) * config.match_width
    source = tf.stack([(mapped[..., 1] + 0.5) * source_sy - 0.5, (mapped[..., 0] + 0.5) * source_sx - 0.5], axis=-1)
    identity = tf.stack([(target[..., 0] + 0.5) / target_sy * source_sy - 0.5,
                         (target[..., 1] + 0.5) / target_sx * source_sx - 0.5], axis=-1)
    source = tf.where(valid[:, None, None], source, identity)
    return source, target


def warp_cloth(cloth: tf.Tensor, cloth_mask: tf.Tensor, target_mask: tf.Tensor,
               config: WarpConfig = WarpConfig(), matcher: str | None = None,
               occluder_mask: tf.Tensor | None = None):
    """Warp the product `cloth` (and its mask) onto `target_mask`: (warped_cloth, warped_mask).

    With `config.neck_label_fix` the neck-label shadow is inpainted first; with
    `config.collar_fix` the inner back collar leaves the mask before matching, and the
    returned mask is the fixed one warped. With `occluder_mask` (arms, hands, hair in front
    of the garment) the matching sees the garment's outline behind them and the returned
    mask is hidden under them. An empty target (no garment to warp onto) gives an empty mask.
    """
    from viton_tf.warp import cloth_fixes

    cloth, cloth_mask = cloth_fixes.fix_cloth(cloth, cloth_mask, config.neck_label_fix, config.collar_fix)
    source, target = fit_tps(cloth_mask, target_mask, config, matcher, occluder_mask)
    warped, flow = tps.sparse_image_warp(tf.concat([cloth, cloth_mask], axis=-1), source, target,
                                         flow_stride=config.flow_stride)
    # dense_image_warp repeats the border pixels outside the product photo (a sleeve cut by
    # the photo's edge would stream off it): there is only white background out there.
    height, width = tf.shape(cloth)[1], tf.shape(cloth)[2]
    ys, xs = tf.meshgrid(tf.range(height, dtype=tf.float32), tf.range(width, dtype=tf.float32), indexing="ij")
    from_y, from_x = ys[None] - flow[..., 0], xs[None] - flow[..., 1]
    inside = (from_y > -0.5) & (from_y < tf.cast(height, tf.float32) - 0.5) \
        & (from_x > -0.5) & (from_x < tf.cast(width, tf.float32) - 0.5)
    inside = tf.cast(inside, tf.float32)[..., None]
    warped_cloth = warped[..., :3] * inside + (1.0 - inside)
    warped_mask = tf.clip_by_value(warped[..., 3:], 0.0, 1.0) * inside
    if occluder_mask is not None:  # the garment is hidden behind the arms and hair in front of it
        warped_mask = warped_mask * (1.0 - tf.convert_to_tensor(occluder_mask, tf.float32))
    # The identity fallback for an empty target would otherwise paste the unwarped product.
    has_target = tf.reduce_any(tf.convert_to_tensor(target_mask) > 0.5, axis=[1, 2, 3])
    return warped_cloth, warped_mask * tf.cast(has_target, tf.float32)[:, None, None, None]
