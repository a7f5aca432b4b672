"""Shape-context matching of two masks and the thin-plate spline it fits, in TF.

Reproduces the official VITON MATLAB code (shape_context/tps_main.m and the files it
calls): 100 contour points per mask, log-polar shape contexts, a chi^2 + tangent cost
with dummy points for outliers, 6 rounds of match-and-fit (the first one affine), all on
masks resized to 64x48. The last fit, inverted, is evaluated on a 10x10 grid of the
target: those control points drive `tps.sparse_image_warp` on the full-size cloth.

Matching is a transport plan between the two point sets plus dummies: `hungarian` is the
exact assignment (scipy, outside the graph, the reference); `sinkhorn` is entropic
optimal transport in log domain with fixed iteration counts, so with it everything here
is pure TF (differentiable, tf.function/XLA/SavedModel safe).
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from viton_tf.config import WarpConfig
from viton_tf.data.cloth_mask import max_filter
from viton_tf.warp import tps

MATCHERS = ("sinkhorn", "hungarian")


# ---------------------------------------------------------------- contour sampling

def _resize_mask(mask: tf.Tensor, height: int, width: int) -> tf.Tensor:
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
    binary = tf.cast(_resize_mask(mask, height, width) > 0.5, tf.float32)
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

def _pairwise_sq_dist(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
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
    dist = tf.sqrt(tf.maximum(_pairwise_sq_dist(points, points), 0.0) + 1e-12) - 1e-6
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


def _plan(cost: tf.Tensor, config: WarpConfig, matcher: str) -> tf.Tensor:
    if matcher == "sinkhorn":
        return sinkhorn_plan(cost, config.sinkhorn_epsilon, config.sinkhorn_iterations,
                             config.sinkhorn_epsilon_start)
    if matcher == "hungarian":
        return hungarian_plan(cost)
    raise ValueError(f"WarpConfig.matcher: expected one of {MATCHERS}, got {matcher!r}")


# ---------------------------------------------------------------- thin-plate spline

def _tps_kernel(sq_dist: tf.Tensor) -> tf.Tensor:
    """Bookstein's U = r^2 log r^2 (0 at r = 0)."""
    return sq_dist * tf.math.log(sq_dist + 1e-12)


def fit_weighted_tps(points: tf.Tensor, values: tf.Tensor, weights: tf.Tensor, beta: tf.Tensor):
    """Regularised TPS (bookstein.m) from `points` to `values` [B,N,2], per-point weights [B,N].

    Minimises sum_i w_i |f(p_i) - v_i|^2 + beta * bending, i.e. solves
    [[W K + beta I, W P], [P^T, 0]] [c; a] = [W v; 0]; a weight of 0 drops the point exactly
    (the hard matcher's dummies), weight 1 everywhere is bookstein.m.
    Returns (kernel coefficients [B,N,2], affine [B,3,2]).
    """
    p = tf.convert_to_tensor(points, tf.float32)
    w = weights[:, :, None]
    n = tf.shape(p)[1]
    batch = tf.shape(p)[0]
    kernel = _tps_kernel(_pairwise_sq_dist(p, p))
    affine = tf.concat([tf.ones_like(p[..., :1]), p], axis=-1)  # [B, N, 3]
    top = tf.concat([w * kernel + beta[:, None, None] * tf.eye(n)[None], w * affine], axis=2)
    bottom = tf.concat([tf.transpose(affine, [0, 2, 1]), tf.zeros([batch, 3, 3])], axis=2)
    rhs = tf.concat([w * values, tf.zeros([batch, 3, 2])], axis=1)
    solution = tf.linalg.solve(tf.concat([top, bottom], axis=1), rhs)
    return solution[:, :-3], solution[:, -3:]


def eval_tps(points: tf.Tensor, coefficients: tf.Tensor, affine: tf.Tensor, query: tf.Tensor) -> tf.Tensor:
    """The fitted TPS at `query` [B,M,2] -> [B,M,2]."""
    kernel = _tps_kernel(_pairwise_sq_dist(query, points))
    query_affine = tf.concat([tf.ones_like(query[..., :1]), query], axis=-1)
    return tf.matmul(kernel, coefficients) + tf.matmul(query_affine, affine)


# ---------------------------------------------------------------- the iterative fit

def _affine_fit(points: tf.Tensor, values: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """Weighted least-squares affine map [B,3,2] (the beta -> infinity limit of the TPS)."""
    affine = tf.concat([tf.ones_like(points[..., :1]), points], axis=-1)
    weighted = affine * weights[..., None]
    normal = tf.matmul(weighted, affine, transpose_a=True) + 1e-6 * tf.eye(3)[None]
    return tf.linalg.solve(normal, tf.matmul(weighted, values, transpose_a=True))


def _tps_smoother(points: tf.Tensor, beta: tf.Tensor, queries: list) -> list:
    """For each query set [B,M,2], the matrix [B,M,N] taking values at `points` to the
    regularised TPS (all weights 1) at the queries: one solve shared by every round."""
    n = tf.shape(points)[1]
    batch = tf.shape(points)[0]
    kernel = _tps_kernel(_pairwise_sq_dist(points, points))
    affine = tf.concat([tf.ones_like(points[..., :1]), points], axis=-1)
    top = tf.concat([kernel + beta[:, None, None] * tf.eye(n)[None], affine], axis=2)
    bottom = tf.concat([tf.transpose(affine, [0, 2, 1]), tf.zeros([batch, 3, 3])], axis=2)
    rhs = tf.concat([tf.tile(tf.eye(n)[None], [batch, 1, 1]), tf.zeros([batch, 3, n])], axis=1)
    inverse = tf.linalg.solve(tf.concat([top, bottom], axis=1), rhs)  # [B, N+3, N]
    smoothers = []
    for query in queries:
        basis = tf.concat([_tps_kernel(_pairwise_sq_dist(query, points)),
                           tf.ones_like(query[..., :1]), query], axis=-1)
        smoothers.append(tf.matmul(basis, inverse))
    return smoothers


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
    target_mask = _resize_mask(target_mask, *size)
    if occluder_mask is not None:
        target_mask = complete_occluded(target_mask, _resize_mask(occluder_mask, *size), config.occlusion_reach)
    masks = tf.concat([_resize_mask(source_mask, *size), target_mask], axis=0)
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
        plan = _plan(matching_cost(hist1, hist2, tk, t2, config), config, matcher)
        real = plan[:, :num, :num]
        w1 = tf.reduce_sum(real, axis=2)
        w2 = tf.reduce_sum(real, axis=1)
        matched_y = tf.matmul(real, y) / (w1[..., None] + 1e-9)
        if k == 0:
            affine = _affine_fit(x, matched_y, w1)
            warp = lambda q: tf.matmul(tf.concat([tf.ones_like(q[..., :1]), q], axis=-1), affine)
            new_xk, new_tips = warp(x), warp(tips)
            beta = tf.square(mean_dist2) * config.beta_init
            smoothers = _tps_smoother(x, beta, [x, tips])
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
