"""The one table of methods (viton_tf/methods.py) and everything that reads it."""
from __future__ import annotations

import pytest

from viton_tf import methods
from viton_tf.errors import UserError


def test_the_table_lists_table_1_then_viton_then_the_real_photo_method():
    assert methods.NAMES == ("prgan", "cagan", "crn", "encoder_decoder", "nonparametric", "viton", "layout")
    assert methods.TRAINABLE == ("prgan", "cagan", "crn", "encoder_decoder", "viton")
    assert methods.EXPORTABLE == ("layout", "viton", "nonparametric")
    assert methods.method("layout").weights == ()  # its weights ship with the package
    assert methods.method("viton").weights == ("generator", "refinement")
    assert methods.method("nonparametric").weights == ()
    with pytest.raises(UserError, match="known: prgan, cagan"):
        methods.method("pix2pix")


def test_every_trainable_method_has_a_builder_and_the_cli_offers_every_method():
    from training.fit import builders, method_builder
    from viton_tf.cli import build_parser

    assert set(builders()) == set(methods.TRAINABLE)
    assert method_builder("nonparametric") is None
    with pytest.raises(UserError, match="--method pix2pix: not available"):
        method_builder("pix2pix")
    train = build_parser().parse_args(["train", "--method", "crn", "--data", ".", "--out", "run"])
    assert train.method == "crn"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["tryon", "--method", "crn", "--person", __file__, "--cloth", __file__,
                                   "--out", "x.png"])


def test_the_jobs_read_the_table():
    from training import demo, evaluate

    assert evaluate.METHODS == methods.NAMES and evaluate.TITLES["encoder_decoder"] == "Encoder-Decoder"
    assert demo.MODELS == methods.EXPORTABLE
