"""Thin-plate (polyharmonic) spline warping in plain TF ops, a drop-in for tensorflow-addons'
`tfa.image.interpolate_spline`, `dense_image_warp` and `sparse_image_warp`.

Same signatures and semantics as tfa 0.23 (points are (y, x) pixel coordinates), checked against
its outputs by tests/test_tps.py with goldens from tools/make_tps_goldens.py. Unlike tfa, every
function accepts an unknown batch dimension and compiles under `tf.function(jit_compile=True)`,
and float32 results are closer to the exact (float64) spline than tfa's own: the centers are
normalized and the small linear system is solved in float64.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

# tfa's floor under r^2 that keeps log(0) and the gradient of sqrt(0) finite.
EPSILON = 1e-10


def _phi(squared_distance: tf.Tensor, order: int, scale: tf.Tensor) -> tf.Tensor:
    """tfa's polyharmonic kernel of `order`, phi(r^2 s^2) / s^order, for squared distances r^2
    between points divided by `scale` [B, 1, 1]: equal to tfa's system scaled by 1 / s^order,
    including its floor EPSILON under r^2 (in the caller's units)."""
    eps = EPSILON / tf.square(scale)
    r2 = squared_distance
    if order % 2 == 1:  # r^order
        r2 = tf.maximum(r2, eps)
        return tf.sqrt(r2) if order == 1 else tf.pow(r2, 0.5 * order)
    log_r2 = tf.math.log(tf.maximum(r2, eps))
    if order == 2:  # the thin-plate spline r^2 log r = 0.5 r^2 log r^2
        # The 2 log s that log(r^2 s^2) adds is left out: times r^2 it is a quadratic that the
        # spline's constraints (sum w = 0, sum w c = 0) turn into a constant, absorbed by the
        # affine part; keeping it would only cost float32 precision.
        return 0.5 * r2 * log_r2
    log_r2 += 2.0 * tf.math.log(scale)  # log(r^2 s^2): (r^2)^2 is not absorbed for order >= 4
    if order == 4:
        return 0.5 * tf.square(r2) * log_r2
    return 0.5 * tf.pow(tf.maximum(r2, eps), 0.5 * order) * log_r2


def _cross_squared_distance(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """||x_i - y_j||^2 for x [B or none, m, d] and y [B, n, d] -> [B, m, n], as tfa expands it."""
    x_norm = tf.reduce_sum(tf.square(x), -1)[..., :, None]
    y_norm = tf.reduce_sum(tf.square(y), -1)[..., None, :]
    return x_norm - 2.0 * tf.matmul(x, y, transpose_b=True) + y_norm


def _normalizer(train_points):
    """Per-example center [B, 1, d] and scale [B, 1, 1] that bring the centers into [-1, 1].

    The interpolant is unchanged (distances are translation-invariant, the affine part absorbs
    the shift, `_phi` undoes the scale), but in float32 the system in pixel coordinates is so
    ill-conditioned that tfa's flow is off by ~0.25 px at 256x192 with 100 points; normalized,
    it stays within ~0.03 px of float64 there, and ~1e-4 px on smooth garment warps."""
    center = tf.reduce_mean(train_points, 1, keepdims=True)
    scale = tf.reduce_max(tf.abs(train_points - center), [1, 2], keepdims=True)
    scale = tf.where(scale > 0, scale, tf.ones_like(scale))
    # The result does not depend on them, so neither does its gradient.
    return tf.stop_gradient(center), tf.stop_gradient(scale)


def _solve_spline(train_points, train_values, order, regularization_weight, scale):
    """Spline weights w [B, n, k] on the normalized centers and v [B, d + 1, k] on the affine
    part; regularization_weight is in the caller's units, hence the division by scale^order."""
    out_dtype = train_points.dtype
    # The (n + d + 1)^2 system is tiny next to evaluating the spline on every pixel, and float32
    # loses several times more precision in it than in the evaluation: build and solve in float64.
    dtype = tf.float64
    train_points, train_values, scale = (tf.cast(t, dtype) for t in (train_points, train_values,
                                                                    scale))
    n = tf.shape(train_points)[1]
    d = train_points.shape[-1]
    k = train_values.shape[-1]
    if d is None or k is None:
        raise ValueError("interpolate_spline: the last dimension of train_points and "
                         f"train_values must be static, got {train_points.shape} and "
                         f"{train_values.shape}")
    batch = tf.shape(train_points)[0]

    kernel = _phi(_cross_squared_distance(train_points, train_points), order, scale)  # [B, n, n]
    if not (isinstance(regularization_weight, (int, float)) and regularization_weight <= 0):
        weight = tf.cast(regularization_weight, dtype) / tf.pow(scale, float(order))
        kernel += weight * tf.eye(n, dtype=dtype)[None]
    affine = tf.concat([train_points, tf.ones_like(train_points[..., :1])], -1)  # [B, n, d + 1]
    # [[K, P], [P^T, 0]] [w; v] = [f; 0]  (https://en.wikipedia.org/wiki/Polyharmonic_spline)
    top = tf.concat([kernel, affine], 2)
    bottom = tf.concat([tf.transpose(affine, [0, 2, 1]),
                        tf.zeros(tf.stack([batch, d + 1, d + 1]), dtype)], 2)
    lhs = tf.concat([top, bottom], 1)
    rhs = tf.concat([train_values, tf.zeros(tf.stack([batch, d + 1, k]), dtype)], 1)
    weights = tf.cast(tf.linalg.solve(lhs, rhs), out_dtype)
    return weights[:, :n], weights[:, n:]


def _apply_spline(query_points, train_points, w, v, order, scale):
    """Evaluate the spline at normalized query_points [B, m, d] (or [m, d])."""
    kernel = _phi(_cross_squared_distance(query_points, train_points), order, scale)
    query_affine = tf.concat([query_points, tf.ones_like(query_points[..., :1])], -1)
    return tf.matmul(kernel, w) + tf.matmul(query_affine, v)


def interpolate_spline(train_points, train_values, query_points, order: int,
                       regularization_weight=0.0, name: str = "interpolate_spline") -> tf.Tensor:
    """Polyharmonic spline through (train_points [B, n, d], train_values [B, n, k]) evaluated at
    query_points [B, m, d] -> [B, m, k]. order 1: r, 2: r^2 log r (thin plate), 3: r^3, ...
    regularization_weight > 0 trades exact fit for smoothness."""
    with tf.name_scope(name or "interpolate_spline"):
        train_points = tf.convert_to_tensor(train_points)
        train_values = tf.convert_to_tensor(train_values, train_points.dtype)
        query_points = tf.convert_to_tensor(query_points, train_points.dtype)
        center, scale = _normalizer(train_points)
        train_points = (train_points - center) / scale
        w, v = _solve_spline(train_points, train_values, order, regularization_weight, scale)
        return _apply_spline((query_points - center) / scale, train_points, w, v, order, scale)


def interpolate_bilinear(grid, query_points, indexing: str = "ij") -> tf.Tensor:
    """Sample grid [B, H, W, C] at query_points [B, N, 2] -> [B, N, C]; outside the image the
    nearest border pixels are used (tfa's clamping)."""
    if indexing not in ("ij", "xy"):
        raise ValueError(f"interpolate_bilinear: indexing must be 'ij' or 'xy', got {indexing!r}")
    grid = tf.convert_to_tensor(grid)
    query_points = tf.convert_to_tensor(query_points)
    shape = tf.shape(grid)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    ys, xs = tf.unstack(query_points, num=2, axis=-1)
    if indexing == "xy":
        ys, xs = xs, ys

    def corner_and_weight(coords, size):
        floor = tf.clip_by_value(tf.floor(coords), 0.0, tf.cast(size - 2, coords.dtype))
        alpha = tf.clip_by_value(tf.cast(coords - floor, grid.dtype), 0.0, 1.0)
        return tf.cast(floor, tf.int32), alpha[..., None]

    y0, alpha_y = corner_and_weight(ys, height)
    x0, alpha_x = corner_and_weight(xs, width)
    flat = tf.reshape(grid, [-1, channels])
    offsets = tf.range(batch)[:, None] * height * width

    def gather(y, x):
        return tf.gather(flat, offsets + y * width + x)

    top_left, top_right = gather(y0, x0), gather(y0, x0 + 1)
    bottom_left, bottom_right = gather(y0 + 1, x0), gather(y0 + 1, x0 + 1)
    top = alpha_x * (top_right - top_left) + top_left
    bottom = alpha_x * (bottom_right - bottom_left) + bottom_left
    return alpha_y * (bottom - top) + top


def _pixel_grid(height, width, dtype) -> tf.Tensor:
    """(y, x) of every pixel, row-major: [H * W, 2]."""
    ys, xs = tf.meshgrid(tf.range(height), tf.range(width), indexing="ij")
    return tf.cast(tf.reshape(tf.stack([ys, xs], -1), [-1, 2]), dtype)


def dense_image_warp(image, flow, name: str | None = None) -> tf.Tensor:
    """output[b, y, x] = image[b, y - flow[b, y, x, 0], x - flow[b, y, x, 1]], bilinear, with
    border clamping: flow is the negative of the optical flow from output to image."""
    with tf.name_scope(name or "dense_image_warp"):
        image = tf.convert_to_tensor(image)
        flow = tf.convert_to_tensor(flow)
        shape = tf.shape(image)
        batch, height, width = shape[0], shape[1], shape[2]
        query = _pixel_grid(height, width, flow.dtype)[None] - tf.reshape(flow, [batch, -1, 2])
        warped = interpolate_bilinear(image, query)
        return tf.reshape(warped, shape)


def _boundary_points(height, width, num_boundary_points: int, dtype) -> tf.Tensor:
    """tfa's zero-flow anchors: 4 corners and num_boundary_points - 1 more along each edge,
    in tfa's order (row-major over an (n+1) x (n+1) lattice of the image's extent)."""
    steps = np.linspace(0.0, 1.0, num_boundary_points + 1)
    fractions = [(fy, fx) for i, fy in enumerate(steps) for j, fx in enumerate(steps)
                 if i in (0, num_boundary_points) or j in (0, num_boundary_points)]
    extent = tf.cast(tf.stack([height - 1, width - 1]), dtype)
    return tf.constant(fractions, dtype) * extent


def sparse_image_warp(image, source_control_point_locations, dest_control_point_locations,
                      interpolation_order: int = 2, regularization_weight=0.0,
                      num_boundary_points: int = 0, name: str = "sparse_image_warp",
                      flow_stride: int = 1):
    """Warp image [B, H, W, C] so that the pixel at each source control point [B, n, 2] lands on
    its dest control point -> (warped_image [B, H, W, C], dense_flow [B, H, W, 2]).
    num_boundary_points > 0 pins the image border with zero-flow points (1: the 4 corners).
    flow_stride > 1 (not in tfa) evaluates the spline on every flow_stride-th row and column
    only and interpolates the flow bilinearly in between: exact on that lattice, ~flow_stride^2
    times cheaper, and the spline is smooth enough that 4 moves a pixel by < 0.1 px on
    garment-like warps (tests/test_tps.py measures it)."""
    with tf.name_scope(name or "sparse_image_warp"):
        image = tf.convert_to_tensor(image)
        rank = image.shape.rank
        if rank in (2, 3):  # tfa takes [H, W] and [H, W, C] as a batch of one
            image = tf.reshape(image, tf.concat([[1], tf.shape(image)[:2], [-1]], 0))
        dest = tf.convert_to_tensor(dest_control_point_locations)
        source = tf.convert_to_tensor(source_control_point_locations, dest.dtype)
        flows = dest - source
        shape = tf.shape(image)
        batch, height, width = shape[0], shape[1], shape[2]
        if num_boundary_points > 0:
            anchors = _boundary_points(height, width, num_boundary_points, dest.dtype)
            anchors = tf.tile(anchors[None], tf.stack([batch, 1, 1]))
            dest = tf.concat([dest, anchors], 1)
            flows = tf.concat([flows, tf.zeros_like(anchors)], 1)
        center, scale = _normalizer(dest)
        dest = (dest - center) / scale
        w, v = _solve_spline(dest, flows, interpolation_order, regularization_weight, scale)
        if flow_stride == 1:
            grid = (_pixel_grid(height, width, dest.dtype) - center) / scale
            dense_flow = _apply_spline(grid, dest, w, v, interpolation_order, scale)
            dense_flow = tf.reshape(dense_flow, tf.stack([batch, height, width, 2]))
        else:
            # Lattice rows/columns 0, s, 2s, ... up to the first one at or past the last pixel.
            rows = (height - 2) // flow_stride + 2
            cols = (width - 2) // flow_stride + 2
            lattice = _pixel_grid(rows, cols, dest.dtype) * flow_stride
            coarse = _apply_spline((lattice - center) / scale, dest, w, v, interpolation_order,
                                   scale)
            coarse = tf.reshape(coarse, tf.stack([batch, rows, cols, 2]))
            query = _pixel_grid(height, width, dest.dtype) / flow_stride
            query = tf.tile(query[None], tf.stack([batch, 1, 1]))
            dense_flow = interpolate_bilinear(coarse, query)
            dense_flow = tf.reshape(dense_flow, tf.stack([batch, height, width, 2]))
        dense_flow = tf.ensure_shape(dense_flow, image.shape[:3].concatenate([2]))
        warped = dense_image_warp(image, dense_flow)
        if rank in (2, 3):
            warped = warped[0, ..., 0] if rank == 2 else warped[0]
        return warped, dense_flow
