"""The whole try-on as one tf.Module in TF ops: preprocess -> the one forward -> postprocess.

encoded person photo, product photo, parsing PNG, keypoints -> resize to the model's size ->
22-channel representation -> G_C (coarse person, cloth mask) -> shape-context TPS warp of the
product onto that mask (Sinkhorn matching) -> G_R composition -> PNG.

`viton_forward` and `refinement_inputs` are the VITON forward that training (stage 2), export,
evaluation and the benchmarks all call. Signatures: `serving_default` (bytes in, PNG bytes out,
for TF Serving) and `tryon_tensors` (float tensors at the model's size, as viton_tf.data.readers
gives them; out: tryon, coarse_person, garment_mask (G_C's mask > 0.5), warped_cloth, composition_mask).
"""
from __future__ import annotations

import types

import tensorflow as tf

from viton_tf.config import CATEGORIES, CATEGORY_NAMES, LIP, DataConfig, RepresentationConfig, WarpConfig
from viton_tf.data.cloth_mask import cloth_mask_from_photo
from viton_tf.data.codecs import decode_parsing, decode_photo, from_uint8, image_size, resize_photo, to_uint8
from viton_tf.methods import EXPORTABLE as METHODS
from viton_tf.representation import category_ids, category_mask, category_table, label_mask, person_representation
from viton_tf.warp.shape_context import warp_cloth

PRECISIONS = ("float32", "bfloat16")
# G_C's clothing mask is binarised at 0.5 before the warp: model_zalando_refine_test.py:138.
GARMENT_MASK_THRESHOLD = 0.5
# The longest side of a photo the served model decodes (read from the header first): 4096 px keeps
# one decoded image under 50 MB; VITON-HD photos are 1024x768.
MAX_IMAGE_SIDE = 4096


def as_float32(outputs: dict) -> dict:
    """A network's outputs in float32 (under a mixed Keras policy they come in float16 or bfloat16)."""
    return {name: tf.cast(value, tf.float32) for name, value in outputs.items()}


def make_warp(config: WarpConfig, xla: bool = False, one_by_one: bool = True):
    """(cloth, cloth_mask, target_mask, occluder_mask) -> (warped_cloth, warped_mask) on a batch.

    `one_by_one` warps each example alone (tf.map_fn), so an example's answer never depends on what it is
    batched with (the matching, and oneDNN's kernels, choose differently at other batch sizes) and a
    compiled warp compiles once, at batch 1. `xla=True` compiles it (faster on CPU, but stock TF Serving
    refuses must-compile functions unless started with --xla_cpu_compilation_enabled)."""
    def warp(cloth, cloth_mask, target, occluders=None):
        return warp_cloth(cloth, cloth_mask, target, config, occluder_mask=occluders)

    if xla:
        warp = tf.function(warp, jit_compile=True)
    if not one_by_one:
        return warp

    def warp_one_by_one(cloth, cloth_mask, target, occluders=None):
        tensors = (cloth, cloth_mask, target) + (() if occluders is None else (occluders,))
        spec = (tf.TensorSpec(cloth.shape[1:], tf.float32), tf.TensorSpec(cloth_mask.shape[1:], tf.float32))
        return tf.map_fn(lambda example: tuple(t[0] for t in warp(*(t[None] for t in example))), tensors,
                         fn_output_signature=spec)

    return warp_one_by_one


def refinement_inputs(generator, representation, cloth, cloth_mask, occluder_mask, warp, target_mask=None,
                      training: bool = False) -> dict:
    """G_C's coarse person, the garment mask (G_C's mask > 0.5 unless `target_mask` is given), the cloth
    warped onto it by `warp` (see make_warp), and the warp's own mask."""
    coarse = as_float32(generator({"representation": representation, "cloth": cloth}, training=training))
    if target_mask is None:
        target_mask = tf.cast(coarse["cloth_mask"] > GARMENT_MASK_THRESHOLD, tf.float32)
    warped_cloth, warped_mask = warp(cloth, cloth_mask, target_mask, occluder_mask)
    return {"warped_cloth": warped_cloth, "coarse_person": coarse["coarse_person"], "garment_mask": target_mask,
            "warped_mask": warped_mask}


def refine(refinement, inputs: dict, training: bool = False) -> dict:
    """G_R on the refinement inputs: {"tryon", "composition_mask"} in float32."""
    return as_float32(refinement({name: inputs[name] for name in ("warped_cloth", "coarse_person", "garment_mask")},
                               training=training))


def viton_forward(generator, refinement, representation, cloth, cloth_mask, occluder_mask, warp) -> dict:
    """The paper's try-on (inference): G_C -> mask > 0.5 -> warp -> G_R -> composition."""
    inputs = refinement_inputs(generator, representation, cloth, cloth_mask, occluder_mask, warp)
    return {**inputs, **refine(refinement, inputs)}


def nonparametric_tryon(person, cloth, cloth_mask, target_mask, occluder_mask=None,
                        config: WarpConfig = WarpConfig(), warp=None) -> dict:
    """The paper's non-parametric warped synthesis: the product warped by shape-context TPS onto
    the person's garment region and pasted inside it, no learning (nothing tells it what belongs
    outside: arms, background). `warped_mask` is the whole warp, `composition_mask` what is pasted."""
    warp = warp or make_warp(config)
    warped_cloth, warped_mask = warp(cloth, cloth_mask, target_mask, occluder_mask)
    composition_mask = warped_mask * target_mask
    return {"tryon": composition_mask * warped_cloth + (1.0 - composition_mask) * person,
            "warped_cloth": warped_cloth, "warped_mask": warped_mask, "composition_mask": composition_mask}


