"""`viton-tf train-layout`: the real-photo try-on's layout network, trained on the synthetic world.

Texture-free inputs, exact targets (viton_tf.layout.synthetic_examples); binary cross-entropy on the new
garment's mask and the visible skin. The shipped weights (viton_tf/weights/layout.weights.h5) were made
with the defaults, one per category: `viton-tf train-layout --category upper|lower|dress --overwrite`.
"""
from __future__ import annotations

import json
from pathlib import Path

from viton_tf.errors import UserError


def train_layout(out: Path, examples: int = 768, steps: int = 1200, batch_size: int = 8, height: int = 256,
                 width: int = 192, seed: int = 0, overwrite: bool = False, verbose: int = 2,
                 garment: str = "upper") -> dict:
    """Train and write a category's layout weights to `out` (and `out`.json: the settings and the losses)."""
    import keras
    import tensorflow as tf

    from viton_tf.config import RepresentationConfig
    from viton_tf.layout import layout_inputs, synthetic_examples
    from viton_tf.models.layout import LayoutNet

    out = Path(out)
    if out.exists() and not overwrite:
        raise UserError(f"{out}: already exists; pass --overwrite to replace it")
    keras.utils.set_random_seed(seed)
    data = synthetic_examples(examples, height, width, seed, garment)
    representation = RepresentationConfig(height=height, width=width)

    def to_model(example):  # per batch, in the pipeline: the inputs of 768 examples would take GBs
        inputs = layout_inputs(example["parsing"], example["keypoints"], example["product_mask"], representation)
        return {"layout_inputs": inputs}, {"garment_mask": example["garment_mask"], "skin_mask": example["skin_mask"]}

    dataset = tf.data.Dataset.from_tensor_slices(data)
    held_out = max(batch_size, examples // 8)
    validation = dataset.take(held_out).batch(batch_size).map(to_model).cache()
    train = (dataset.skip(held_out).shuffle(examples, seed=seed).repeat().batch(batch_size, drop_remainder=True)
             .map(to_model, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2))
    network = LayoutNet(name="layout")
    network.compile(optimizer=keras.optimizers.Adam(2e-3), loss={"garment_mask": "binary_crossentropy",
                                                                  "skin_mask": "binary_crossentropy"})
    epochs = 6
    history = network.fit(train, steps_per_epoch=steps // epochs, epochs=epochs, validation_data=validation,
                          verbose=verbose)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial.weights.h5")
    network.save_weights(str(partial))
    partial.replace(out)  # never a half-written weights file
    report = {"category": garment, "examples": examples, "held_out": held_out, "steps": steps, "batch_size": batch_size,
              "height": height, "width": width, "seed": seed,
              "loss": [round(v, 4) for v in history.history["loss"]],
              "val_loss": [round(v, 4) for v in history.history["val_loss"]]}
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def run_train_layout(args) -> int:
    from viton_tf.layout import weights_path

    out = args.out or weights_path(args.category)
    report = train_layout(out, args.examples, args.steps, args.batch_size, seed=args.seed,
                          overwrite=args.overwrite, garment=args.category)
    print(f"wrote {out}: loss {report['loss'][0]} -> {report['loss'][-1]}, "
          f"held-out {report['val_loss'][0]} -> {report['val_loss'][-1]}")
    return 0
