"""The run folder RUN/: its config.json read back, its networks loaded, a predictor or a try-on module made from it.

RUN/config.json holds every config section of the run ("generator", "warp", ... and "method");
RUN/<network>.weights.h5 the trained weights (`viton-tf train` writes both).
"""
from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from viton_tf.config import ExperimentConfig, load_run_config
from viton_tf.errors import UserError


def build_network(method: str, experiment: ExperimentConfig, height: int, width: int):
    """The network a baseline trains, from the config sections of its run (None for nonparametric)."""
    from viton_tf.models.baselines.cagan import CAGAN
    from viton_tf.models.baselines.crn import CRN
    from viton_tf.models.baselines.prgan import PRGAN

    if method == "prgan":
        return PRGAN(experiment.prgan, experiment.generator)
    if method == "cagan":
        return CAGAN(experiment.cagan, experiment.generator)
    if method == "crn":
        return CRN(experiment.crn, height, width)
    if method == "nonparametric":
        return None
    raise ValueError(f"no baseline network for method {method!r}")


def load_weights(network, inputs: dict, path: Path):
    """`network` built on `inputs` (zeros of the right shapes), then its weights from `path`."""
    if not path.is_file():
        raise UserError(f"{path}: weights not found (train the run first: `viton-tf train --out {path.parent}`)")
    network(inputs, training=False)  # build the variables before loading into them
    try:
        network.load_weights(str(path))
    except Exception as error:
        raise UserError(f"{path}: cannot load the weights ({error})") from None
    return network


def _zeros(experiment: ExperimentConfig, height: int, width: int) -> dict:
    image = tf.zeros([1, height, width, 3])
    channels = experiment.representation.channels
    return {"representation": tf.zeros([1, height, width, channels]), "cloth": image, "person": image,
            "worn_cloth": image, "warped_cloth": image, "coarse_person": image, "garment_mask": image[..., :1]}


def load_viton_networks(run: Path, experiment: ExperimentConfig, height: int, width: int) -> tuple:
    """(generator, refinement) of a VITON run, weights loaded."""
    from viton_tf.models.generator import Generator
    from viton_tf.models.refinement import Refinement

    run, zeros = Path(run), _zeros(experiment, height, width)
    generator = load_weights(Generator(experiment.generator, name="generator"),
                             {name: zeros[name] for name in ("representation", "cloth")},
                             run / "generator.weights.h5")
    refinement = load_weights(Refinement(experiment.refinement, name="refinement"),
                              {name: zeros[name] for name in ("warped_cloth", "coarse_person", "garment_mask")},
                              run / "refinement.weights.h5")
    return generator, refinement


def tryon_module(run: Path | None, method: str | None = None, precision: str = "float32", xla: bool = False):
    """The exportable TryOnModule of a run folder (or, with `run=None`, of a method that needs no run:
    layout with its shipped weights, nonparametric), at 256x192 by default; the method is the run's own
    unless given.
    `precision="bfloat16"` builds the networks under Keras' bfloat16 policy: the weights are rounded to bfloat16
    once, on loading (mixed_bfloat16 rounds the same float32 weights on every call: 30% of G_C's time), and
    the maths is bfloat16 except the batch and group norms (Keras computes those in float32). Fast only with
    AMX/AVX512-BF16, see viton_tf.hardware."""
    import keras

    from viton_tf.tryon import PRECISIONS, TryOnModule

    experiment = load_run_config(run) if run is not None else ExperimentConfig()
    method = method or experiment.train.method
    if run is None and method not in ("layout", "nonparametric"):
        raise UserError(f"method {method}: needs a trained run folder (--run)")
    if precision not in PRECISIONS:
        raise UserError(f"precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    representation = experiment.representation
    height, width = representation.height, representation.width
    networks, layout_nets = (None, None), None
    if method == "layout":
        from viton_tf.layout import load_layout_nets

        layout_nets = load_layout_nets(height, width)
    if method == "viton":
        policy = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy(precision)
        try:
            networks = load_viton_networks(run, experiment, height, width)
        finally:
            keras.mixed_precision.set_global_policy(policy)
    return TryOnModule(height, width, method, *networks, representation, experiment.warp, experiment.data,
                       xla=xla, layout_nets=layout_nets)


def load_predictor(run: Path, method: str, experiment: ExperimentConfig, height: int, width: int):
    """A function batch -> {"tryon"[, "warped_mask"]} for a trained run; the batch has the readers' keys plus
    "representation" and "worn_cloth" (the product photo of the garment the person wears)."""
    from viton_tf.representation import batch_categories, label_mask, replaced_mask
    from viton_tf.tryon import make_warp, nonparametric_tryon, viton_forward

    run = Path(run)
    warp, data = make_warp(experiment.warp), experiment.data
    occluders = lambda batch: label_mask(batch["parsing"], data.occluder_labels)
    zeros = _zeros(experiment, height, width)
    generator_inputs = lambda batch: {"representation": batch["representation"], "cloth": batch["cloth"]}
    if method == "nonparametric":
        def paste(batch):
            outputs = nonparametric_tryon(batch["person"], batch["cloth"], batch["cloth_mask"],
                                          replaced_mask(batch["parsing"], batch_categories(batch), data,
                                                        experiment.representation), occluders(batch),
                                          warp=warp)
            return {**outputs, "garment_region": outputs["composition_mask"]}

        return paste
    if method == "layout":
        from viton_tf.layout import load_layout_nets
        from viton_tf.tryon import layout_tryon

        layout_nets = load_layout_nets(height, width)

        def lay_out(batch):
            outputs = layout_tryon(batch["person"], batch["cloth"], batch["cloth_mask"], batch["parsing"],
                                   batch["keypoints"], layout_nets, warp, experiment.representation,
                                   batch_categories(batch), data)
            return {"tryon": outputs["tryon"], "warped_mask": outputs["composition_mask"],
                    "garment_region": outputs["composition_mask"]}

        return lay_out
    if method in ("prgan", "crn"):
        network = load_weights(build_network(method, experiment, height, width), zeros, run / f"{method}.weights.h5")
        return lambda batch: {"tryon": network(generator_inputs(batch), training=False)["tryon"]}
    if method == "cagan":
        network = load_weights(build_network(method, experiment, height, width), zeros, run / "cagan.weights.h5")
        return lambda batch: {"tryon": network({"person": batch["person"], "worn_cloth": batch["worn_cloth"],
                                                "cloth": batch["cloth"]}, training=False)["tryon"]}
    if method == "encoder_decoder":
        from viton_tf.models.generator import Generator

        generator = load_weights(Generator(experiment.generator),
                                 {name: zeros[name] for name in ("representation", "cloth")},
                                 run / "generator.weights.h5")
        return lambda batch: {"tryon": generator(generator_inputs(batch), training=False)["coarse_person"]}
    if method != "viton":
        raise ValueError(f"unknown method {method!r}")
    generator, refinement = load_viton_networks(run, experiment, height, width)

    def predict(batch):
        outputs = viton_forward(generator, refinement, batch["representation"], batch["cloth"],
                                batch["cloth_mask"], occluders(batch), warp)
        return {"tryon": outputs["tryon"], "warped_mask": outputs["warped_mask"],
                "garment_region": outputs["garment_mask"]}

    return predict
