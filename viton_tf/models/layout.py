"""The layout network of the real-photo try-on: where the new garment and the newly exposed skin go.

It sees only texture-free inputs (pose boxes and limb lines, the paper's blurred body shape, the
product's mask), so what it learns on the synthetic world (geometry) carries over to real photos,
whose appearance it never has to reproduce. A small U-Net of G_C's blocks.
"""
from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from viton_tf.config import GeneratorConfig, from_dict
from viton_tf.models.generator import downsample, upsample

# COCO-18 bones drawn as limb lines: arms (shoulder-elbow-wrist), shoulders, torso sides and the neck.
BONES = ((2, 3), (3, 4), (5, 6), (6, 7), (1, 2), (1, 5), (2, 8), (5, 11), (1, 0))
_MULTIPLE = 32  # five stride-2 levels


def limb_lines(keypoints, height: int, width: int, radius: float) -> tf.Tensor:
    """[B, 18, 3] keypoints -> [B, H, W, len(BONES)]: 1 within `radius` px of each visible bone."""
    keypoints = tf.convert_to_tensor(keypoints, tf.float32)
    ys, xs = tf.meshgrid(tf.range(height, dtype=tf.float32), tf.range(width, dtype=tf.float32), indexing="ij")
    lines = []
    for first, second in BONES:  # one [B, H, W] map at a time: memory stays O(B H W)
        a, b = keypoints[:, first], keypoints[:, second]
        visible = tf.cast((a[:, 2] > 0) & (b[:, 2] > 0), tf.float32)[:, None, None]
        ax, ay = a[:, 0, None, None], a[:, 1, None, None]
        dx, dy = (b[:, 0] - a[:, 0])[:, None, None], (b[:, 1] - a[:, 1])[:, None, None]
        t = tf.clip_by_value(((xs - ax) * dx + (ys - ay) * dy) / tf.maximum(dx * dx + dy * dy, 1e-6), 0.0, 1.0)
        distance_sq = (xs - ax - t * dx) ** 2 + (ys - ay - t * dy) ** 2
        lines.append(tf.cast(distance_sq <= radius * radius, tf.float32) * visible)
    return tf.stack(lines, axis=-1)


@keras.saving.register_keras_serializable(package="viton_tf")
class LayoutNet(keras.Model):
    """{"layout_inputs" [B, H, W, C]} -> {"garment_mask", "skin_mask"} (sigmoid), H and W multiples of 32."""

    def __init__(self, config: GeneratorConfig = GeneratorConfig(base_filters=16, filter_multipliers=(1, 2, 4, 8, 8),
                                                                 dropout=0.0, batch_norm_momentum=0.9), **kwargs):
        super().__init__(**kwargs)
        self.config = config
        filters = [config.base_filters * m for m in config.filter_multipliers]
        self.encoders = [downsample(f, config, f"encoder_{i + 1}", first=i == 0) for i, f in enumerate(filters)]
        self.decoders = [upsample(f, config, f"decoder_{i + 2}") for i, f in reversed(list(enumerate(filters[:-1])))]
        self.output_layer = upsample(2, config, "decoder_1", last=True)

    def call(self, inputs, training=False):
        x = inputs["layout_inputs"]
        skips = []
        for encoder in self.encoders:
            x = encoder(x, training=training)
            skips.append(x)
        for decoder, skip in zip(self.decoders, reversed(skips[:-1])):
            x = tf.concat([decoder(x, training=training), skip], axis=-1)
        x = tf.sigmoid(self.output_layer(x, training=training))
        return {"garment_mask": x[..., :1], "skin_mask": x[..., 1:]}

    def get_config(self):
        return {**super().get_config(), "config": dataclasses.asdict(self.config)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(config=from_dict(GeneratorConfig, config.pop("config")), **config)
