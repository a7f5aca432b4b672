"""The try-on methods, once: VITON and the paper's baselines (Table 1), and what each one is.

Everything that lists methods reads this table: `viton-tf train --method`, `viton-tf tryon --method`,
the builders of the training models (training/fit.py), `viton-tf evaluate`, the exported try-on
(viton_tf/tryon.py) and the demo.
"""
from __future__ import annotations

from dataclasses import dataclass

from viton_tf.errors import UserError


@dataclass(frozen=True)
class Method:
    """One try-on method: its title in reports, what it is, and what its run folder holds."""

    name: str
    title: str
    what: str
    trainable: bool  # `viton-tf train --method NAME` fits networks (else the run folder holds only its config)
    exports: bool  # the exported try-on (TF Serving SavedModel, `viton-tf tryon`) can run it
    weights: tuple[str, ...]  # RUN/<stem>.weights.h5 that a trained run holds


# In the order of the paper's Table 1, then VITON itself (the order of `viton-tf evaluate`'s report).
METHODS: dict[str, Method] = {method.name: method for method in (
    Method("prgan", "PRGAN", "pix2pix on the representation without face and hair", True, False, ("prgan",)),
    Method("cagan", "CAGAN", "swaps the worn cloth for another, with a cycle back", True, False, ("cagan",)),
    Method("crn", "CRN", "cascaded refinement modules from coarse to full resolution", True, False, ("crn",)),
    Method("encoder_decoder", "Encoder-Decoder", "VITON's stage 1 alone: its coarse person is the result",
           True, False, ("generator",)),
    Method("nonparametric", "Non-parametric", "the product warped by shape-context TPS and pasted, no learning",
           False, True, ()),
    Method("viton", "VITON", "stage 1 (G_C), the shape-context TPS warp, stage 2 (G_R)", True, True,
           ("generator", "refinement")),
    # Not in the paper: the real-photo method. Its layout network ships with the package (viton_tf/weights,
    # retrained by `viton-tf train-layout`), so its run folder holds only its config.
    Method("layout", "Layout (real photos)", "a layout network on texture-free inputs decides the new garment's "
           "shape and the newly bare skin; the product is warped there; the photo's own pixels elsewhere",
           False, True, ()),
)}
NAMES = tuple(METHODS)
TRAINABLE = tuple(name for name, method in METHODS.items() if method.trainable)
# The methods the exported try-on can run: layout, nonparametric, viton.
EXPORTABLE = tuple(name for name in reversed(NAMES) if METHODS[name].exports)


def method(name: str) -> Method:
    """The method called `name`; an error names the known ones."""
    if name not in METHODS:
        raise UserError(f"method {name!r}: unknown (known: {', '.join(NAMES)})")
    return METHODS[name]
