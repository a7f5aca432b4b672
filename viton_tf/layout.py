"""The real-photo try-on's layout: its inputs from a person's parsing and pose, its synthetic training
examples, and its shipped weights.

Training examples come from the synthetic world with exact truth: each body is rendered wearing its own
top (which gives the inputs: pose, blurred body shape) and wearing another product (whose product mask
is the third input, and whose render gives the targets: the new garment's mask and the visible skin).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from viton_tf.config import BODY25_TO_COCO18, CATEGORIES, CATEGORY_NAMES, RepresentationConfig, category
from viton_tf.representation import person_representation

# One layout network per category (the upper one is the first shipped, unchanged): each learns one kind of
# garment's shapes on the body, and the upper network's measured results stay what they were.
WEIGHTS_FOLDER = Path(__file__).with_name("weights")
CHANNELS = 18 + 9 + 1 + 1
# The synthetic world's random streams are keyed by (seed, index): the layout trains on bodies and garments
# of its own seed range, so no `viton-tf synth` world a user or a test writes (seeds 0, 1, ...) shares them.
TRAINING_SEED_OFFSET = 1_000_003


def layout_inputs(parsing, keypoints, product_mask, config: RepresentationConfig) -> tf.Tensor:
    """[B, H, W, 29]: pose boxes, limb lines, the paper's blurred body shape, the product's mask."""
    from viton_tf.models.layout import limb_lines

    parsing = tf.convert_to_tensor(parsing)
    height, width = parsing.shape[1], parsing.shape[2]
    zeros = tf.zeros([tf.shape(parsing)[0], height, width, 3])
    representation = person_representation(zeros, parsing, keypoints, config)  # pose 18, body 1, face RGB 3
    lines = limb_lines(keypoints, height, width, radius=max(1.0, height / 64))
    return tf.concat([representation[..., :19], lines, tf.convert_to_tensor(product_mask, tf.float32)], axis=-1)


def weights_path(name: str = "upper") -> Path:
    """The shipped weights of a category's layout network (the upper one keeps its first name)."""
    category(name)
    return WEIGHTS_FOLDER / ("layout.weights.h5" if name == "upper" else f"layout_{name}.weights.h5")


def synthetic_examples(count: int, height: int, width: int, seed: int = 0,
                       garment: str = "upper") -> dict[str, np.ndarray]:
    """`count` layout examples of a category from the synthetic world: parsing (own garment), COCO-18
    keypoints, product mask of another garment of the category, and the targets garment_mask and skin_mask
    (the category's garment and skin labels) of the body wearing that product."""
    from viton_tf.config import SynthConfig
    from viton_tf.data.synthetic import swapped_garment

    labels = category(garment)
    config = SynthConfig(pairs=count, height=height, width=width, seed=TRAINING_SEED_OFFSET + seed,
                         categories=(garment,))
    examples = {name: [] for name in ("parsing", "keypoints", "product_mask", "garment_mask", "skin_mask")}
    for index in range(count):
        example = swapped_garment(config, index, count + index, garment)
        examples["parsing"].append(example["parse_own"].astype(np.int32))
        examples["keypoints"].append(example["keypoints"][list(BODY25_TO_COCO18)].astype(np.float32))
        examples["product_mask"].append((example["product_mask"] > 127).astype(np.float32)[..., None])
        examples["garment_mask"].append(
            np.isin(example["parse_new"], labels.garment_labels).astype(np.float32)[..., None])
        examples["skin_mask"].append(np.isin(example["parse_new"], labels.skin_labels).astype(np.float32)[..., None])
    return {name: np.stack(values) for name, values in examples.items()}


def load_layout_nets(height: int = 256, width: int = 192, folder: Path | None = None) -> dict:
    """The shipped layout network of every category ({name: network}), from `folder` if given."""
    return {name: load_layout_net(weights_path(name) if folder is None else Path(folder) / weights_path(name).name,
                                  height, width, name)
            for name in CATEGORY_NAMES}


def load_layout_net(path: Path | None = None, height: int = 256, width: int = 192, garment: str = "upper"):
    """The shipped (or given) layout network of a category, built at height x width and its weights loaded."""
    from viton_tf.errors import UserError
    from viton_tf.models.layout import LayoutNet

    path = weights_path(garment) if path is None else path
    network = LayoutNet(name="layout" if garment == "upper" else f"layout_{garment}")
    network({"layout_inputs": tf.zeros([1, height, width, CHANNELS])})
    if not Path(path).is_file():
        raise UserError(f"{path}: the {garment} layout network's weights are missing; retrain them with "
                        f"`viton-tf train-layout --category {garment}` (see the README)")
    network.load_weights(str(path))
    return network


