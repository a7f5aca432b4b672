"""The 22-channel clothing-agnostic person representation (paper Sec. 3.1), in TF ops only.

Channels: 0..17 one box of ones per visible keypoint (pose), 18 a blurred body shape, 19..21 the
face and hair pixels of the person; built as the official code does (utils.py:39-80, 318-369).
"""
from __future__ import annotations

import tensorflow as tf

from viton_tf.config import CATEGORIES, CATEGORY_NAMES, DataConfig, RepresentationConfig


def keypoint_box_size(height, config: RepresentationConfig = RepresentationConfig()):
    """Side of the keypoint boxes at an image height: `keypoint_box` at `config.height`, scaled
    with the height to the nearest odd size, at least 1 (11 at 256, 3 at 64)."""
    scaled = tf.cast(height, tf.float32) * (config.keypoint_box / config.height)
    half = tf.maximum(tf.floor((scaled - 1.0) / 2.0 + 0.5), 0.0)
    return tf.cast(2.0 * half + 1.0, tf.int32)


def pose_map(keypoints, height, width, config: RepresentationConfig = RepresentationConfig()):
    """[B, 18, 3] keypoints -> [B, H, W, 18] boxes of ones centred at each visible keypoint."""
    keypoints = tf.convert_to_tensor(keypoints, tf.float32)
    half = tf.cast(keypoint_box_size(height, config) // 2, tf.float32)
    # utils.py:44 truncates the scaled coordinates to whole pixels.
    centre_x = tf.floor(keypoints[..., 0])[..., None]  # [B, K, 1]
    centre_y = tf.floor(keypoints[..., 1])[..., None]
    visible = tf.cast(keypoints[..., 2] > 0.0, tf.float32)[..., None]
    rows = tf.range(height, dtype=tf.float32)
    columns = tf.range(width, dtype=tf.float32)
    in_rows = tf.cast(tf.abs(rows - centre_y) <= half, tf.float32) * visible  # [B, K, H]
    in_columns = tf.cast(tf.abs(columns - centre_x) <= half, tf.float32)  # [B, K, W]
    return tf.einsum("bkh,bkw->bhwk", in_rows, in_columns)


def label_mask(parsing, labels):
    """[..., H, W] label ids -> [..., H, W, 1] float mask of the pixels carrying any of `labels`."""
    parsing = tf.convert_to_tensor(parsing)
    labels = tf.constant(list(labels), dtype=parsing.dtype)
    return tf.cast(tf.reduce_any(tf.equal(parsing[..., None], labels), axis=-1, keepdims=True),
                   tf.float32)


def garment_mask(parsing, labels):
    """The worn garment's pixels (e.g. DataConfig.garment_labels) as a [..., H, W, 1] mask."""
    return label_mask(parsing, labels)


def category_ids(names) -> tf.Tensor:
    """Category names [B] (tf.string: "upper", "lower", "dress") -> int32 [B] indices into CATEGORY_NAMES; an
    unknown name fails with a message listing the three."""
    names = tf.convert_to_tensor(names, tf.string)
    known = tf.equal(names[..., None], tf.constant(CATEGORY_NAMES))
    check = tf.debugging.Assert(tf.reduce_all(tf.reduce_any(known, axis=-1)), [
        f"category: expected one of {', '.join(CATEGORY_NAMES)}, got", names])
    with tf.control_dependencies([check]):
        return tf.argmax(tf.cast(known, tf.int32), axis=-1, output_type=tf.int32)


def category_table(field: str, data: DataConfig = DataConfig(),
                   representation: RepresentationConfig = RepresentationConfig()) -> tf.Tensor:
    """[3, 256] float: row c is 1 at the labels of `field` ("garment_labels", "skin_labels", "kept_labels") of
    category c. The upper category's garment is the dataset's (DataConfig.garment_labels) and what it keeps
    the representation's face and hair, so the upper category is the paper's."""
    rows = []
    for name in CATEGORY_NAMES:
        labels = getattr(CATEGORIES[name], field)
        if name == "upper" and field == "garment_labels":
            labels = data.garment_labels
        if name == "upper" and field == "kept_labels":
            labels = representation.face_hair_labels
        rows.append([1.0 if label in labels else 0.0 for label in range(256)])
    return tf.constant(rows, tf.float32)


def category_mask(parsing, category, table) -> tf.Tensor:
    """parsing [B, H, W] (int labels), category [B] (int32, see category_ids), table [3, 256] (category_table)
    -> [B, H, W, 1]: each example's pixels carrying a label of its category's row."""
    parsing = tf.convert_to_tensor(parsing)
    if parsing.shape.rank == 4:
        parsing = parsing[..., 0]
    rows = tf.gather(tf.convert_to_tensor(table, tf.float32), category)  # [B, 256]
    return tf.gather(rows, tf.clip_by_value(tf.cast(parsing, tf.int32), 0, 255), batch_dims=1)[..., None]


def replaced_mask(parsing, category=None, data: DataConfig = DataConfig(),
                  representation: RepresentationConfig = RepresentationConfig()) -> tf.Tensor:
    """[B, H, W, 1]: the worn garment a try-on of each example's category replaces (`category` [B] int32, see
    category_ids; None: all upper, the dataset's garment_labels)."""
    if category is None:
        return garment_mask(parsing, data.garment_labels)
    return category_mask(parsing, category, category_table("garment_labels", data, representation))


def batch_categories(batch: dict):
    """A reader's batch -> its categories as int32 [B] (category_ids), or None where it has none (all upper)."""
    return category_ids(batch["category"]) if "category" in batch else None


def person_representation(person, parsing, keypoints, config: RepresentationConfig = RepresentationConfig(),
                          category=None):
    """person [B, H, W, 3], parsing [B, H, W] (or [B, H, W, 1]), keypoints [B, 18, 3] ->
    [B, H, W, 22]; the same without the batch axis gives [H, W, 22]. `category` [B] (int32, see category_ids;
    None: all upper) chooses what each example keeps of the person (Category.kept_labels): the upper category
    is the paper's representation, the others are clothing-agnostic only where their garment goes."""
    person = tf.convert_to_tensor(person, tf.float32)
    parsing = tf.convert_to_tensor(parsing)
    keypoints = tf.convert_to_tensor(keypoints, tf.float32)
    unbatched = person.shape.rank == 3
    if unbatched:
        person, parsing, keypoints = person[None], parsing[None], keypoints[None]
        category = None if category is None else tf.convert_to_tensor(category)[None]
    if parsing.shape.rank == 4:
        parsing = parsing[..., 0]
    height, width = tf.shape(person)[1], tf.shape(person)[2]

    pose = pose_map(keypoints, height, width, config)
    if category is None:
        face_hair = label_mask(parsing, config.face_hair_labels)
    else:
        face_hair = category_mask(parsing, category, category_table("kept_labels", representation=config))
    # utils.py:66-67: everything that is not background, minus face and hair (what the category keeps).
    body = tf.cast(tf.not_equal(parsing, 0), tf.float32)[..., None] - face_hair
    # utils.py:75-78 (AREA to 16x12) and 346-348 (bilinear back).
    body = tf.image.resize(body, [config.body_shape_height, config.body_shape_width], method="area")
    body = tf.image.resize(body, tf.stack([height, width]), method="bilinear")
    body = tf.clip_by_value(body, 0.0, 1.0)
    # utils.py:367: the face and hair (what the category keeps) keep the person's colours.
    representation = tf.concat([pose, body, person * face_hair], axis=-1)
    return representation[0] if unbatched else representation
