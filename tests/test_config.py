"""The root ExperimentConfig: one size, whole round trips, unknown fields named, named experiments, run folders."""
from __future__ import annotations

import dataclasses
import json
from argparse import Namespace
from pathlib import Path

import pytest

from viton_tf.config import (SECTIONS, DataConfig, ExperimentConfig, load_experiment, load_run_config,
                             parse_overrides, run_record)
from viton_tf.errors import UserError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_every_section_round_trips_whole():
    experiment = ExperimentConfig().sized(64, 48).with_overrides(parse_overrides(
        ["generator.base_filters=8", "loss.vgg_layers=[\"block1_conv2\"]", "prgan.l1=50", "data.skip_bad=true"],
        SECTIONS))
    assert set(experiment.to_dict()) == set(SECTIONS) >= {"data", "generator", "loss", "train", "warp", "crn"}
    assert ExperimentConfig.from_dict(json.loads(json.dumps(experiment.to_dict()))) == experiment
    assert experiment.generator.base_filters == 8 and experiment.loss.vgg_layers == ("block1_conv2",)
    assert experiment.data.skip_bad and experiment.prgan.l1 == 50


def test_the_image_size_is_one():
    experiment = ExperimentConfig.from_dict({"train": {"height": 64, "width": 48}})
    assert (experiment.data.height, experiment.representation.width) == (64, 48)
    resized = experiment.with_overrides(parse_overrides(["data.height=32"], SECTIONS))
    assert resized.train.height == resized.representation.height == 32
    with pytest.raises(UserError, match="data.height=32, train.height=64"):
        ExperimentConfig.from_dict({"train": {"height": 64}, "data": {"height": 32}})
    with pytest.raises(UserError, match="must be one"):
        ExperimentConfig(data=DataConfig(height=64))


@pytest.mark.parametrize("item", ["data.split=test", "data.shuffle=false", "data.seed=1",
                                  "train.warp_matcher=hungarian", "loss.gan_weight_when_enabled=1"])
def test_dead_fields_are_gone_and_named(item):
    with pytest.raises(UserError, match=f"--set {item.split('=')[0]}: no such field"):
        ExperimentConfig().with_overrides(parse_overrides([item], SECTIONS))


def test_unknown_sections_and_fields_are_named():
    with pytest.raises(UserError, match=r"x.json: unknown section\(s\) \['serving'\]"):
        ExperimentConfig.from_dict({"serving": {}}, "x.json")
    with pytest.raises(UserError, match="x.json: warp.grid: no such field"):
        ExperimentConfig.from_dict({"warp": {"grid": 4}}, "x.json")


@pytest.mark.parametrize("name", ["demo", "paper_256x192", "comparison_64x48"])
def test_the_named_experiments_load(name):
    experiment = load_experiment(CONFIGS / f"{name}.json")
    assert experiment.train.height % 16 == 0 and experiment.train.width % 16 == 0
    assert ExperimentConfig.from_dict(experiment.to_dict()) == experiment
    if name == "comparison_64x48":
        assert (experiment.train.steps, experiment.train.batch_size, experiment.generator.batch_norm_momentum) == \
            (200, 4, 0.9)


def test_config_file_then_flags_then_set(tmp_path):
    from training.train import experiment_from_args

    args = Namespace(config=CONFIGS / "comparison_64x48.json", stage=None, method="crn", steps=None,
                     batch_size=2, height=None, width=None, vgg_weights=None, gan=None, strategy=None, seed=None,
                     checkpoint_every=None, image_every=None, cache=None, set=["train.steps=7"])
    experiment = experiment_from_args(args)
    assert (experiment.train.method, experiment.train.batch_size, experiment.train.steps) == ("crn", 2, 7)
    assert (experiment.data.height, experiment.generator.batch_norm_momentum) == (64, 0.9)


def test_a_run_folder_reads_back_as_its_experiment(tmp_path):
    experiment = ExperimentConfig().sized(64, 48)
    stage2 = dataclasses.replace(experiment, train=dataclasses.replace(experiment.train, stage=2))
    record = run_record(stage2, "stage2", run_record(experiment, "stage1"))
    assert record["method"] == "viton" and record["train_stage1"]["stage"] == 1
    (tmp_path / "config.json").write_text(json.dumps(record))
    assert load_run_config(tmp_path) == stage2
    # A file with only the method (and a section) reads too: the rest are the defaults.
    (tmp_path / "config.json").write_text(json.dumps({"method": "crn", "data": {"height": 64}}))
    assert load_run_config(tmp_path).train.method == "crn" and load_run_config(tmp_path).train.height == 64
    # A run written before the root config: its retired fields are dropped.
    (tmp_path / "config.json").write_text(json.dumps({
        "method": "viton", "data": {"height": 64, "width": 48, "split": "train", "shuffle": True, "seed": 0},
        "loss": {"adversarial": 0.0, "gan_weight_when_enabled": 0.1},
        "train_stage1": {"stage": 1, "height": 64, "width": 48, "warp_matcher": "sinkhorn"}}))
    assert load_run_config(tmp_path).train.height == 64 and load_run_config(tmp_path).loss.adversarial == 0.0
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(UserError, match="config.json: not valid JSON"):
        load_run_config(tmp_path)
