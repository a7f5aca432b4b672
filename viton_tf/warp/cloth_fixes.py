"""Two defects of product photos that the warp would otherwise carry onto the person (TF ops).

Seen from the front, a product photo shows the inside of the back of the garment through
the neck opening: the inner back collar (a darker band, part of the product mask but never
visible on a person) and often a dark neck label on it. `find_collar` locates both; the
band is grown from the top of the neck opening over pixels of the band's colour, and a
detection that spreads too far (no colour edge to stop it) is dropped, so a garment without
a visible inner collar is left alone.
"""
from __future__ import annotations

import math

import tensorflow as tf

from viton_tf.data.cloth_mask import max_filter, sum_filter

# Fractions of the garment's height / torso width (the mask's geometry), and colour
# tolerances on RGB in [0, 1]; tuned on the synthetic world, checked on real photos.
WINDOW_DEPTH = 0.35      # the neck opening lies in the top 35% of the garment
WINDOW_HALF_WIDTH = 0.3  # and within 30% of the torso width of its centre
SEED_DEPTH = 0.04        # seed rows just below the back neckline (its own row is blurred)
SEED_HALF_WIDTH = 0.05
COLOUR_TOLERANCE = 0.025  # max channel difference to the band's colour: this
RELATIVE_TOLERANCE = 0.1  # plus 10% of the band's channel value
LABEL_DARKNESS = 0.45    # a label is darker than 45% of the garment's luminance
LABEL_CONTRAST = 0.8     # a label pixel is darker than 70% of the band's luminance
LABEL_DEPTH = 0.035      # and reach at most 3.5% of the image height below it
MAX_FILL_FRACTION = 0.5  # a band covering more of its window is a leak, not a collar


def _first_true(flags: tf.Tensor, axis: int) -> tf.Tensor:
    """Index of the first True along `axis` (0 when none)."""
    return tf.argmax(tf.cast(flags, tf.int32), axis=axis, output_type=tf.int32)


def _dilate(mask: tf.Tensor, size: int) -> tf.Tensor:
    """Square max filter."""
    return max_filter(mask, size)


def _erode(mask: tf.Tensor, size: int) -> tf.Tensor:
    return -_dilate(-mask, size)


