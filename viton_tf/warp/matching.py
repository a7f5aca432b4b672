"""Shape contexts of two masks and the matching between them, in TF (shape_context/tps_main.m).

100 contour points per mask, log-polar shape-context histograms, a chi^2 + tangent cost with dummy
points for outliers, and a transport plan between the point sets: `hungarian` is the exact assignment
(scipy, outside the graph, the reference); `sinkhorn` is entropic optimal transport in log domain with
fixed iteration counts, pure TF (differentiable, tf.function/XLA/SavedModel safe)."""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from viton_tf.config import WarpConfig
from viton_tf.data.cloth_mask import max_filter

MATCHERS = ("sinkhorn", "hungarian")


# ---------------------------------------------------------------- contour sampling

def resize_mask(mask: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """Area-downsample when the size divides (XLA has no ResizeArea kernel), else bilinear."""
    in_h, in_w = mask.shape[1], mask.shape[2]
    if in_h is not None and in_w is not None and in_h % height == 0 and in_w % width == 0:
        if (in_h, in_w) == (height, width):
            return mask
        # Block means by a reshape: without XLA avg_pool2d is several times slower.
        blocks = tf.reshape(mask, [-1, height, in_h // height, width, in_w // width, mask.shape[3]])
        return tf.reduce_mean(blocks, axis=[2, 4])
    return tf.image.resize(mask, (height, width), method="bilinear")


def sample_contour(mask: tf.Tensor, config: WarpConfig = WarpConfig()):
    """`config.num_points` points on the boundary of `mask` [B,H,W,1] at the matching size.

    Returns (points [B,N,2] as (x, y) pixels of the matching grid, tangent angles [B,N],
    boundary pixel count [B]). Boundary = mask minus its 3x3 erosion; the points are
    picked by farthest-point sampling (deterministic, roughly even spacing like
    get_samples_1.m) and moved half a pixel outwards onto the 0.5 level line that
    bdry_extract_3.m traces. Tangents follow bdry_extract_3.m: gradient angle + pi/2.
    """
    height, width, num = config.match_height, config.match_width, config.num_points
    mask = tf.convert_to_tensor(mask, tf.float32)
    binary = tf.cast(resize_mask(mask, height, width) > 0.5, tf.float32)
    eroded = -max_filter(-binary, 3)
    boundary = tf.reshape(binary - eroded, [-1, height * width]) > 0.5
    smooth = tf.nn.avg_pool2d(binary, 3, 1, "SAME")[..., 0]
    padded = tf.pad(smooth, [[0, 0], [1, 1], [1, 1]], mode="SYMMETRIC")
    grad_x = tf.reshape(0.5 * (padded[:, 1:-1, 2:] - padded[:, 1:-1, :-2]), [-1, height * width])
    grad_y = tf.reshape(0.5 * (padded[:, 2:, 1:-1] - padded[:, :-2, 1:-1]), [-1, height * width])

    ys, xs = tf.meshgrid(tf.range(height, dtype=tf.float32), tf.range(width, dtype=tf.float32), indexing="ij")
    pixels = tf.stack([tf.reshape(xs, [-1]), tf.reshape(ys, [-1])], axis=-1)  # [HW, 2]
    # Start from the first boundary pixel in raster order (top row, leftmost).
    order = tf.range(height * width, 0, -1, dtype=tf.float32)
    first = tf.argmax(tf.where(boundary, order[None], -1.0), axis=1, output_type=tf.int32)
    # Unrolled: without XLA a while loop's turn costs more than the few ops in it. Pixels off the
    # boundary start (and stay) at -1, below every squared distance.
    # Squared distances from every pixel to all, separably: [W, HW] along x, [H, HW] along y.
    nearest = tf.where(boundary, 1e9, -1.0)
    dist_x = tf.square(pixels[None, :, 0] - tf.range(width, dtype=tf.float32)[:, None])
    dist_y = tf.square(pixels[None, :, 1] - tf.range(height, dtype=tf.float32)[:, None])
    chosen = [first]
    for _ in range(num - 1):
        last = chosen[-1]
        dist = tf.gather(dist_x, last % width) + tf.gather(dist_y, last // width)
        nearest = tf.minimum(nearest, dist)
        chosen.append(tf.argmax(nearest, axis=1, output_type=tf.int32))
    chosen = tf.stack(chosen, axis=1)

    points = tf.gather(pixels, chosen)  # [B, N, 2]
    gx = tf.gather(grad_x, chosen, batch_dims=1)
    gy = tf.gather(grad_y, chosen, batch_dims=1)
    norm = tf.sqrt(gx * gx + gy * gy + 1e-12)
    # The gradient points into the mask: step half a pixel against it.
    points = points - 0.5 * tf.stack([gx, gy], axis=-1) / norm[..., None]
    tangents = tf.atan2(gy, gx) + math.pi / 2.0
    count = tf.reduce_sum(tf.cast(boundary, tf.int32), axis=1)
    return points, tangents, count


# ---------------------------------------------------------------- descriptors and cost

def pairwise_sq_dist(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    # A coordinate at a time: a reduction over an axis of 2 is slow without XLA.
    terms = [tf.square(a[:, :, None, k] - b[:, None, :, k]) for k in range(a.shape[-1])]
    return tf.add_n(terms) if len(terms) > 1 else terms[0]


def shape_context(points: tf.Tensor, weights: tf.Tensor | None = None, config: WarpConfig = WarpConfig()):
    """Log-polar histograms [B,N,angle_bins*radius_bins] of `points` [B,N,2] (sc_compute.m).

    Distances are divided by the mean inlier distance (returned, [B]); points with weight 0
    (matched to a dummy last round) are not counted, fractional weights count fractionally.
    Each point counts itself, as sc_compute.m does. Counts, not normalised.
    """
    points = tf.convert_to_tensor(points, tf.float32)
    if weights is None:
        weights = tf.ones(tf.shape(points)[:2], tf.float32)
    dist = tf.sqrt(tf.maximum(pairwise_sq_dist(points, points), 0.0) + 1e-12) - 1e-6
    dist = tf.maximum(dist, 0.0)
    pair_w = weights[:, :, None] * weights[:, None, :]
    mean_dist = tf.reduce_sum(pair_w * dist, axis=[1, 2]) / (tf.reduce_sum(pair_w, axis=[1, 2]) + 1e-12)
    normalised = dist / (mean_dist[:, None, None] + 1e-12)
    edges = np.logspace(np.log10(config.radius_inner), np.log10(config.radius_outer),
                        config.radius_bins).astype(np.float32)
    radius_bin = tf.add_n([tf.cast(normalised < edge, tf.int32) for edge in edges])  # 0 = outside
    delta = points[:, None, :, :] - points[:, :, None, :]  # [B, i, j] = p_j - p_i
    angle = tf.math.floormod(tf.atan2(delta[..., 1], delta[..., 0]), 2.0 * math.pi)
    angle_bin = tf.minimum(tf.cast(tf.floor(angle / (2.0 * math.pi / config.angle_bins)), tf.int32),
                           config.angle_bins - 1)
    inside = tf.cast(radius_bin > 0, tf.float32) * weights[:, None, :]
    # One bin id per (point, neighbour) pair; a segment sum beats one-hot products here.
    bins = config.angle_bins * config.radius_bins
    batch, num = tf.shape(points)[0], tf.shape(points)[1]
    row = tf.reshape(tf.range(batch * num), [batch, num, 1])
    ids = row * bins + angle_bin * config.radius_bins + tf.maximum(radius_bin - 1, 0)
    hist = tf.math.unsorted_segment_sum(tf.reshape(inside, [-1]), tf.reshape(ids, [-1]), batch * num * bins)
    hist = tf.reshape(hist, [batch, num, bins])
    return hist, mean_dist


def chi2_cost(hist_a: tf.Tensor, hist_b: tf.Tensor) -> tf.Tensor:
    """hist_cost_2.m: chi^2 between row-normalised histograms, [B,Na,Nb] in [0, 1]."""
    eps = 2.2e-16
    a = hist_a / (tf.reduce_sum(hist_a, axis=-1, keepdims=True) + eps)
    b = hist_b / (tf.reduce_sum(hist_b, axis=-1, keepdims=True) + eps)
    # Fewest ops on the [B,Na,Nb,bins] pairs: each is a pass over them without XLA's fusion.
    a, b = a[:, :, None, :], b[:, None, :, :]
    return 0.5 * tf.reduce_sum(tf.math.squared_difference(a, b) / (a + (b + eps)), axis=-1)


def matching_cost(hist_a, hist_b, tangents_a, tangents_b, config: WarpConfig = WarpConfig()) -> tf.Tensor:
    """tps_main.m:122-136: shape + tangent cost, padded with dummies at `dummy_cost`."""
    theta = 0.5 * (1.0 - tf.cos(tangents_a[:, :, None] - tangents_b[:, None, :]))
    cost = (1.0 - config.orientation_weight) * chi2_cost(hist_a, hist_b) + config.orientation_weight * theta
    num = config.num_points
    dummies = int(round(config.dummy_fraction * num))
    padded = tf.pad(cost - config.dummy_cost, [[0, 0], [0, dummies], [0, dummies]])
    return padded + config.dummy_cost


# ---------------------------------------------------------------- matchers

def sinkhorn_plan(cost: tf.Tensor, epsilon: float, iterations: int, epsilon_start: float | None = None) -> tf.Tensor:
    """Entropic transport plan [B,M,M] with unit row and column sums (log domain).

    The temperature anneals geometrically from `epsilon_start` to `epsilon` over the first
    half of the iterations (epsilon scaling: a small epsilon converges in few iterations).
    """
    cost = tf.convert_to_tensor(cost, tf.float32)
    start = max(epsilon_start or epsilon, epsilon)
    ramp = max(iterations // 2, 1)
    schedule = np.maximum(start * (epsilon / start) ** (np.arange(iterations) / ramp), epsilon)

    def logsumexp(x, axis):  # tf.reduce_logsumexp without its checks for infinite maxima
        top = tf.stop_gradient(tf.reduce_max(x, axis=axis, keepdims=True))
        return tf.math.log(tf.reduce_sum(tf.exp(x - top), axis=axis, keepdims=True)) + top

    # Unrolled, potentials kept as [B,M,1] and [B,1,M]: without XLA a while loop's turn costs
    # more than the ops in it.
    f = g = tf.zeros_like(cost[:, :1, :1])
    scaled = {eps: cost / eps for eps in set(schedule.astype(np.float32))}
    for eps in schedule.astype(np.float32):
        f = -eps * logsumexp(g / eps - scaled[eps], axis=2)
        g = -eps * logsumexp(f / eps - scaled[eps], axis=1)
    return tf.exp((f + g - cost) / epsilon)


def _hungarian_numpy(cost: np.ndarray) -> np.ndarray:
    from scipy.optimize import linear_sum_assignment

    plan = np.zeros_like(cost, dtype=np.float32)
    for b in range(cost.shape[0]):
        rows, cols = linear_sum_assignment(cost[b])
        plan[b, rows, cols] = 1.0
    return plan


def hungarian_plan(cost: tf.Tensor) -> tf.Tensor:
    """Exact assignment as a 0/1 plan [B,M,M] (scipy via tf.numpy_function; not exportable)."""
    plan = tf.numpy_function(_hungarian_numpy, [cost], tf.float32, stateful=False)
    return tf.reshape(plan, tf.shape(cost))


def transport_plan(cost: tf.Tensor, config: WarpConfig, matcher: str) -> tf.Tensor:
    if matcher == "sinkhorn":
        return sinkhorn_plan(cost, config.sinkhorn_epsilon, config.sinkhorn_iterations,
                             config.sinkhorn_epsilon_start)
    if matcher == "hungarian":
        return hungarian_plan(cost)
    raise ValueError(f"WarpConfig.matcher: expected one of {MATCHERS}, got {matcher!r}")
