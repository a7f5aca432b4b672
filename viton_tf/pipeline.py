"""The whole try-on as one tf.Module, in TF ops only (so it exports as one SavedModel).

encoded person photo, product photo, parsing PNG, keypoints -> resize to the model's size ->
22-channel representation -> G_C (coarse person, cloth mask) -> shape-context TPS warp of the
product onto that mask (Sinkhorn matching) -> G_R composition -> PNG.

Signatures: `serving_default` (bytes in, PNG bytes out, for TF Serving) and `tryon_tensors`
(float tensors at the model's size, as viton_tf.data.readers gives them; out: tryon, coarse_person,
garment_mask (where the cloth goes: G_C's mask > 0.5), warped_cloth, composition_mask).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import tensorflow as tf

from viton_tf.config import (DataConfig, GeneratorConfig, RefinementConfig, RepresentationConfig, WarpConfig,
                             from_dict)
from viton_tf.data.cloth_mask import cloth_mask_from_photo
from viton_tf.errors import UserError
from viton_tf.representation import garment_mask, label_mask, person_representation
from viton_tf.warp.shape_context import warp_cloth

from viton_tf.methods import EXPORTABLE as METHODS
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_PALETTE = 3  # IHDR colour type of a palette PNG (VITON-HD's parsing maps)
PRECISIONS = ("float32", "bfloat16")


def _assert_image(data: tf.Tensor, name: str) -> tf.Operation:
    is_image = tf.logical_or(tf.strings.substr(data, 0, 8) == PNG_SIGNATURE, tf.io.is_jpeg(data))
    return tf.debugging.Assert(is_image, [f"{name}: not a JPEG or PNG image"])


def _resize_photo(image: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """uint8 [h, w, 3] -> float [H, W, 3] in [-1, 1] (antialiased when shrinking, like INTER_AREA)."""
    image = tf.image.resize(tf.cast(image, tf.float32), [height, width], method="bilinear", antialias=True)
    return tf.clip_by_value(image, 0.0, 255.0) / 127.5 - 1.0


def _big_endian(data: tf.Tensor, offset) -> tf.Tensor:
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(data, offset, 4), tf.uint8), tf.int64)
    return raw[0] * 16777216 + raw[1] * 65536 + raw[2] * 256 + raw[3]


def _png_palette(data: tf.Tensor) -> tf.Tensor:
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
    is_png = tf.strings.substr(data, 0, 8) == PNG_SIGNATURE
    header = tf.io.decode_raw(tf.strings.substr(data, 24, 2), tf.uint8)  # IHDR bit depth, colour type

    def from_palette():
        colours = tf.image.resize(tf.io.decode_png(data, channels=3), [height, width], method="nearest")
        key = lambda rgb: (tf.cast(rgb[..., 0], tf.int32) * 65536 + tf.cast(rgb[..., 1], tf.int32) * 256
                           + tf.cast(rgb[..., 2], tf.int32))
        # Each colour's first index in the palette: a binary search in the stably sorted palette
        # (an [H, W, 256] comparison would cost more than the rest of the decoding).
        palette = key(_png_palette(data))
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
        stretch = tf.where(tf.logical_and(is_png, bit_depth < 8), 255 // (2 ** bit_depth - 1), 1)
        return tf.cast(labels, tf.int32) // stretch

    return tf.cond(tf.logical_and(is_png, header[1] == PNG_PALETTE), from_palette, from_grey)


def _float32(outputs: dict) -> dict:
    return {name: tf.cast(value, tf.float32) for name, value in outputs.items()}


def nonparametric_tryon(person, cloth, cloth_mask, target_mask, occluder_mask=None,
                        config: WarpConfig = WarpConfig()) -> dict:
    """The paper's non-parametric warped synthesis: the product warped by shape-context TPS onto
    the person's garment region and pasted inside it, no learning (nothing tells it what belongs
    outside: arms, background). `warped_mask` is the whole warp, `composition_mask` what is pasted."""
    warped_cloth, warped_mask = warp_cloth(cloth, cloth_mask, target_mask, config, occluder_mask=occluder_mask)
    composition_mask = warped_mask * target_mask
    return {"tryon": composition_mask * warped_cloth + (1.0 - composition_mask) * person,
            "warped_cloth": warped_cloth, "warped_mask": warped_mask, "composition_mask": composition_mask}


class TryOnModule(tf.Module):
    """Generator, warp and refinement as one module; `method="nonparametric"` warps and pastes without weights."""

    def __init__(self, height: int, width: int, method: str = "viton", generator=None, refinement=None,
                 representation: RepresentationConfig | None = None, warp: WarpConfig = WarpConfig(),
                 data: DataConfig = DataConfig()):
        super().__init__(name="tryon")
        if method not in METHODS:
            raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
        if method == "viton" and (generator is None or refinement is None):
            raise ValueError("method 'viton' needs the generator and the refinement network")
        self.height, self.width, self.method = height, width, method
        self.generator, self.refinement = generator, refinement
        self.representation_config = representation or RepresentationConfig(height=height, width=width)
        self.warp_config = dataclasses.replace(warp, matcher="sinkhorn")  # the in-graph matcher
        self.data_config = data
        # The warp's many small ops and loops run ~3x faster compiled (XLA; TF Serving runs it too).
        # The networks stay outside: oneDNN's convolutions beat XLA's on CPU.
        self._warp = tf.function(self._warp_cloth, jit_compile=True)
        self._nonparametric = tf.function(
            lambda *tensors: nonparametric_tryon(*tensors, config=self.warp_config), jit_compile=True)
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

    @classmethod
    def from_run(cls, run: Path, method: str | None = None, precision: str = "float32") -> "TryOnModule":
        """The module of a training run folder (config.json, generator/refinement .weights.h5); the
        method is the run's own unless given. `precision="bfloat16"` runs the networks under Keras'
        mixed_bfloat16 policy (float32 weights, bfloat16 maths: AMX/AVX512-BF16 through oneDNN)."""
        import keras

        run = Path(run)
        try:
            saved = json.loads((run / "config.json").read_text())
        except (OSError, ValueError) as error:
            raise UserError(f"{run / 'config.json'}: cannot read the run's config ({error})") from None
        configs = {name: from_dict(cls_, saved[name]) for name, cls_ in (
            ("representation", RepresentationConfig), ("warp", WarpConfig), ("data", DataConfig),
            ("generator", GeneratorConfig), ("refinement", RefinementConfig)) if name in saved}
        method = method or saved.get("method", "viton")
        representation = configs.get("representation", RepresentationConfig())
        height, width = representation.height, representation.width
        if precision not in PRECISIONS:
            raise UserError(f"precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
        policy = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
        try:
            networks = cls._load_networks(run, configs, representation) if method == "viton" else {}
        finally:
            keras.mixed_precision.set_global_policy(policy)
        return cls(height, width, method, networks.get("generator"), networks.get("refinement"), representation,
                   configs.get("warp", WarpConfig()), configs.get("data", DataConfig()))

    @staticmethod
    def _load_networks(run: Path, configs: dict, representation: RepresentationConfig) -> dict:
        from viton_tf.models.generator import Generator
        from viton_tf.models.refinement import Refinement

        height, width = representation.height, representation.width
        networks = {}
        image = tf.zeros([1, height, width, 3])
        for stem, network, inputs in (
                ("generator", Generator(configs.get("generator", GeneratorConfig()), name="generator"),
                 {"representation": tf.zeros([1, height, width, representation.channels]), "cloth": image}),
                ("refinement", Refinement(configs.get("refinement", RefinementConfig()), name="refinement"),
                 {"warped_cloth": image, "coarse_person": image, "garment_mask": image[..., :1]})):
            path = run / f"{stem}.weights.h5"
            if not path.is_file():
                raise UserError(f"{path}: not found; a VITON export needs both stages trained in {run}")
            network(inputs)
            try:
                network.load_weights(path)
            except Exception as error:
                raise UserError(f"{path}: cannot load the {stem} weights ({error})") from None
            networks[stem] = network
        return networks

    def _decode(self, person_image, cloth_image, parse_image):
        height, width = self.height, self.width

        def one(args):
            person_data, cloth_data, parse_data = args
            checks = [_assert_image(person_data, "person_image"), _assert_image(cloth_data, "cloth_image"),
                      _assert_image(parse_data, "parse_image")]
            with tf.control_dependencies(checks):
                person = tf.io.decode_image(person_data, channels=3, expand_animations=False, name="person_image")
                cloth = tf.io.decode_image(cloth_data, channels=3, expand_animations=False, name="cloth_image")
                parsing = decode_parsing(parse_data, height, width)
            size = tf.cast(tf.shape(person)[:2], tf.float32)
            return _resize_photo(person, height, width), _resize_photo(cloth, height, width), parsing, size

        return tf.map_fn(one, (person_image, cloth_image, parse_image), fn_output_signature=(
            tf.TensorSpec([height, width, 3], tf.float32), tf.TensorSpec([height, width, 3], tf.float32),
            tf.TensorSpec([height, width], tf.int32), tf.TensorSpec([2], tf.float32)))

    def _serve(self, person_image, cloth_image, parse_image, keypoints):
        tf.debugging.assert_equal(tf.shape(person_image), tf.shape(keypoints)[:1],
                                  message="person_image and keypoints: different batch sizes")
        person, cloth, parsing, size = self._decode(person_image, cloth_image, parse_image)
        # Keypoints come in pixels of the photo as sent; the model works at height x width.
        scale = tf.stack([self.width / size[:, 1], self.height / size[:, 0], tf.ones_like(size[:, 0])], axis=-1)
        keypoints = tf.where(keypoints[..., 2:] > 0.0, keypoints * scale[:, None, :], 0.0)
        outputs = self._tryon(person, cloth, cloth_mask_from_photo(cloth, self.data_config.cloth_foreground_threshold),
                              parsing, keypoints)
        tryon = tf.cast(tf.round((tf.clip_by_value(outputs["tryon"], -1.0, 1.0) + 1.0) * 127.5), tf.uint8)
        # zlib level 1: a quarter of the default level's time for ~20% more bytes.
        png = tf.map_fn(lambda image: tf.io.encode_png(image, compression=1), tryon, fn_output_signature=tf.string)
        return {"tryon_png": png,
                "warped_cloth": outputs["warped_cloth"], "composition_mask": outputs["composition_mask"],
                "coarse_person": outputs["coarse_person"], "garment_mask": outputs["garment_mask"]}

    def _warp_cloth(self, cloth, cloth_mask, target, occluders):
        return warp_cloth(cloth, cloth_mask, target, self.warp_config, occluder_mask=occluders)

    def _tryon(self, person, cloth, cloth_mask, parsing, keypoints):
        occluders = label_mask(parsing, self.data_config.occluder_labels)
        if self.method == "nonparametric":
            target = garment_mask(parsing, self.data_config.garment_labels)
            outputs = self._nonparametric(person, cloth, cloth_mask, target, occluders)
            return {"tryon": outputs["tryon"], "coarse_person": person, "garment_mask": target,
                    "warped_cloth": outputs["warped_cloth"], "composition_mask": outputs["composition_mask"]}
        representation = person_representation(person, parsing, keypoints, self.representation_config)
        coarse = _float32(self.generator({"representation": representation, "cloth": cloth}, training=False))
        target = tf.cast(coarse["cloth_mask"] > 0.5, tf.float32)  # model_zalando_refine_test.py:138
        warped_cloth, _ = self._warp(cloth, cloth_mask, target, occluders)
        refined = _float32(self.refinement({"warped_cloth": warped_cloth, "coarse_person": coarse["coarse_person"],
                                            "garment_mask": target}, training=False))
        return {"tryon": refined["tryon"], "coarse_person": coarse["coarse_person"],
                "garment_mask": target, "warped_cloth": warped_cloth,
                "composition_mask": refined["composition_mask"]}

    def signatures(self) -> dict:
        """The signatures to pass to tf.saved_model.save."""
        return {"serving_default": self.serving_default, "tryon_tensors": self.tryon_tensors}