# What the real-photo try-on never repaints is each category's kept labels (config.CATEGORIES: face and hair,
# and for a lower-body garment the top, arms and the rest above it); its skin labels are where new skin may go.
# An arm-labelled pixel farther than this from the face's median colour ([-1, 1] RGB, ~57 levels) is a sleeve.
SKIN_COLOUR_DISTANCE = 0.45
# The layout's garment probability is cut lower than G_C's: its misses show the background at the garment's
# edge (a fringe), its excess only paints a pixel of garment; chosen on a synthetic world, checked on another.
LAYOUT_GARMENT_THRESHOLD = 0.4
# The garment's edge is feathered over two rings outside it: the layout's own probability sets the weight,
# never under these (a miss of a pixel or two blends with the background instead of showing it).
EDGE_FLOOR = (0.4, 0.15)
EDGE_PROBABILITY_FLOOR = 0.05


def _masked_median(image: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Per-example median colour [B, 3] of `image` [B, H, W, 3] over `mask` [B, H, W, 1] (NaN-free: 0 if empty)."""
    values = tf.reshape(image, [tf.shape(image)[0], -1, 3])
    inside = tf.reshape(mask, [tf.shape(mask)[0], -1, 1]) > 0.5
    ordered = tf.sort(tf.where(inside, values, float("inf")), axis=1)
    count = tf.reduce_sum(tf.cast(inside[..., 0], tf.int32), axis=1)
    middle = tf.gather(ordered, tf.maximum(count // 2, 0), axis=1, batch_dims=1)
    return tf.where(count[:, None] > 0, middle, 0.0)


def _spread_colours(image: tf.Tensor, mask: tf.Tensor, pixels: int) -> tf.Tensor:
    """`image` with its colours inside `mask` spread `pixels` outward (so bilinear sampling at the garment's
    edge never mixes in the product photo's white background: no fringe)."""
    from viton_tf.warp.cloth_fixes import inpaint

    return inpaint(image, 1.0 - mask, tf.ones_like(mask), pixels)


def _dilate(mask: tf.Tensor, pixels: int) -> tf.Tensor:
    return tf.nn.max_pool2d(mask, 2 * pixels + 1, 1, "SAME")


def _erode(mask: tf.Tensor, pixels: int) -> tf.Tensor:
    return -_dilate(-mask, pixels)


def _feathered_edge(garment: tf.Tensor, probability: tf.Tensor, ring: int) -> tf.Tensor:
    """The garment's weight on the two rings of `ring` pixels outside it: the layout's probability, rescaled
    so that LAYOUT_GARMENT_THRESHOLD is 1, and at least EDGE_FLOOR."""
    inner, band = _dilate(garment, ring) - garment, _dilate(garment, 2 * ring) - garment
    span = LAYOUT_GARMENT_THRESHOLD - EDGE_PROBABILITY_FLOOR
    soft = tf.clip_by_value((probability - EDGE_PROBABILITY_FLOOR) / span, 0.0, 1.0)
    return band * tf.maximum(soft, inner * EDGE_FLOOR[0] + (1.0 - inner) * EDGE_FLOOR[1])


def _smooth_outline(mask: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """A binary mask [H, W, 1] at the model's size as a weight at `size` whose outline is smooth, not the
    model's pixel staircase: the mask blurred (1-2-1), upsampled, and its level 0.5 made a soft edge that
    reaches at most half a model pixel outside the mask."""
    taps = tf.constant([0.25, 0.5, 0.25])
    kernel = (taps[:, None] * taps[None, :])[:, :, None, None]
    blurred = tf.nn.conv2d(mask[None], kernel, 1, "SAME")[0]
    level = tf.clip_by_value((tf.image.resize(blurred, size, method="bilinear") - 0.25) / 0.5, 0.0, 1.0)
    return level * level * (3.0 - 2.0 * level)


# Lower-body garments and dresses are placed on a real photo by the body's anchors, not by a network trained
# on the synthetic world's full-length bodies: VITON-HD-style photos end at the thighs, so most of a pair of
# trousers lies outside the frame, and only a uniform scale keeps the product's proportions (and its print).
# Trousers and skirts: the product's waistband on the top of the worn lower garment (else a little above the
# hips), as wide as the garment's top rows. Dresses are cut at half the product's height: the bodice is tried on as a
# top (the upper layout network and the shape-context warp fit it to the torso and arms), and the skirt is then
# placed as a lower-body garment whose waistband is the new bodice's hem (`_skirt_under_bodice`).
LOWER, DRESS = CATEGORY_NAMES.index("lower"), CATEGORY_NAMES.index("dress")
WAIST_BAND = 0.03  # of the height: the rows whose widths are averaged at a top edge
HIP_WAIST_WIDTH, HIP_WAIST_RISE = 1.8, 0.2  # without a worn lower garment: waist width and rise, x hip distance
CHEST_SHARE = 0.3  # the chest row: this share of the way from the shoulders to the hips


def _row_extents(mask: tf.Tensor):
    """mask [B, H, W, 1] -> (left, right) [B, H] column bounds of each row's pixels (left > right if empty)."""
    width = tf.shape(mask)[2]
    columns = tf.cast(tf.range(width), tf.float32)
    inside = mask[..., 0] > 0.5
    left = tf.reduce_min(tf.where(inside, columns, tf.cast(width, tf.float32)), axis=2)
    right = tf.reduce_max(tf.where(inside, columns, -1.0), axis=2)
    return left, right


def _band(values: tf.Tensor, row: tf.Tensor, rows: int) -> tf.Tensor:
    """values [B, H] averaged over rows row..row+rows (clipped to the image), per example [B]."""
    height = tf.shape(values)[1]
    index = tf.clip_by_value(tf.cast(row, tf.int32)[:, None] + tf.range(rows)[None], 0, height - 1)
    return tf.reduce_mean(tf.gather(values, index, batch_dims=1), axis=1)


def _rows_spanned(mask: tf.Tensor):
    """mask [B, H, W, 1] -> (top, bottom) [B]: its first and last rows with a pixel (H and -1 where empty)."""
    height = mask.shape[1]
    rows = tf.cast(tf.range(height), tf.float32)[None]
    filled = tf.reduce_sum(mask[..., 0], axis=2) > 0
    return (tf.reduce_min(tf.where(filled, rows, float(height)), axis=1),
            tf.reduce_max(tf.where(filled, rows, -1.0), axis=1))


def _top_row(mask: tf.Tensor, share: float = 0.3) -> tf.Tensor:
    """The first row whose width reaches `share` of the widest row's, per example [B] (float)."""
    widths = tf.reduce_sum(mask[..., 0], axis=2)
    wide = widths >= share * tf.reduce_max(widths, axis=1, keepdims=True)
    return tf.cast(tf.argmax(tf.cast(wide & (widths > 0), tf.int32), axis=1), tf.float32)


def _span_around(mask: tf.Tensor, centre: tf.Tensor):
    """mask [B, H, W, 1], centre [B] (a column) -> (left, right) [B, H]: each row's run of mask pixels that holds
    the centre column (its torso, not the arms beside it); left > right where the centre pixel is off."""
    width = tf.shape(mask)[2]
    columns = tf.cast(tf.range(width), tf.float32)[None, None]
    inside = mask[..., 0] > 0.5
    c = centre[:, None, None]
    gap = tf.logical_not(inside)
    left = tf.reduce_max(tf.where(gap & (columns < c), columns, -1.0), axis=2) + 1.0
    right = tf.reduce_min(tf.where(gap & (columns > c), columns, tf.cast(width, tf.float32)), axis=2) - 1.0
    at_centre = tf.gather(inside, tf.clip_by_value(tf.cast(centre, tf.int32), 0, width - 1), axis=2, batch_dims=1)
    return tf.where(at_centre, left, 1.0), tf.where(at_centre, right, 0.0)


def _anchored_placement(cloth_mask, parsing, keypoints, category, waist=None) -> tf.Tensor:
    """[B, 8] projective transforms (output pixel -> product pixel) that place a lower-body garment (or a
    dress's skirt) on the body by its waistband; the other categories get the identity. `waist` (y, centre,
    width [B], where width > 0) overrides where the waistband goes."""
    height = cloth_mask.shape[1]
    rows = max(1, round(WAIST_BAND * height))
    left, right = _row_extents(cloth_mask)
    product_top = _top_row(cloth_mask, 0.0)
    product_width = tf.maximum(_band(right - left + 1.0, product_top, rows), 1.0)
    product_centre = _band((left + right) / 2.0, product_top, rows)
    x, y = keypoints[..., 0], keypoints[..., 1]
    hip_distance = tf.abs(x[:, 8] - x[:, 11])
    # Lower: the worn lower garment's top rows, else the hips.
    worn = label_mask(parsing, CATEGORIES["lower"].garment_labels)
    worn_left, worn_right = _row_extents(worn)
    worn_top = _top_row(worn)
    has_worn = tf.reduce_sum(worn, axis=[1, 2, 3]) > float(height)
    waist_width = tf.where(has_worn, _band(worn_right - worn_left + 1.0, worn_top, rows), HIP_WAIST_WIDTH * hip_distance)
    waist_centre = tf.where(has_worn, _band((worn_left + worn_right) / 2.0, worn_top, rows), (x[:, 8] + x[:, 11]) / 2.0)
    waist_y = tf.where(has_worn, worn_top, (y[:, 8] + y[:, 11]) / 2.0 - HIP_WAIST_RISE * hip_distance)
    if waist is not None:
        given = waist[2] > 0.0
        waist_y, waist_centre, waist_width = (tf.where(given, value, default) for value, default in
                                              zip(waist, (waist_y, waist_centre, waist_width)))
    lower_scale = tf.maximum(waist_width, 1.0) / product_width
    anchored = tf.equal(category, LOWER)
    # output (x, y) -> product (product_centre + (x - waist_centre) / scale, product_top + (y - waist_y) / scale)
    inverse = tf.where(anchored, 1.0 / tf.maximum(lower_scale, 1e-3), 1.0)
    zero = tf.zeros_like(inverse)
    shift_x = tf.where(anchored, product_centre - waist_centre * inverse, 0.0)
    shift_y = tf.where(anchored, product_top - waist_y * inverse, 0.0)
    return tf.stack([inverse, zero, shift_x, zero, inverse, shift_y, zero, zero], axis=1)


def _place(image: tf.Tensor, transforms: tf.Tensor, fill: float) -> tf.Tensor:
    """`image` [B, H, W, C] moved by `transforms` (see _anchored_placement), bilinear, `fill` outside."""
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=image, transforms=transforms, output_shape=tf.shape(image)[1:3], fill_value=fill,
        interpolation="BILINEAR", fill_mode="CONSTANT")


def _layout(layout_nets: dict, inputs: tf.Tensor, category: tf.Tensor) -> dict:
    """Each example's layout from its category's network; a network runs only if its category is in the batch."""
    layout = None
    for index, name in enumerate(CATEGORY_NAMES):
        chosen = tf.equal(category, index)[:, None, None, None]
        net = layout_nets[name]

        def run(net=net):
            outputs = as_float32(net({"layout_inputs": inputs}, training=False))
            return outputs["garment_mask"], outputs["skin_mask"]

        garment, skin = tf.cond(tf.reduce_any(chosen), run, lambda: (tf.zeros_like(inputs[..., :1]),) * 2)
        layout = {"garment_mask": garment, "skin_mask": skin} if layout is None else {
            "garment_mask": tf.where(chosen, garment, layout["garment_mask"]),
            "skin_mask": tf.where(chosen, skin, layout["skin_mask"])}
    return layout


def _ankles_out(keypoints, height: int) -> tf.Tensor:
    """[B] bool: the photo ends above an ankle (VITON-HD's end at the thighs)."""
    seen = lambda joint: (keypoints[:, joint, 2] > 0) & (keypoints[:, joint, 1] < float(height))
    return ~(seen(10) & seen(13))


# Of a dress product's height from its top: where it is cut into the bodice (tried on as a top) and the skirt. A
# top in the synthetic world the upper layout network learned from reaches the hips, about half of a dress's
# length from the shoulders; a shorter bodice is a crop top that network has never seen.
DRESS_BODICE_SHARE = 0.5


def _dress_halves(cloth_mask: tf.Tensor):
    """A dress product's mask [B, H, W, 1] cut DRESS_BODICE_SHARE of its height from its top: (bodice, skirt)."""
    rows = tf.cast(tf.range(cloth_mask.shape[1]), tf.float32)[None]
    top, bottom = _rows_spanned(cloth_mask)
    cut = top + DRESS_BODICE_SHARE * (bottom - top)
    above = tf.cast(rows < cut[:, None], tf.float32)[:, :, None, None]
    return cloth_mask * above, cloth_mask * (1.0 - above)


PRODUCT_MARGIN = 0.05  # of the height: the white around a garment that fills its product photo


def _reframed(cloth: tf.Tensor, mask: tf.Tensor):
    """A part of a product photo (cloth [B, H, W, 3], its mask [B, H, W, 1]) scaled uniformly and centred to fill
    the photo, as a whole garment fills its product photo (white outside the part)."""
    height, width = mask.shape[1], mask.shape[2]
    left, right = _row_extents(mask)
    filled = right >= left
    top, bottom = _rows_spanned(mask)
    first = tf.reduce_min(tf.where(filled, left, float(width)), axis=1)
    last = tf.reduce_max(tf.where(filled, right, -1.0), axis=1)
    room = 1.0 - 2.0 * PRODUCT_MARGIN
    scale = tf.minimum(room * height / tf.maximum(bottom - top + 1.0, 1.0), room * width / tf.maximum(last - first + 1.0, 1.0))
    inverse = 1.0 / tf.maximum(scale, 1e-3)
    zero = tf.zeros_like(inverse)
    # output (x, y) -> part ((x - W/2) / scale + its centre x, (y - H/2) / scale + its centre y)
    transforms = tf.stack([inverse, zero, (first + last) / 2.0 - width / 2.0 * inverse, zero, inverse,
                           (top + bottom) / 2.0 - height / 2.0 * inverse, zero, zero], axis=1)
    part = mask * cloth + (1.0 - mask)  # white outside the part
    return (tf.ensure_shape(_place(part, transforms, 1.0), cloth.shape),
            tf.ensure_shape(tf.cast(_place(mask, transforms, 0.0) > 0.5, tf.float32), mask.shape))


def layout_tryon(person, cloth, cloth_mask, parsing, keypoints, layout_nets: dict, warp,
                 representation: RepresentationConfig, category=None, data: DataConfig = DataConfig()) -> dict:
    """The real-photo try-on: the layout network of each example's category (`category` [B] int32, see
    category_ids; None: all upper) decides the new garment's shape and the newly exposed skin; the product is
    warped onto that shape; skin is filled with the person's own tone and what the old garment leaves uncovered
    from its surroundings; every other pixel is the person's own. No appearance is learned. A dress on a photo
    that ends above the ankles is tried on as its bodice, then its skirt (`_skirt_under_bodice`)."""
    category = tf.zeros(tf.shape(person)[:1], tf.int32) if category is None else category
    # A dress on a photo cut above the ankles: its bodice goes through the one full pass as a top, and its skirt
    # through a second pass that only places (no network, no warp), run when the batch holds such a dress. The
    # other examples' inputs pass through unchanged, so their answer does not depend on their batch-mates.
    split = tf.equal(category, DRESS) & _ankles_out(keypoints, person.shape[1])
    chosen = split[:, None, None, None]
    bodice, skirt = _dress_halves(cloth_mask)
    bodice_photo, bodice = _reframed(cloth, bodice)  # a top that fills its photo, as the upper network knows them
    first = _layout_tryon_once(person, tf.where(chosen, bodice_photo, cloth), tf.where(chosen, bodice, cloth_mask),
                               parsing, keypoints, layout_nets, warp, representation, data,
                               tf.where(split, CATEGORY_NAMES.index("upper"), category), arms_in_front=split)

    def with_skirts():
        dresses = _skirt_under_bodice(first, cloth, skirt, parsing, keypoints, representation, data)
        return {name: tf.where(chosen, dresses[name], first[name]) for name in first}

    return tf.cond(tf.reduce_any(split), with_skirts, lambda: first)


def _skirt_under_bodice(first: dict, cloth, skirt, parsing, keypoints, representation, data) -> dict:
    """The second pass of a dress: its skirt (the product's mask below the cut) placed as a lower-body garment on
    the bodice's try-on `first`, its waistband on the bodice's hem and as wide as the bodice's torso there."""
    height = cloth.shape[1]
    garment, skin, changed = (first[name][..., 0] > 0.5 for name in ("composition_mask", "skin_mask", "changed_mask"))
    x, y = keypoints[..., 0], keypoints[..., 1]
    seen = keypoints[..., 2] > 0
    hips_seen = seen[:, 8] & seen[:, 11]
    centre = tf.where(hips_seen, (x[:, 8] + x[:, 11]) / 2.0, x[:, 1])
    left, right = _span_around(tf.cast(garment, tf.float32)[..., None], centre)
    span = right - left + 1.0
    rows = tf.cast(tf.range(height), tf.float32)[None]
    # The bodice's hem: the first row below the chest where the body's centre column leaves it (not a stray
    # patch of garment lower down).
    shoulder_y = (y[:, 2] + y[:, 5]) / 2.0
    hip_y = tf.where(hips_seen, (y[:, 8] + y[:, 11]) / 2.0, shoulder_y + 0.35 * height)
    chest_y = shoulder_y + CHEST_SHARE * (hip_y - shoulder_y)
    hem = tf.reduce_min(tf.where((rows > chest_y[:, None]) & (span <= 0), rows, float(height)), axis=1) - 1.0
    band = max(1, round(WAIST_BAND * height))
    waist_y = tf.maximum(hem - band, 0.0)
    waist_left, waist_right = _band(left, waist_y, band), _band(right, waist_y, band)
    waist = (waist_y, (waist_left + waist_right) / 2.0,
             tf.where(hem > chest_y, waist_right - waist_left + 1.0, 0.0))
    # What the first pass drew, as the second pass's parsing: the bodice is the person's top (kept, so the skirt
    # goes under it and its sleeves), its new skin their arms (kept); below the bodice's hem and between its sides
    # (a bare midriff, a stray patch of bodice) and the rest it changed is free for the skirt to cover.
    columns = tf.cast(tf.range(tf.shape(cloth)[2]), tf.float32)[None, None]
    below_hem = ((rows[:, :, None] > hem[:, None, None]) & (columns >= waist_left[:, None, None])
                 & (columns <= waist_right[:, None, None]))
    parsing = tf.where(below_hem & (garment | skin | changed), LIP.BACKGROUND, tf.where(
        garment, LIP.UPPER_CLOTHES, tf.where(skin, LIP.LEFT_ARM, tf.where(changed, LIP.BACKGROUND, parsing))))
    lower = tf.fill(tf.shape(cloth)[:1], LOWER)
    second = _layout_tryon_once(first["tryon"], cloth, skirt, parsing, keypoints, None, None, representation, data,
                                lower, waist)
    covered = second["composition_mask"]
    both = {"tryon": second["tryon"],
            "warped_cloth": first["warped_cloth"] * (1.0 - covered) + second["warped_cloth"] * covered,
            "skin_mask": tf.maximum(first["skin_mask"] * (1.0 - covered), second["skin_mask"])}
    for name in ("composition_mask", "garment_mask", "warped_mask", "changed_mask"):
        both[name] = tf.maximum(first[name], second[name])
    return both


def _layout_tryon_once(person, cloth, cloth_mask, parsing, keypoints, layout_nets: dict | None, warp,
                       representation: RepresentationConfig, data: DataConfig, category, waist=None,
                       arms_in_front=None) -> dict:
    """One pass of `layout_tryon` (`waist`: see _anchored_placement; `arms_in_front` [B] bool: keep the bare
    arms of these examples in front of the new garment). Without `layout_nets` every product is placed by the
    body's anchors (a dress's skirt): no network and no warp run."""
    from viton_tf.layout import layout_inputs
    from viton_tf.warp.cloth_fixes import inpaint

    height = person.shape[1]
    reach, edge = max(1, height // 64), max(1, height // 256)  # 4 px and 1 px at 256x192
    # Shape-context matching needs the whole garment in the frame: a lower-body garment or a dress on a photo
    # that ends above the ankles (VITON-HD's end at the thighs) is placed by the body's anchors instead.
    anchored = (tf.not_equal(category, 0) & _ankles_out(keypoints, height))[:, None, None, None]
    if layout_nets is None:
        anchored = tf.ones_like(anchored)
        layout = {"garment_mask": tf.zeros_like(cloth_mask), "skin_mask": tf.zeros_like(cloth_mask)}
    else:
        layout = _layout(layout_nets, layout_inputs(parsing, keypoints, cloth_mask, representation), category)
    placement = _anchored_placement(cloth_mask, parsing, keypoints, category, waist)
    worn = category_mask(parsing, category, category_table("garment_labels", data, representation))
    # What a placed garment leaves uncovered of the old one is skin below the hips (legs), else what is behind.
    hips = tf.where(keypoints[:, 8, 2] * keypoints[:, 11, 2] > 0, (keypoints[:, 8, 1] + keypoints[:, 11, 1]) / 2.0,
                    0.55 * height)
    below_hips = tf.cast(tf.range(height, dtype=tf.float32)[None, :] > hips[:, None], tf.float32)[:, :, None, None]
    layout = {"garment_mask": tf.where(anchored, _place(cloth_mask, placement, 0.0), layout["garment_mask"]),
              "skin_mask": tf.where(anchored, worn * below_hips, layout["skin_mask"])}
    kept = category_mask(parsing, category, category_table("kept_labels", data, representation))
    skin_sources = category_mask(parsing, category, category_table("skin_labels", data, representation))
    new_garment = tf.cast(layout["garment_mask"] > LAYOUT_GARMENT_THRESHOLD, tf.float32) * (1.0 - kept)
    # Skin where the layout says so, and wherever the parsing saw the category's skin (arms and neck, or legs)
    # that the new garment leaves uncovered (a sleeve that is gone uncovers an arm, whatever the layout learned
    # of synthetic arms).
    skin = tf.maximum(tf.cast(layout["skin_mask"] > layout["garment_mask"], tf.float32),
                      skin_sources) * (1.0 - new_garment)
    # The parsing of a real photo is rough: an "arm" (or "leg") pixel far from the face's colour is a sleeve.
    face_tone = _masked_median(person, label_mask(parsing, (LIP.FACE,)))[:, None, None, :]
    skin_like = tf.cast(tf.norm(person - face_tone, axis=-1, keepdims=True) < SKIN_COLOUR_DISTANCE, tf.float32)
    limbs = skin_sources * (1.0 - label_mask(parsing, (LIP.NECK,)))
    own_skin = tf.maximum(kept, limbs * skin_like * skin)  # bare limbs the layout keeps bare stay, in front
    if arms_in_front is not None:  # a dress's bodice: the person's bare arms stay in front of it
        bare_arms = label_mask(parsing, (LIP.LEFT_ARM, LIP.RIGHT_ARM)) * skin_like
        own_skin = tf.maximum(own_skin, tf.cast(arms_in_front, tf.float32)[:, None, None, None] * bare_arms)
    # The old garment, a pixel wider (no ring survives at its border), with the sleeves parsed as limbs.
    old_garment = tf.maximum(_dilate(worn, edge), limbs * (1.0 - skin_like)) * (1.0 - own_skin)
    # The product's own edge pixels are blended with its photo's white: its colours are spread from a pixel
    # inside, before the warp and again after it (over what the warp missed), so no white streaks are drawn.
    spread = _spread_colours(cloth, _erode(cloth_mask, edge), reach + edge)
    placed_cloth, placed_mask = _place(spread, placement, 1.0), _place(cloth_mask, placement, 0.0)
    if layout_nets is None:
        warped_cloth, warped_mask = placed_cloth, placed_mask
    else:
        warped_cloth, warped_mask = warp(spread, cloth_mask, new_garment, own_skin)
        warped_cloth = tf.where(anchored, placed_cloth, warped_cloth)
        warped_mask = tf.where(anchored, placed_mask, warped_mask)
    # The layout decides the garment's shape; the warp gives its texture, spread over what the warp missed.
    textured = tf.cast(warped_mask > 0.5, tf.float32) * new_garment
    warped_cloth = _spread_colours(warped_cloth, _erode(textured, edge), height // 16)
    garment = new_garment * (1.0 - own_skin)
    # What the old garment leaves uncovered: skin where the layout says so, else whatever is behind
    # (background, trousers, an arm's edge), filled from the nearest unchanged pixels that are not face or hair.
    uncovered = old_garment * (1.0 - garment) * (1.0 - own_skin)
    newly_skin, behind = uncovered * skin, uncovered * (1.0 - skin)
    tone = _masked_median(person, skin_sources * skin_like)
    tone = tf.where(tf.reduce_any(tone != 0.0, axis=-1, keepdims=True), tone, face_tone[:, 0, 0])
    changed = tf.maximum(garment, uncovered)
    surroundings = (1.0 - changed) * (1.0 - kept)
    filled = inpaint(person, behind, surroundings, height // 3)
    tryon = (person * (1.0 - changed) + garment * warped_cloth + newly_skin * tone[:, None, None, :]
             + behind * filled)
    edge_weight = _feathered_edge(garment, layout["garment_mask"], edge) * (1.0 - own_skin) * (1.0 - newly_skin)
    tryon += edge_weight * (warped_cloth - tryon)
    changed = tf.maximum(changed, tf.cast(edge_weight > 0.0, tf.float32))
    return {"tryon": tryon, "warped_cloth": warped_cloth, "composition_mask": garment, "garment_mask": new_garment,
            "warped_mask": textured,
            "skin_mask": newly_skin, "changed_mask": changed}


class TryOnModule(tf.Module):
    """Generator, warp and refinement as one module; `method="nonparametric"` warps and pastes without weights.
    Build it from a run folder with `viton_tf.run.tryon_module`."""

    def __init__(self, height: int, width: int, method: str = "viton", generator=None, refinement=None,
                 representation: RepresentationConfig | None = None, warp: WarpConfig = WarpConfig(),
                 data: DataConfig = DataConfig(), xla: bool = False, max_image_side: int = MAX_IMAGE_SIDE,
                 layout_nets: dict | None = None):
        super().__init__(name="tryon")
        if method not in METHODS:
            raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
        if method == "viton" and (generator is None or refinement is None):
            raise ValueError("method 'viton' needs the generator and the refinement network")
        if method == "layout" and sorted(layout_nets or ()) != sorted(CATEGORY_NAMES):
            raise ValueError("method 'layout' needs the layout network of every category "
                             "(viton_tf.layout.load_layout_nets)")
        if warp.matcher != "sinkhorn":
            raise ValueError(f"warp.matcher: the exported model needs the in-graph 'sinkhorn', got {warp.matcher!r}")
        self.height, self.width, self.method = height, width, method
        # In a plain namespace, which tf.Module does not track: tracked, the SavedModel would hold each weight
        # twice, under the Keras model and in network_variables (below, the copy TF Serving restores), and a
        # process serving it would load both (225 MB of variables for 117).
        self._networks = types.SimpleNamespace(generator=generator, refinement=refinement, layout_nets=layout_nets)
        self.representation_config = representation or RepresentationConfig(height=height, width=width)
        self.warp_config, self.data_config = warp, data
        self.xla, self.max_image_side = xla, max_image_side
        if method == "viton":
            # TF Serving restores variables in C++ through the MetaGraph's saver_def. A Keras 3 model's
            # variables are reachable only through Keras' own trackers, which that path does not restore
            # ("Could not find variable generator/beta", tensorflow/serving#2250). Tracking the underlying
            # tf.Variables on the module, as keras.export.ExportArchive.track does, puts them in the saver.
            # ExportArchive itself would do the same; the module stays a tf.Module for its two signatures,
            # its assets and the non-Keras ops around the networks.
            self.network_variables = [variable.value for variable in generator.variables + refinement.variables]
        if method == "layout":
            self.network_variables = [variable.value for name in CATEGORY_NAMES
                                      for variable in layout_nets[name].variables]
        self.warp = make_warp(warp, xla)
        encoded = [tf.TensorSpec([None], tf.string, name="person_image"),
                   tf.TensorSpec([None], tf.string, name="cloth_image"),
                   tf.TensorSpec([None], tf.string, name="parse_image"),
                   tf.TensorSpec([None, 18, 3], tf.float32, name="keypoints")]
        # serving_default is the upper-body try-on, as before categories (old clients send four inputs; TF Serving
        # has no optional inputs); serving_category takes each example's category too ("upper", "lower", "dress").
        self.serving_default = tf.function(self._serve, input_signature=encoded)
        self.serving_category = tf.function(self._serve_category, input_signature=encoded + [
            tf.TensorSpec([None], tf.string, name="category")])
        self.tryon_tensors = tf.function(self._tryon, input_signature=[
            tf.TensorSpec([None, height, width, 3], tf.float32, name="person"),
            tf.TensorSpec([None, height, width, 3], tf.float32, name="cloth"),
            tf.TensorSpec([None, height, width, 1], tf.float32, name="cloth_mask"),
            tf.TensorSpec([None, height, width], tf.int32, name="parsing"),
            tf.TensorSpec([None, 18, 3], tf.float32, name="keypoints")])

    generator = property(lambda self: self._networks.generator)
    refinement = property(lambda self: self._networks.refinement)
    layout_nets = property(lambda self: self._networks.layout_nets)

    def _resize(self, image: tf.Tensor) -> tf.Tensor:
        """uint8 [h, w, 3] -> float [H, W, 3] in [-1, 1] (antialiased when shrinking, like INTER_AREA)."""
        return resize_photo(image, self.height, self.width)

    def decode(self, person_image, cloth_image, parse_image):
        """Encoded photos [B] -> person, cloth [B, H, W, 3] in [-1, 1], parsing [B, H, W], photo sizes [B, 2]."""
        height, width, limit = self.height, self.width, self.max_image_side

        def one(args):
            person_data, cloth_data, parse_data = args
            person = decode_photo(person_data, "person_image", limit)
            cloth = decode_photo(cloth_data, "cloth_image", limit)
            size = image_size(parse_data, "parse_image")
            check = tf.debugging.assert_less_equal(
                tf.reduce_max(size), tf.constant(limit, tf.int64),
                message=f"parse_image: image larger than the limit of {limit} pixels on its long side")
            with tf.control_dependencies([check]):
                parsing = decode_parsing(parse_data, height, width)
            return self._resize(person), self._resize(cloth), parsing, tf.cast(tf.shape(person)[:2], tf.float32)

        return tf.map_fn(one, (person_image, cloth_image, parse_image), fn_output_signature=(
            tf.TensorSpec([height, width, 3], tf.float32), tf.TensorSpec([height, width, 3], tf.float32),
            tf.TensorSpec([height, width], tf.int32), tf.TensorSpec([2], tf.float32)))

    def _serve_category(self, person_image, cloth_image, parse_image, keypoints, category):
        tf.debugging.assert_equal(tf.shape(person_image), tf.shape(category),
                                  message="person_image and category: different batch sizes")
        outputs = self._serve(person_image, cloth_image, parse_image, keypoints, category_ids(category))
        return {**outputs, "category": tf.gather(tf.constant(CATEGORY_NAMES), outputs.pop("category_id"))}

    def _serve(self, person_image, cloth_image, parse_image, keypoints, category=None):
        tf.debugging.assert_equal(tf.shape(person_image), tf.shape(keypoints)[:1],
                                  message="person_image and keypoints: different batch sizes")
        person, cloth, parsing, size = self.decode(person_image, cloth_image, parse_image)
        # Keypoints come in pixels of the photo as sent; the model works at height x width.
        scale = tf.stack([self.width / size[:, 1], self.height / size[:, 0], tf.ones_like(size[:, 0])], axis=-1)
        keypoints = tf.where(keypoints[..., 2:] > 0.0, keypoints * scale[:, None, :], 0.0)
        cloth_mask = cloth_mask_from_photo(cloth, self.data_config.cloth_foreground_threshold)
        if self.method == "layout":
            coverage = tf.reduce_mean(cloth_mask, axis=[1, 2, 3])
            tf.debugging.Assert(tf.reduce_all((coverage >= 0.05) & (coverage <= 0.95)), [
                "cloth_image: the garment found in the product photo covers a share of it outside 5%-95%:",
                coverage])
            outputs = self._tryon_layout(person, cloth, cloth_mask, parsing, keypoints, category)
            png = self._compose_full_resolution(person_image, outputs)
        else:
            outputs = self.tryon(person, cloth, cloth_mask, parsing, keypoints, category)
            # zlib level 1: a quarter of the default level's time for ~20% more bytes.
            png = tf.map_fn(lambda image: tf.io.encode_png(image, compression=1), to_uint8(outputs["tryon"]),
                            fn_output_signature=tf.string)
        # TF Serving's REST API base64-encodes a string output only when its name ends in "_bytes".
        results = {"tryon_png_bytes": png,
                   "warped_cloth": outputs["warped_cloth"], "composition_mask": outputs["composition_mask"],
                   "coarse_person": outputs["coarse_person"], "garment_mask": outputs["garment_mask"]}
        return results if category is None else {**results, "category_id": category}

    def _tryon_layout(self, person, cloth, cloth_mask, parsing, keypoints, category=None):
        outputs = layout_tryon(person, cloth, cloth_mask, parsing, keypoints, self.layout_nets, self.warp,
                               self.representation_config, category, self.data_config)
        return {**outputs, "coarse_person": person}

    def _compose_full_resolution(self, person_image, outputs):
        """PNG of each person photo at its own size: the changed region of the try-on, upsampled, composed
        into the decoded photo; every pixel outside it is the photo's own, bit for bit."""
        def one(args):
            data, tryon, changed = args
            photo = decode_photo(data, "person_image", self.max_image_side)
            size = tf.shape(photo)[:2]
            alpha = _smooth_outline(changed, size)
            result = tf.image.resize(tryon, size, method="bicubic")
            blended = to_uint8(from_uint8(photo) * (1.0 - alpha) + result * alpha)
            return tf.io.encode_png(tf.where(alpha > 0.0, blended, photo), compression=1)

        return tf.map_fn(one, (person_image, outputs["tryon"], outputs["changed_mask"]),
                         fn_output_signature=tf.string)

    def _tryon(self, person, cloth, cloth_mask, parsing, keypoints):
        return self.tryon(person, cloth, cloth_mask, parsing, keypoints)

    def tryon(self, person, cloth, cloth_mask, parsing, keypoints, category=None) -> dict:
        """The try-on on tensors at the model's size (as the readers give them); `category` [B] int32 (see
        category_ids; None: all upper). Out: tryon, coarse_person, garment_mask, warped_cloth, composition_mask."""
        if self.method == "layout":
            outputs = self._tryon_layout(person, cloth, cloth_mask, parsing, keypoints, category)
            return {name: outputs[name] for name in ("tryon", "coarse_person", "garment_mask", "warped_cloth",
                                                     "composition_mask")}
        occluders = label_mask(parsing, self.data_config.occluder_labels)
        if self.method == "nonparametric":
            category = tf.zeros(tf.shape(person)[:1], tf.int32) if category is None else category
            target = category_mask(parsing, category, category_table("garment_labels", self.data_config,
                                                                     self.representation_config))
            outputs = nonparametric_tryon(person, cloth, cloth_mask, target, occluders, warp=self.warp)
            return {"tryon": outputs["tryon"], "coarse_person": person, "garment_mask": target,
                    "warped_cloth": outputs["warped_cloth"], "composition_mask": outputs["composition_mask"]}
        representation = person_representation(person, parsing, keypoints, self.representation_config, category)
        outputs = viton_forward(self.generator, self.refinement, representation, cloth, cloth_mask, occluders,
                                self.warp)
        return {name: outputs[name] for name in ("tryon", "coarse_person", "garment_mask", "warped_cloth",
                                                 "composition_mask")}

    def signatures(self) -> dict:
        """The signatures to pass to tf.saved_model.save."""
        return {"serving_default": self.serving_default, "serving_category": self.serving_category,
                "tryon_tensors": self.tryon_tensors}
