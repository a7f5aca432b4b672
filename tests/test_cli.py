"""`viton-tf`: one parser function per subcommand, defaults read from the configs, one-line usage errors."""
from __future__ import annotations

import pytest

from viton_tf import cli
from viton_tf.config import SynthConfig


@pytest.mark.parametrize("name", ["synth", "demo", "train", "warp-eval", "export", "serve", "client", "evaluate",
                                  "prepare", "tryon", "assets"])
def test_every_subcommand_has_its_parser(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args([name, "--help"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.startswith(f"usage: viton-tf {name}")


def test_each_subcommand_runs_its_handler():
    assert len(cli.SUBCOMMANDS) == 12
    assert cli.build_parser().parse_args(["assets", "--quiet"]).handler is cli._assets
    assert cli.build_parser().parse_args(["demo", "--quick"]).handler is cli._demo


def test_defaults_come_from_the_configs():
    synth = cli.build_parser().parse_args(["synth", "--out", "w"])
    assert (synth.pairs, synth.seed, synth.test_fraction, synth.categories) == \
        (SynthConfig.pairs, SynthConfig.seed, SynthConfig.test_fraction, SynthConfig.categories)
    train = cli.build_parser().parse_args(["train", "--data", ".", "--out", "run"])
    # A flag left out is None: the --config file (or the default ExperimentConfig) decides.
    assert train.steps is train.height is train.gan is train.method is None and train.config is None


def test_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(["train", "--data", ".", "--out", "run", "--height", "50"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "viton-tf train: error: argument --height: must be a multiple of 16, got 50\n"


def test_an_installed_copy_finds_its_jobs_under_viton_tf_jobs(tmp_path, monkeypatch):
    """setup.py installs training/, export/, serving/ as viton_tf_jobs.*; the CLI imports them by their names."""
    import sys

    (tmp_path / "viton_tf_jobs" / "training").mkdir(parents=True)
    (tmp_path / "viton_tf_jobs" / "training" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "path", list(sys.path))
    cli._jobs_on_path()
    assert sys.path[0] == str(tmp_path / "viton_tf_jobs")
