"""Session-wide fixtures: the shared real samples and one small synthetic world."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """The real samples beside the checkout (`../shared/data`), or $VITON_SHARED_DATA."""
    return Path(os.environ.get("VITON_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real samples not found at {path} (set VITON_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def synthetic_world(tmp_path_factory) -> Path:
    """A 16-pair synthetic world at 64x48, built once per test session."""
    from viton_tf.config import SynthConfig
    from viton_tf.data.synthetic import write_world

    out = tmp_path_factory.mktemp("world")
    write_world(out, SynthConfig(pairs=16, height=64, width=48, seed=0, test_fraction=0.25),
                progress=False)
    return out


TINY_TRAINING = ["--height", "64", "--width", "48", "--batch-size", "2", "--vgg-weights", "none", "--steps", "2",
                 "--set", "generator.base_filters=16", "--image-every", "1000", "--checkpoint-every", "1000"]


@pytest.fixture(scope="session")
def trained_run(synthetic_world, tmp_path_factory) -> Path:
    """One tiny VITON run (both stages, 64x48, 2 steps each), shared by every test of the session."""
    from viton_tf.cli import main

    run = tmp_path_factory.mktemp("trained") / "run"
    for stage in ("1", "2"):
        assert main(["train", "--data", str(synthetic_world), "--out", str(run), "--stage", stage,
                     *TINY_TRAINING]) == 0
    return run


@pytest.fixture(scope="session")
def exported(trained_run, synthetic_world, tmp_path_factory) -> Path:
    """`trained_run` exported (the default, stock-TF-Serving export) as version 1 of a model base path."""
    from viton_tf.cli import main

    base = tmp_path_factory.mktemp("models") / "viton"
    assert main(["export", "--run", str(trained_run), "--out", str(base), "--version", "1",
                 "--data", str(synthetic_world)]) == 0
    return base
