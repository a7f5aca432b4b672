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

from viton_tf.config import LIP, DataConfig, RepresentationConfig, WarpConfig
from viton_tf.data.cloth_mask import cloth_mask_from_photo
from viton_tf.data.codecs import decode_parsing, decode_photo, from_uint8, image_size, resize_photo, to_uint8
from viton_tf.methods import EXPORTABLE as METHODS
from viton_tf.representation import garment_mask, label_mask, person_representation
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


# What the real-photo try-on never repaints: face, hair, hat, sunglasses (and everything it does not change).
KEPT_LABELS = (LIP.HAT, LIP.HAIR, LIP.SUNGLASSES, LIP.FACE)
SKIN_SOURCE_LABELS = (LIP.NECK, LIP.LEFT_ARM, LIP.RIGHT_ARM)
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


def layout_tryon(person, cloth, cloth_mask, parsing, keypoints, layout_net, warp,
                 representation: RepresentationConfig) -> dict:
    """The real-photo try-on: the layout network decides the new garment's shape and the newly exposed skin;
    the product is warped onto that shape; skin is filled with the person's own tone and what the old garment
    leaves uncovered from its surroundings; every other pixel is the person's own. No appearance is learned."""
    from viton_tf.layout import GARMENT_LABELS, layout_inputs
    from viton_tf.warp.cloth_fixes import inpaint

    height = person.shape[1]
    reach, edge = max(1, height // 64), max(1, height // 256)  # 4 px and 1 px at 256x192
    layout = as_float32(layout_net({"layout_inputs": layout_inputs(parsing, keypoints, cloth_mask, representation)},
                                 training=False))
    kept = label_mask(parsing, KEPT_LABELS)
    new_garment = tf.cast(layout["garment_mask"] > LAYOUT_GARMENT_THRESHOLD, tf.float32) * (1.0 - kept)
    # Skin where the layout says so, and wherever the parsing saw arms or neck that the new garment leaves
    # uncovered (a sleeve that is gone uncovers an arm, whatever the layout learned of synthetic arms).
    skin = tf.maximum(tf.cast(layout["skin_mask"] > layout["garment_mask"], tf.float32),
                      label_mask(parsing, SKIN_SOURCE_LABELS)) * (1.0 - new_garment)
    # The parsing of a real photo is rough: an "arm" pixel far from the face's colour is a sleeve.
    face_tone = _masked_median(person, label_mask(parsing, (LIP.FACE,)))[:, None, None, :]
    skin_like = tf.cast(tf.norm(person - face_tone, axis=-1, keepdims=True) < SKIN_COLOUR_DISTANCE, tf.float32)
    arms = label_mask(parsing, (LIP.LEFT_ARM, LIP.RIGHT_ARM))
    own_skin = tf.maximum(kept, arms * skin_like * skin)  # bare arms the layout keeps bare stay, in front
    # The old garment, a pixel wider (no ring survives at its border), with the sleeves parsed as arms.
    old_garment = tf.maximum(_dilate(label_mask(parsing, GARMENT_LABELS), edge),
                             arms * (1.0 - skin_like)) * (1.0 - own_skin)
    # The product's own edge pixels are blended with its photo's white: its colours are spread from a pixel
    # inside, before the warp and again after it (over what the warp missed), so no white streaks are drawn.
    warped_cloth, warped_mask = warp(_spread_colours(cloth, _erode(cloth_mask, edge), reach + edge), cloth_mask,
                                     new_garment, own_skin)
    # The layout decides the garment's shape; the warp gives its texture, spread over what the warp missed.
    textured = tf.cast(warped_mask > 0.5, tf.float32) * new_garment
    warped_cloth = _spread_colours(warped_cloth, _erode(textured, edge), height // 16)
    garment = new_garment * (1.0 - own_skin)
    # What the old garment leaves uncovered: skin where the layout says so, else whatever is behind
    # (background, trousers, an arm's edge), filled from the nearest unchanged pixels that are not face or hair.
    uncovered = old_garment * (1.0 - garment) * (1.0 - own_skin)
    newly_skin, behind = uncovered * skin, uncovered * (1.0 - skin)
    tone = _masked_median(person, label_mask(parsing, SKIN_SOURCE_LABELS) * skin_like)
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
                 layout_net=None):
        super().__init__(name="tryon")
        if method not in METHODS:
            raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
        if method == "viton" and (generator is None or refinement is None):
            raise ValueError("method 'viton' needs the generator and the refinement network")
        if method == "layout" and layout_net is None:
            raise ValueError("method 'layout' needs the layout network (viton_tf.layout.load_layout_net)")
        if warp.matcher != "sinkhorn":
            raise ValueError(f"warp.matcher: the exported model needs the in-graph 'sinkhorn', got {warp.matcher!r}")
        self.height, self.width, self.method = height, width, method
        # In a plain namespace, which tf.Module does not track: tracked, the SavedModel would hold each weight
        # twice, under the Keras model and in network_variables (below, the copy TF Serving restores), and a
        # process serving it would load both (225 MB of variables for 117).
        self._networks = types.SimpleNamespace(generator=generator, refinement=refinement, layout_net=layout_net)
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
            self.network_variables = [variable.value for variable in layout_net.variables]
        self.warp = make_warp(warp, xla)
        self.serving_default = tf.function(self._serve, input_signature=[
            tf.TensorSpec([None], tf.string, name="person_image"),
            tf.TensorSpec([None], tf.string, name="cloth_image"),
            tf.TensorSpec([None], tf.string, name="parse_image"),
            tf.TensorSpec([None, 18, 3], tf.float32, name="keypoints")])
        self.tryon_tensors = tf.function(self._tryon, input_signature=[
            tf.TensorSpec([None, height, width, 3], tf.float32, name="person"),
            tf.TensorSpec([None, height, width, 3], tf.float32, name="cloth"),
            tf.TensorSpec([None, height, width, 1], tf.float32, name="cloth_mask"),
            tf.TensorSpec([None, height, width], tf.int32, name="parsing"),
            tf.TensorSpec([None, 18, 3], tf.float32, name="keypoints")])

    generator = property(lambda self: self._networks.generator)
    refinement = property(lambda self: self._networks.refinement)
    layout_net = property(lambda self: self._networks.layout_net)

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

    def _serve(self, person_image, cloth_image, parse_image, keypoints):
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
            outputs = self._tryon_layout(person, cloth, cloth_mask, parsing, keypoints)
            png = self._compose_full_resolution(person_image, outputs)
        else:
            outputs = self._tryon(person, cloth, cloth_mask, parsing, keypoints)
            # zlib level 1: a quarter of the default level's time for ~20% more bytes.
            png = tf.map_fn(lambda image: tf.io.encode_png(image, compression=1), to_uint8(outputs["tryon"]),
                            fn_output_signature=tf.string)
        # TF Serving's REST API base64-encodes a string output only when its name ends in "_bytes".
        return {"tryon_png_bytes": png,
                "warped_cloth": outputs["warped_cloth"], "composition_mask": outputs["composition_mask"],
                "coarse_person": outputs["coarse_person"], "garment_mask": outputs["garment_mask"]}

    def _tryon_layout(self, person, cloth, cloth_mask, parsing, keypoints):
        outputs = layout_tryon(person, cloth, cloth_mask, parsing, keypoints, self.layout_net, self.warp,
                               self.representation_config)
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
        if self.method == "layout":
            outputs = self._tryon_layout(person, cloth, cloth_mask, parsing, keypoints)
            return {name: outputs[name] for name in ("tryon", "coarse_person", "garment_mask", "warped_cloth",
                                                     "composition_mask")}
        occluders = label_mask(parsing, self.data_config.occluder_labels)
        if self.method == "nonparametric":
            target = garment_mask(parsing, self.data_config.garment_labels)
            outputs = nonparametric_tryon(person, cloth, cloth_mask, target, occluders, warp=self.warp)
            return {"tryon": outputs["tryon"], "coarse_person": person, "garment_mask": target,
                    "warped_cloth": outputs["warped_cloth"], "composition_mask": outputs["composition_mask"]}
        representation = person_representation(person, parsing, keypoints, self.representation_config)
        outputs = viton_forward(self.generator, self.refinement, representation, cloth, cloth_mask, occluders,
                                self.warp)
        return {name: outputs[name] for name in ("tryon", "coarse_person", "garment_mask", "warped_cloth",
                                                 "composition_mask")}

    def signatures(self) -> dict:
        """The signatures to pass to tf.saved_model.save."""
        return {"serving_default": self.serving_default, "tryon_tensors": self.tryon_tensors}
