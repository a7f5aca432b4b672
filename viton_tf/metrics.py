"""Image metrics for evaluation: SSIM (whole image or inside a region), PSNR, L1, mask IoU.

All take batched images in [-1, 1] (masks in [0, 1]) and return one value per example.
"""
from __future__ import annotations

import tensorflow as tf

# SSIM constants of Wang et al. 2004 for a data range of 2 ([-1, 1]): K1=0.01, K2=0.03,
# an 11x11 Gaussian window with sigma 1.5 (as tf.image.ssim).
_K1, _K2, _RANGE, _WINDOW, _SIGMA = 0.01, 0.03, 2.0, 11, 1.5


def _gaussian_window(channels: int) -> tf.Tensor:
    coords = tf.range(_WINDOW, dtype=tf.float32) - (_WINDOW - 1) / 2.0
    g = tf.exp(-(coords**2) / (2.0 * _SIGMA**2))
    g = g / tf.reduce_sum(g)
    window = tf.tensordot(g, g, axes=0)[:, :, None, None]
    return tf.tile(window, [1, 1, channels, 1])


def ssim_map(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Per-pixel SSIM [B, H, W], averaged over channels ('SAME' padding keeps the size)."""
    a = tf.convert_to_tensor(a, tf.float32)
    b = tf.convert_to_tensor(b, tf.float32)
    window = _gaussian_window(a.shape[-1])

    def blur(x):
        return tf.nn.depthwise_conv2d(x, window, [1, 1, 1, 1], "SAME")

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (_K1 * _RANGE) ** 2, (_K2 * _RANGE) ** 2
    value = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return tf.reduce_mean(value, axis=-1)


def ssim(a: tf.Tensor, b: tf.Tensor, mask: tf.Tensor | None = None) -> tf.Tensor:
    """SSIM per example [B]; with a mask [B, H, W, 1], the mean of the SSIM map inside it."""
    values = ssim_map(a, b)
    if mask is None:
        return tf.reduce_mean(values, axis=[1, 2])
    weights = tf.cast(mask[..., 0] > 0.5, tf.float32)
    return tf.reduce_sum(values * weights, axis=[1, 2]) / tf.maximum(tf.reduce_sum(weights, axis=[1, 2]), 1.0)


def psnr(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """PSNR in dB per example [B] for images in [-1, 1]."""
    return tf.image.psnr(tf.convert_to_tensor(a, tf.float32), tf.convert_to_tensor(b, tf.float32), max_val=_RANGE)


def l1(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Mean absolute difference per example [B]."""
    return tf.reduce_mean(tf.abs(tf.convert_to_tensor(a, tf.float32) - b), axis=[1, 2, 3])


def iou(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Intersection over union of two masks per example [B] (thresholded at 0.5); 1 when both are empty."""
    a = tf.convert_to_tensor(a, tf.float32) > 0.5
    b = tf.convert_to_tensor(b, tf.float32) > 0.5
    inter = tf.reduce_sum(tf.cast(a & b, tf.float32), axis=[1, 2, 3])
    union = tf.reduce_sum(tf.cast(a | b, tf.float32), axis=[1, 2, 3])
    return tf.where(union > 0, inter / tf.maximum(union, 1.0), tf.ones_like(union))


# A pixel "changed" when it moved by more than this (about 16 of 255 levels).
CHANGE = 0.125


def remnant(tryon, person, truth, old_garment, true_garment) -> tf.Tensor:
    """Per example [B]: of the pixels that should have changed because the old garment is gone there
    (the person's old garment region, outside the true new garment, where the truth differs from the
    photo), the share that still shows the old garment (unchanged from the photo). 0 when there are none."""
    moved = lambda a, b: tf.reduce_max(tf.abs(tf.convert_to_tensor(a, tf.float32) - b), axis=-1) > CHANGE
    should = (old_garment[..., 0] > 0.5) & (true_garment[..., 0] <= 0.5) & moved(truth, person)
    kept = should & ~moved(tryon, person)
    count = tf.reduce_sum(tf.cast(should, tf.float32), axis=[1, 2])
    return tf.reduce_sum(tf.cast(kept, tf.float32), axis=[1, 2]) / tf.maximum(count, 1.0)


def fringe(tryon, truth, true_garment, white: float = 0.85) -> tf.Tensor:
    """Per example [B]: of the true garment's boundary pixels (a 3x3 morphological gradient), the share that
    is near-white (every channel above `white` in [-1, 1]) in the try-on but not in the truth."""
    mask = tf.convert_to_tensor(true_garment, tf.float32)
    dilated, eroded = tf.nn.max_pool2d(mask, 3, 1, "SAME"), -tf.nn.max_pool2d(-mask, 3, 1, "SAME")
    boundary = (dilated - eroded)[..., 0] > 0.5
    near_white = lambda image: tf.reduce_min(tf.convert_to_tensor(image, tf.float32), axis=-1) > white
    bad = boundary & near_white(tryon) & ~near_white(truth)
    count = tf.reduce_sum(tf.cast(boundary, tf.float32), axis=[1, 2])
    return tf.reduce_sum(tf.cast(bad, tf.float32), axis=[1, 2]) / tf.maximum(count, 1.0)


def kept_changed(tryon, person, kept, tolerance: float = 3.0 / 255.0) -> tf.Tensor:
    """Per example [B]: the share of the pixels a try-on must keep (`kept` [B, H, W, 1], e.g. the category's
    kept labels) that moved by more than `tolerance` (1.5 of 255 levels in [-1, 1]); 0 when there are none."""
    moved = tf.reduce_max(tf.abs(tf.convert_to_tensor(tryon, tf.float32) - person), axis=-1) > tolerance
    kept = tf.convert_to_tensor(kept, tf.float32)[..., 0] > 0.5
    count = tf.reduce_sum(tf.cast(kept, tf.float32), axis=[1, 2])
    return tf.reduce_sum(tf.cast(kept & moved, tf.float32), axis=[1, 2]) / tf.maximum(count, 1.0)
