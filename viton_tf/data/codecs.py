"""Image codecs in TF ops (SavedModel-safe): the one [-1, 1] <-> uint8 conversion, checked image
decoding with a size limit read from the header, and the palette-aware parsing-map decoder."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_PALETTE = 3  # IHDR colour type of a palette PNG (VITON-HD's parsing maps)


def to_uint8(images):
    """Float images in [-1, 1] -> uint8 0..255: clipped, rounded to the nearest level (halves to even).
    NumPy in, NumPy out; tensors in, tensors out."""
    if isinstance(images, np.ndarray):
        return np.round((np.clip(images, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
    return tf.cast(tf.round((tf.clip_by_value(images, -1.0, 1.0) + 1.0) * 127.5), tf.uint8)


def from_uint8(images):
    """uint8 (or float 0..255) images -> float32 in [-1, 1]. NumPy in, NumPy out; tensors in, tensors out."""
    if isinstance(images, np.ndarray):
        return images.astype(np.float32) / 127.5 - 1.0
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def resize_photo(image: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """uint8 [..., h, w, 3] -> float [..., H, W, 3] in [-1, 1]: bilinear, antialiased when shrinking (like
    OpenCV's INTER_AREA). The one photo resize of training's pipeline and the exported model."""
    image = tf.image.resize(tf.cast(image, tf.float32), [height, width], method="bilinear", antialias=True)
    return from_uint8(tf.clip_by_value(image, 0.0, 255.0))


def _big_endian(data: tf.Tensor, offset) -> tf.Tensor:
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(data, offset, 4), tf.uint8), tf.int64)
    return raw[0] * 16777216 + raw[1] * 65536 + raw[2] * 256 + raw[3]


def is_png(data: tf.Tensor) -> tf.Tensor:
    return tf.strings.substr(data, 0, 8) == PNG_SIGNATURE


def image_size(data: tf.Tensor, name: str) -> tf.Tensor:
    """(height, width) int64 of an encoded JPEG or PNG from its header alone, without decoding the pixels
    (JPEG: the SOF marker via tf.image.extract_jpeg_shape; PNG: the IHDR chunk)."""
    checks = [tf.debugging.Assert(tf.logical_or(is_png(data), tf.io.is_jpeg(data)),
                                  [f"{name}: not a JPEG or PNG image"])]
    with tf.control_dependencies(checks):
        return tf.cond(is_png(data),
                       lambda: tf.stack([_big_endian(data, 20), _big_endian(data, 16)]),
                       lambda: tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int64))


def decode_photo(data: tf.Tensor, name: str, max_side: int) -> tf.Tensor:
    """uint8 [h, w, 3] of a JPEG or PNG; INVALID_ARGUMENT naming `name` when it is neither, or when its
    header says a side is longer than `max_side` (checked before decoding, so a huge image costs nothing)."""
    size = image_size(data, name)
    check = tf.debugging.assert_less_equal(
        tf.reduce_max(size), tf.constant(max_side, tf.int64),
        message=f"{name}: image larger than the limit of {max_side} pixels on its long side")
    with tf.control_dependencies([check]):
        # The accurate integer IDCT decodes a JPEG exactly as OpenCV and PIL do (TF's default fast one is off by
        # up to 16 levels), so a model sees the pixels it was evaluated and trained on, whoever decoded them.
        return tf.cond(is_png(data), lambda: tf.io.decode_png(data, channels=3),
                       lambda: tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE"), name=name)


def png_palette(data: tf.Tensor) -> tf.Tensor:
    """The PLTE colours [n, 3] of a palette PNG (walks the chunks up to PLTE)."""
    size = tf.cast(tf.strings.length(data), tf.int64)

    def not_found(offset):
        return tf.logical_and(offset + 8 <= size, tf.strings.substr(data, offset + 4, 4) != "PLTE")

    offset = tf.while_loop(not_found, lambda offset: [offset + 12 + _big_endian(data, offset)],
                           [tf.constant(8, tf.int64)])[0]
    tf.debugging.Assert(offset + 8 <= size, ["parse_image: palette PNG without a PLTE chunk"])
    colours = tf.io.decode_raw(tf.strings.substr(data, offset + 8, _big_endian(data, offset)), tf.uint8)
    return tf.reshape(colours, [-1, 3])


def decode_parsing(data: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """LIP label ids int32 [H, W] from a grayscale or palette PNG (nearest-neighbour resize)."""
    png = is_png(data)
    header = tf.io.decode_raw(tf.strings.substr(data, 24, 2), tf.uint8)  # IHDR bit depth, colour type

    def from_palette():
        colours = tf.image.resize(tf.io.decode_png(data, channels=3), [height, width], method="nearest")
        key = lambda rgb: (tf.cast(rgb[..., 0], tf.int32) * 65536 + tf.cast(rgb[..., 1], tf.int32) * 256
                           + tf.cast(rgb[..., 2], tf.int32))
        # Each colour's first index in the palette: a binary search in the stably sorted palette
        # (an [H, W, 256] comparison would cost more than the rest of the decoding).
        palette = key(png_palette(data))
        order = tf.argsort(palette, stable=True)
        ordered = tf.gather(palette, order)
        pixels = tf.reshape(key(colours), [-1])
        position = tf.minimum(tf.searchsorted(ordered, pixels, side="left"), tf.size(palette) - 1)
        found = tf.gather(ordered, position) == pixels
        return tf.reshape(tf.where(found, tf.gather(order, position), 0), [height, width])

    def from_grey():
        labels = tf.io.decode_image(data, channels=1, expand_animations=False)
        labels = tf.image.resize(labels, [height, width], method="nearest")[..., 0]
        bit_depth = tf.cast(header[0], tf.int32)
        # Decoders stretch 1/2/4-bit grey to 0..255; undo it to get the ids back.
        stretch = tf.where(tf.logical_and(png, bit_depth < 8), 255 // (2 ** bit_depth - 1), 1)
        return tf.cast(labels, tf.int32) // stretch

    return tf.cond(tf.logical_and(png, header[1] == PNG_PALETTE), from_palette, from_grey)