def _odd(value: float) -> int:
    return max(3, int(round(value)) // 2 * 2 + 1)


def _geometry(mask: tf.Tensor):
    """Per image: top and bottom rows, centre column and torso width of the mask [B,H,W]."""
    height, width = mask.shape[1], mask.shape[2]
    inside = mask > 0.5
    rows_any = tf.reduce_any(inside, axis=2)
    top = _first_true(rows_any, 1)
    bottom = height - 1 - _first_true(tf.reverse(rows_any, [1]), 1)
    span = tf.cast(tf.maximum(bottom - top, 1), tf.float32)
    rows = tf.range(height)[None, :]
    cols = tf.cast(tf.range(width), tf.float32)
    upper = tf.logical_and(rows >= top[:, None], tf.cast(rows, tf.float32) <= tf.cast(top, tf.float32)[:, None] + 0.3 * span[:, None])
    upper_pixels = tf.cast(tf.logical_and(inside, upper[..., None]), tf.float32)
    centre = tf.reduce_sum(upper_pixels * cols, axis=[1, 2]) / tf.maximum(tf.reduce_sum(upper_pixels, axis=[1, 2]), 1.0)
    # Torso width: the narrowest run of mask pixels through the centre column over the
    # middle rows (hanging sleeves may be the widest or the lowest part of the mask).
    cols_b = cols[None, None, :]
    left = tf.reduce_max(tf.where(~inside & (cols_b < centre[:, None, None]), cols_b, -1.0), axis=2)
    right = tf.reduce_min(tf.where(~inside & (cols_b > centre[:, None, None]), cols_b, float(width)), axis=2)
    run = right - left - 1.0  # [B, H]
    centre_col = tf.clip_by_value(tf.cast(tf.round(centre), tf.int32), 0, width - 1)
    on_centre = tf.gather(inside, centre_col, axis=2, batch_dims=1)
    rows_f = tf.cast(rows, tf.float32)
    top_f = tf.cast(top, tf.float32)[:, None]
    middle = (rows_f >= top_f + 0.3 * span[:, None]) & (rows_f <= top_f + 0.9 * span[:, None]) & on_centre
    torso = tf.reduce_min(tf.where(middle, run, float(width)), axis=1)
    return top, bottom, span, centre, torso


def find_collar(cloth: tf.Tensor, cloth_mask: tf.Tensor):
    """(inner back collar [B,H,W,1], neck label [B,H,W,1]) as {0, 1} masks; zeros where none.

    Needs static height and width (the window and its crop are sized from them).
    """
    band, label, _, uncrop = _find_collar_cropped(cloth, cloth_mask)
    return uncrop(band), uncrop(label)


def _find_collar_cropped(cloth: tf.Tensor, cloth_mask: tf.Tensor):
    """`find_collar` inside the window's crop: (band, label, crop, uncrop), the last two
    functions between full-size [B,H,W,C] images and the crop."""
    cloth = tf.convert_to_tensor(cloth, tf.float32)
    cloth_mask = tf.convert_to_tensor(cloth_mask, tf.float32)
    height, width = cloth.shape[1], cloth.shape[2]
    rgb = (cloth + 1.0) / 2.0
    mask = cloth_mask[..., 0]
    top, bottom, span, centre, torso = _geometry(mask)
    rows = tf.cast(tf.range(height), tf.float32)[None, :, None]
    cols = tf.cast(tf.range(width), tf.float32)[None, None, :]
    top_f = tf.cast(top, tf.float32)[:, None, None]
    centre_b = centre[:, None, None]
    inside = mask > 0.5

    # The garment's typical luminance: the mean over the chest rows.
    chest = (rows >= top_f + 0.3 * span[:, None, None]) & (rows <= top_f + 0.6 * span[:, None, None]) & inside
    chest = tf.cast(chest, tf.float32)
    garment_luminance = tf.reduce_sum(chest * tf.reduce_mean(rgb, axis=-1), axis=[1, 2]) \
        / tf.maximum(tf.reduce_sum(chest, axis=[1, 2]), 1.0)

    # Seed: just below the back neckline at the centre column.
    centre_col = tf.clip_by_value(tf.cast(tf.round(centre), tf.int32), 0, width - 1)
    column = tf.gather(mask, centre_col, axis=2, batch_dims=1) > 0.5  # [B, H]
    neckline = tf.cast(_first_true(column, 1), tf.float32)[:, None, None]
    seed_rows = max(2, int(round(SEED_DEPTH * height)))
    seed_half = max(1, int(round(SEED_HALF_WIDTH * width)))
    patch_y = tf.clip_by_value(tf.cast(neckline[:, 0, 0], tf.int32)[:, None] + 1 + tf.range(seed_rows)[None], 0, height - 1)
    patch_x = tf.clip_by_value(centre_col[:, None] + tf.range(-seed_half, seed_half + 1)[None], 0, width - 1)
    patch = tf.gather(tf.gather(rgb, patch_y, axis=1, batch_dims=1), patch_x, axis=2, batch_dims=1)
    patch_in = tf.gather(tf.gather(mask, patch_y, axis=1, batch_dims=1), patch_x, axis=2, batch_dims=1) > 0.5
    # Only the deep middle of the back neckline's notch: its rims are the collar trim.
    first_row = tf.cast(_first_true(tf.transpose(inside, [0, 2, 1]), 2), tf.float32)  # [B, W]
    first_row = tf.where(tf.reduce_any(inside, axis=1), first_row, float(height))
    top_b = tf.cast(top, tf.float32)[:, None]
    notch = neckline[:, 0] - top_b  # [B, 1]
    deep = first_row >= top_b + tf.maximum(1.0, 0.8 * notch)
    cols_1d = tf.cast(tf.range(width), tf.float32)[None]
    left = tf.reduce_max(tf.where(~deep & (cols_1d < centre[:, None]), cols_1d, -1.0), axis=1)
    right = tf.reduce_min(tf.where(~deep & (cols_1d > centre[:, None]), cols_1d, float(width)), axis=1)
    notch_half = tf.minimum(centre - left, right - centre) - 1.0
    notch_half = tf.where(notch[:, 0] >= 1.0, tf.maximum(notch_half, 1.0), 0.6 * seed_half)
    offsets = tf.cast(tf.range(-seed_half, seed_half + 1), tf.float32)
    patch_in = patch_in & (tf.abs(offsets)[None, None, :] <= notch_half[:, None, None])
    patch = tf.reshape(patch, [-1, seed_rows * (2 * seed_half + 1), 3])
    patch_in = tf.reshape(patch_in, [-1, seed_rows * (2 * seed_half + 1)])
    # The band's colour: the topmost colour shared by >= 15% of the seed pixels that is not
    # much darker than the garment (the label is; the collar trim lies lower).
    tolerance = COLOUR_TOLERANCE + RELATIVE_TOLERANCE * patch[:, :, None]
    close = tf.reduce_all(tf.abs(patch[:, :, None] - patch[:, None]) < tolerance, axis=-1)
    close = tf.logical_and(close, patch_in[:, None, :])
    support = tf.reduce_sum(tf.cast(close, tf.float32), axis=2)
    count = tf.reduce_sum(tf.cast(patch_in, tf.float32), axis=1, keepdims=True)
    luminance = tf.reduce_mean(patch, axis=-1)
    candidate = (support >= 0.15 * count) & patch_in & (luminance >= LABEL_DARKNESS * garment_luminance[:, None])
    patch_row = tf.repeat(tf.range(seed_rows, dtype=tf.float32), 2 * seed_half + 1)[None]
    best = tf.argmin(tf.where(candidate, patch_row + luminance, 1e9), axis=1, output_type=tf.int32)
    seed_colour = tf.gather(patch, best, axis=1, batch_dims=1)  # [B, 3]
    has_seed = tf.reduce_any(candidate, axis=1)

    # The rest looks only at the window (the top middle of the garment): crop it.
    crop_h = min(height, math.ceil(WINDOW_DEPTH * height) + 2)
    crop_w = min(width, math.ceil(2 * WINDOW_HALF_WIDTH * width) + 3)
    y0 = tf.clip_by_value(top, 0, height - crop_h)
    x0 = tf.clip_by_value(centre_col - crop_w // 2, 0, width - crop_w)
    crop_y, crop_x = y0[:, None] + tf.range(crop_h)[None], x0[:, None] + tf.range(crop_w)[None]
    crop = lambda image: tf.gather(tf.gather(image, crop_y, axis=1, batch_dims=1), crop_x, axis=2, batch_dims=1)
    rgb, inside = crop(rgb), crop(inside)
    rows = tf.cast(crop_y, tf.float32)[:, :, None]
    cols = tf.cast(crop_x, tf.float32)[:, None, :]
    window = (rows >= top_f) & (rows <= top_f + WINDOW_DEPTH * span[:, None, None]) \
        & (tf.abs(cols - centre_b) <= WINDOW_HALF_WIDTH * torso[:, None, None]) & inside

    tolerance = COLOUR_TOLERANCE + RELATIVE_TOLERANCE * seed_colour[:, None, None]
    similar = tf.reduce_all(tf.abs(rgb - seed_colour[:, None, None]) < tolerance, axis=-1)
    allowed = tf.cast(window & similar, tf.float32)[..., None]
    start = (rows > neckline) & (rows <= neckline + seed_rows) & (tf.abs(cols - centre_b) <= seed_half)
    region = allowed * tf.cast(start, tf.float32)[..., None]
    steps = max(4, int(0.1 * (height + width)))  # 5x5 steps: 2 px each, across the window
    # A band reaching its window's rim (but for the neckline on top) leaks: it is dropped below.
    window_f = tf.cast(window, tf.float32)[..., None]
    rim = window_f * (1.0 - _erode(window_f, 3))
    rim = rim * tf.cast(rows > neckline + 1.0, tf.float32)[..., None]
    # Four steps a turn, and no more turns once every band has stopped growing or leaked (either
    # way its outcome is settled): without XLA, turns cost more than the max filters in them.
    grow = lambda r: _dilate(r, 5) * allowed

    def turn(region, _):
        grown = grow(grow(grow(grow(region))))
        growing = tf.reduce_any(tf.not_equal(grown, region), axis=[1, 2, 3])
        leaked = tf.reduce_any(grown * rim > 0, axis=[1, 2, 3])
        return grown, tf.reduce_any(growing & ~leaked)

    region = tf.while_loop(lambda r, unsettled: unsettled, turn, (region, tf.constant(True)),
                           maximum_iterations=steps // 4)[0]
    for _ in range(steps % 4):
        region = grow(region)

    closing = _odd(0.08 * width)
    filled = _erode(_dilate(region, closing), closing) * tf.cast(window, tf.float32)[..., None]
    dark_below = LABEL_CONTRAST * tf.reduce_mean(seed_colour, axis=-1)
    dark = tf.cast(tf.reduce_mean(rgb, axis=-1, keepdims=True) < dark_below[:, None, None, None], tf.float32)
    # Labels are sewn at the middle of the back neckline.
    label_zone = (rows >= neckline - 1.0) & (rows <= neckline + max(2.0, LABEL_DEPTH * height)) \
        & (tf.abs(cols - centre_b) <= notch_half[:, None, None] + 1.0) & window
    label = dark * _dilate(region, closing) * tf.cast(label_zone, tf.float32)[..., None] * (1.0 - region)
    label_area = tf.reduce_sum(label, axis=[1, 2, 3])
    min_area = max(2.0, 4e-4 * height * width)
    max_area = 0.01 * height * width

    # A plausible band: found, touching neither the bottom nor the sides of its window, and
    # far from filling it.
    band = tf.maximum(filled, label)
    area = tf.reduce_sum(band, axis=[1, 2, 3])
    leak = tf.reduce_sum(region * rim, axis=[1, 2, 3]) > 0
    plausible = has_seed & ~leak & (area <= MAX_FILL_FRACTION * tf.reduce_sum(window_f, axis=[1, 2, 3])) \
        & (area >= min_area)
    keep = tf.cast(plausible, tf.float32)[:, None, None, None]
    has_label = tf.cast(plausible & (label_area >= min_area) & (label_area <= max_area), tf.float32)
    label = _dilate(label, 3) * tf.cast(inside, tf.float32)[..., None] * has_label[:, None, None, None]

    # Back to the full size.
    from_y = tf.range(height)[None] - y0[:, None]
    from_x = tf.range(width)[None] - x0[:, None]
    in_crop = tf.cast((from_y >= 0) & (from_y < crop_h), tf.float32)[:, :, None, None] \
        * tf.cast((from_x >= 0) & (from_x < crop_w), tf.float32)[:, None, :, None]
    from_y, from_x = tf.clip_by_value(from_y, 0, crop_h - 1), tf.clip_by_value(from_x, 0, crop_w - 1)
    uncrop = lambda image: in_crop * tf.gather(tf.gather(image, from_y, axis=1, batch_dims=1), from_x,
                                               axis=2, batch_dims=1)
    return band * keep, label, crop, uncrop


def inpaint(image: tf.Tensor, hole: tf.Tensor, valid: tf.Tensor, iterations: int) -> tf.Tensor:
    """Fill `hole` [B,H,W,1] from the `valid` pixels around it by repeated masked 3x3 means."""
    known = valid * (1.0 - hole)

    def step(image, known):  # 3x3 sums: the ratio of the two is the masked mean
        sums = sum_filter(tf.concat([image * known, known], axis=-1), 3)
        total, weight = sums[..., :-1], sums[..., -1:]
        fresh = hole * (1.0 - known) * tf.cast(weight > 0, tf.float32)
        image = image * (1.0 - fresh) + fresh * total / tf.maximum(weight, 1e-6)
        return image, tf.maximum(known, fresh)

    for _ in range(iterations):  # unrolled: without XLA a while loop's turn costs more than its ops
        image, known = step(image, known)
    return image


def fix_cloth(cloth: tf.Tensor, cloth_mask: tf.Tensor, neck_label: bool = True, collar: bool = True):
    """Both fixes from one detection: (cloth without the label, mask without the collar)."""
    cloth = tf.convert_to_tensor(cloth, tf.float32)
    cloth_mask = tf.convert_to_tensor(cloth_mask, tf.float32)
    if not (neck_label or collar):
        return cloth, cloth_mask
    band, label, crop, uncrop = _find_collar_cropped(cloth, cloth_mask)
    if neck_label:  # inpainted inside the crop: a quarter of the pixels
        iterations = max(3, cloth.shape[2] // 24)
        # Most photos have no label: skip the inpainting then (it would change nothing).
        patched = tf.cond(tf.reduce_any(label > 0), lambda: inpaint(crop(cloth), label, crop(cloth_mask), iterations),
                          lambda: crop(cloth))
        label = uncrop(label)
        cloth = cloth * (1.0 - label) + uncrop(patched) * label
    if collar:
        cloth_mask = cloth_mask * (1.0 - uncrop(band))
    return cloth, cloth_mask
