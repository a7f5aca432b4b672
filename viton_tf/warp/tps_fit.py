"""Thin-plate splines fitted to weighted point pairs and evaluated at query points: the fitting half of
the shape-context warp (viton_tf/warp/shape_context.py)."""
from __future__ import annotations

import tensorflow as tf

from viton_tf.warp.matching import pairwise_sq_dist


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
    kernel = _tps_kernel(pairwise_sq_dist(p, p))
    affine = tf.concat([tf.ones_like(p[..., :1]), p], axis=-1)  # [B, N, 3]
    top = tf.concat([w * kernel + beta[:, None, None] * tf.eye(n)[None], w * affine], axis=2)
    bottom = tf.concat([tf.transpose(affine, [0, 2, 1]), tf.zeros([batch, 3, 3])], axis=2)
    rhs = tf.concat([w * values, tf.zeros([batch, 3, 2])], axis=1)
    solution = tf.linalg.solve(tf.concat([top, bottom], axis=1), rhs)
    return solution[:, :-3], solution[:, -3:]


def eval_tps(points: tf.Tensor, coefficients: tf.Tensor, affine: tf.Tensor, query: tf.Tensor) -> tf.Tensor:
    """The fitted TPS at `query` [B,M,2] -> [B,M,2]."""
    kernel = _tps_kernel(pairwise_sq_dist(query, points))
    query_affine = tf.concat([tf.ones_like(query[..., :1]), query], axis=-1)
    return tf.matmul(kernel, coefficients) + tf.matmul(query_affine, affine)


# ---------------------------------------------------------------- the iterative fit's pieces

def affine_fit(points: tf.Tensor, values: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """Weighted least-squares affine map [B,3,2] (the beta -> infinity limit of the TPS)."""
    affine = tf.concat([tf.ones_like(points[..., :1]), points], axis=-1)
    weighted = affine * weights[..., None]
    normal = tf.matmul(weighted, affine, transpose_a=True) + 1e-6 * tf.eye(3)[None]
    return tf.linalg.solve(normal, tf.matmul(weighted, values, transpose_a=True))


def tps_smoother(points: tf.Tensor, beta: tf.Tensor, queries: list) -> list:
    """For each query set [B,M,2], the matrix [B,M,N] taking values at `points` to the
    regularised TPS (all weights 1) at the queries: one solve shared by every round."""
    n = tf.shape(points)[1]
    batch = tf.shape(points)[0]
    kernel = _tps_kernel(pairwise_sq_dist(points, points))
    affine = tf.concat([tf.ones_like(points[..., :1]), points], axis=-1)
    top = tf.concat([kernel + beta[:, None, None] * tf.eye(n)[None], affine], axis=2)
    bottom = tf.concat([tf.transpose(affine, [0, 2, 1]), tf.zeros([batch, 3, 3])], axis=2)
    rhs = tf.concat([tf.tile(tf.eye(n)[None], [batch, 1, 1]), tf.zeros([batch, 3, n])], axis=1)
    inverse = tf.linalg.solve(tf.concat([top, bottom], axis=1), rhs)  # [B, N+3, N]
    smoothers = []
    for query in queries:
        basis = tf.concat([_tps_kernel(pairwise_sq_dist(query, points)),
                           tf.ones_like(query[..., :1]), query], axis=-1)
        smoothers.append(tf.matmul(basis, inverse))
    return smoothers
