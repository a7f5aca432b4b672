"""The foreground mask of a product (garment) photo, in TF ops: the one rule that the readers (for
layouts without mask files), the exported model and `viton-tf prepare` all use."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from viton_tf.config import DataConfig
from viton_tf.data.codecs import from_uint8, to_uint8

# A pixel is garment when a channel differs from the background colour by more than this (less on a
# noiseless background): it finds white garments on grey backgrounds, which the mean-RGB level misses.
BACKGROUND_TOLERANCE = 8.0


def cloth_mask_from_photo(cloth: tf.Tensor, threshold: float = DataConfig.cloth_foreground_threshold) -> tf.Tensor:
    """Product foreground [B, H, W, 1] in {0, 1}: pixels darker than the background (the 2-pixel border)
    or coloured unlike it, closed, opened (drops specks), holes filled. On clean white it is the official rule.

    Darker: mean RGB below `threshold` of 255 (model_zalando_tps_warp.py:216-220), or below 3 standard
    deviations and one level under the border's mean where JPEG noise or a grey backdrop puts that lower.
    Unlike: a channel off the border's median colour by over 3 levels plus 3 times the border's noise.
    """
    height, width = cloth.shape[1], cloth.shape[2]
    if height is None or width is None:
        raise ValueError(f"cloth_mask_from_photo: cloth {cloth.shape} needs a static height and width")
    levels = tf.cast(to_uint8(tf.convert_to_tensor(cloth, tf.float32)), tf.float32)  # the photo's exact levels
    batch = tf.shape(levels)[0]
    border = tf.concat([tf.reshape(side, [batch, -1, 3]) for side in
                        (levels[:, :2], levels[:, -2:], levels[:, :, :2], levels[:, :, -2:])], axis=1)
    mean, variance = tf.nn.moments(tf.reduce_mean(border, axis=-1), axes=[1])
    level = tf.minimum(threshold, mean - 3.0 * tf.sqrt(variance) - 1.0)
    count = tf.shape(border)[1]
    median = tf.gather(tf.sort(border, axis=1), [(count - 1) // 2, count // 2], axis=1)
    colour = tf.reduce_mean(median, axis=1)[:, None]  # the background's, [B, 1, 3]
    noise = tf.reduce_mean(tf.reduce_max(tf.abs(border - colour), axis=-1), axis=1)
    tolerance = tf.minimum(BACKGROUND_TOLERANCE, 3.0 + 3.0 * noise)
    darker = tf.reduce_mean(levels, axis=-1) < level[:, None, None]
    unlike = tf.reduce_max(tf.abs(levels - colour[:, None]), axis=-1) > tolerance[:, None, None]
    mask = tf.cast(tf.logical_or(darker, unlike), tf.float32)[..., None]
    size = max(3, round(min(height, width) / 64) | 1)
    dilate = lambda x: max_filter(x, size)
    erode = lambda x: -max_filter(-x, size)
    mask = dilate(erode(erode(dilate(mask))))  # closing, then opening
    # Holes: background the image's edge cannot reach through 4-connected background pixels.
    background = 1.0 - mask[..., 0]
    edge = tf.pad(tf.zeros_like(background[:, 1:-1, 1:-1]), [[0, 0], [1, 1], [1, 1]], constant_values=1.0)
    return 1.0 - _reach(background, edge)[..., None]


def max_filter(image: tf.Tensor, size: int) -> tf.Tensor:
    """Square max filter of odd `size` over [B, H, W, C] (static H and W), equal to
    `tf.nn.max_pool2d(image, size, 1, "SAME")`: the maximum of shifted slices, windows doubled
    (van Herk). Without XLA this is 4-20x faster than max_pool2d on one-channel masks."""
    half = size // 2
    image = tf.pad(image, [[0, 0], [half, half], [half, half], [0, 0]], constant_values=float("-inf"))
    for axis in (1, 2):
        def cut(tensor, start, stop):
            return tensor[:, start:stop] if axis == 1 else tensor[:, :, start:stop]

        out = image.shape[axis] - size + 1
        window, windowed = 1, image
        while 2 * window <= size:  # windowed[i] = max of image[i : i + 2 * window]
            length = windowed.shape[axis]
            windowed = tf.maximum(cut(windowed, 0, length - window), cut(windowed, window, length))
            window *= 2
        image = cut(windowed, 0, out)
        if window < size:  # two overlapping windows cover size
            image = tf.maximum(image, cut(windowed, size - window, size - window + out))
    return image


def sum_filter(image: tf.Tensor, size: int) -> tf.Tensor:
    """Sums over the odd `size` square around each pixel of [B, H, W, C] (zeros outside), by
    shifted slices: without XLA far cheaper than avg_pool2d or a convolution."""
    half = size // 2
    image = tf.pad(image, [[0, 0], [half, half], [half, half], [0, 0]])
    rows = tf.add_n([image[:, i:image.shape[1] - 2 * half + i] for i in range(size)])
    return tf.add_n([rows[:, :, i:image.shape[2] - 2 * half + i] for i in range(size)])


def cloth_mask_from_uint8(photo: np.ndarray, threshold: float = DataConfig.cloth_foreground_threshold) -> np.ndarray:
    """`cloth_mask_from_photo` of one RGB photo, uint8 [H, W, 3]: bool [H, W]. Traced once per
    photo size (3x faster than op by op: the readers call it for every example)."""
    cloth = from_uint8(tf.constant(photo[None]))
    return _traced_mask(cloth, tf.constant(threshold, tf.float32)).numpy()[0, ..., 0] > 0.5


_traced_mask = tf.function(cloth_mask_from_photo)


def _spread_along_rows(reached: tf.Tensor, background: tf.Tensor, axis: int = 2) -> tf.Tensor:
    """[B, H, W]: each run of background pixels in a row (axis 2; a column: axis 1) that holds a
    reached pixel is reached."""
    shape = tf.shape(reached)
    across = 3 - axis  # the axis that numbers the rows (columns)
    length = shape[axis]
    # A foreground pixel starts a new run. The running count as a product with a triangle of ones:
    # exact on {0, 1}, and without XLA several times faster than cumsum.
    size = background.shape[axis]
    triangle = tf.linalg.band_part(tf.ones([size, size]), 0, -1)  # [i, j] = 1 where i <= j
    foreground = 1.0 - background
    run = tf.matmul(foreground, triangle) if axis == 2 else tf.matmul(triangle, foreground, transpose_a=True)
    run = tf.cast(run, tf.int32)
    line = tf.reshape(tf.range(shape[across]), [1, -1, 1] if across == 1 else [1, 1, -1])
    line = tf.reshape(tf.range(shape[0]), [-1, 1, 1]) * shape[across] + line
    ids = line * (length + 1) + run
    segments = shape[0] * shape[across] * (length + 1)
    hit = tf.math.unsorted_segment_max(tf.reshape(reached, [-1]), tf.reshape(ids, [-1]), segments)
    return tf.gather(hit, ids) * background


def _reach(background: tf.Tensor, seeds: tf.Tensor) -> tf.Tensor:
    """The background pixels [B, H, W] 4-connected to `seeds`: a flood fill by whole row and column
    runs (a few sweeps, one per turn of the path, instead of one dilation per pixel of it)."""

    def sweep(reached, _):
        wider = _spread_along_rows(_spread_along_rows(reached, background), background, axis=1)
        return wider, tf.reduce_any(tf.not_equal(wider, reached))

    return tf.while_loop(lambda reached, changed: changed, sweep, [seeds * background, tf.constant(True)])[0]


# Product-photo shapes, measured in the bounding box of the mask: trousers and shorts have an empty gap near the
# middle between two legs in their lower half (a top's body fills the middle, whatever its sleeves do); a dress
# is a long single piece, or one that flares to its hem below a bodice; skirts and shorts start with a straight
# waistband nearly as wide as their widest row (a top starts at its neck and shoulders).
LEGS_ROW_SHARE = 0.4  # of the rows between 55% and 95% of the height, with a gap in the middle 30%
DRESS_ASPECT = 2.0  # height / width; a sleeveless top reaches 1.9
DRESS_FLARE = 1.17  # hem width / the body's (the median width of the rows at least half as wide as the widest)
FLARED_DRESS_ASPECT = 1.1
WAISTBAND, WAISTBAND_WIDTH = 0.04, 0.7  # skirts and shorts: their top rows one run nearly as wide as the widest
SKIRT_WAISTBAND_WIDTH, SKIRT_FLARE = 0.5, 1.1  # or half as wide, when the hem is the widest and flares


def _runs(row: np.ndarray) -> int:
    return int(np.count_nonzero(np.diff(np.concatenate([[0], row.astype(np.int8), [0]])) == 1))


def _has_gap(row: np.ndarray) -> bool:
    """A row of the box: an empty column in its middle 30% with garment on both sides."""
    width = len(row)
    middle = slice(int(0.35 * width), max(int(0.35 * width) + 1, int(0.65 * width)))
    empty = np.nonzero(~row[middle])[0] + middle.start
    return bool(empty.size) and row[:empty[0]].any() and row[empty[-1]:].any()


def product_category(mask: np.ndarray) -> tuple[str, str]:
    """A product photo's garment mask [H, W] or [H, W, 1] (nonzero = garment) -> (category, the reason), the
    category one of config.CATEGORY_NAMES, guessed from the mask's shape alone."""
    mask = np.asarray(mask)
    mask = (mask[..., 0] if mask.ndim == 3 else mask) > 0
    rows, columns = np.nonzero(mask)
    if rows.size == 0:
        raise ValueError("product_category: the product mask is empty")
    box = mask[rows.min():rows.max() + 1, columns.min():columns.max() + 1]
    height, width = box.shape
    lower_rows = box[int(0.55 * height):max(int(0.55 * height) + 1, int(0.95 * height))]
    legs = float(np.mean([_has_gap(row) for row in lower_rows]))
    widths = box.sum(axis=1).astype(np.float64)
    body = float(np.median(widths[widths >= 0.5 * widths.max()]))
    hem = float(np.max(widths[int(0.85 * height):]))
    aspect, flare = height / width, hem / max(body, 1.0)
    if legs > LEGS_ROW_SHARE:
        return "lower", f"two legs in {legs:.0%} of its lower rows"
    if aspect >= DRESS_ASPECT:
        return "dress", f"a long single piece ({aspect:.2f} times as tall as wide)"
    if aspect >= FLARED_DRESS_ASPECT and flare >= DRESS_FLARE:
        return "dress", f"flares {flare:.2f}x to its hem ({aspect:.2f} times as tall as wide)"
    top = box[:max(1, int(WAISTBAND * height))]
    band = top.sum(axis=1).min() / widths.max() if all(_runs(row) == 1 for row in top) else 0.0
    widest_at_hem = widths[:int(0.85 * height)].max(initial=0.0) <= hem
    if aspect < FLARED_DRESS_ASPECT and (band >= WAISTBAND_WIDTH or (
            band >= SKIRT_WAISTBAND_WIDTH and flare >= SKIRT_FLARE and widest_at_hem)):
        return "lower", f"a straight waistband {band:.0%} as wide as its widest row, hem {flare:.2f}x its body"
    return "upper", f"no legs, {aspect:.2f} times as tall as wide, hem {flare:.2f}x its body"
