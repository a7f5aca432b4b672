"""Session-wide fixtures: the shared real samples, one small synthetic world, one trained and exported run.

`make test` runs the suite on two pytest-xdist workers (`-n 2 --dist loadfile`: a file's tests stay on one
worker, so its module fixtures are built once); the session fixtures below are still built once per test run,
by the first worker that needs them, while the other waits on a file lock and reuses the folder."""
from __future__ import annotations

import os
import shutil
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


def built_once(tmp_path_factory, name: str, build) -> Path:
    """The folder `name`, filled by `build(folder)` once per test run: here, or under pytest-xdist by the first
    worker to get there, in the folder the run's workers share (the others wait on its lock). A build that fails
    leaves no folder behind, so the next worker tries again and fails the same way."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        folder = tmp_path_factory.mktemp(name)
        build(folder)
        return folder
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent  # this run's folder, above each worker's own
    folder, built = shared / name, shared / f"{name}.built"
    with FileLock(str(shared / f"{name}.lock")):
        if not built.is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            try:
                build(folder)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            built.touch()
    return folder


@pytest.fixture(scope="session")
def synthetic_world(tmp_path_factory) -> Path:
    """A 16-pair synthetic world at 64x48, built once per test run."""
    from viton_tf.config import SynthConfig
    from viton_tf.data.synthetic import write_world

    return built_once(tmp_path_factory, "world", lambda out: write_world(
        out, SynthConfig(pairs=16, height=64, width=48, seed=0, test_fraction=0.25), progress=False))


TINY_TRAINING = ["--height", "64", "--width", "48", "--batch-size", "2", "--vgg-weights", "none", "--steps", "2",
                 "--set", "generator.base_filters=16", "--image-every", "1000", "--checkpoint-every", "1000"]


@pytest.fixture(scope="session")
def trained_run(synthetic_world, tmp_path_factory) -> Path:
    """One tiny VITON run (both stages, 64x48, 2 steps each), shared by every test of the run."""
    from viton_tf.cli import main

    def train(folder: Path) -> None:
        for stage in ("1", "2"):
            assert main(["train", "--data", str(synthetic_world), "--out", str(folder / "run"), "--stage", stage,
                         *TINY_TRAINING]) == 0

    return built_once(tmp_path_factory, "trained", train) / "run"


@pytest.fixture(scope="session")
def exported(trained_run, synthetic_world, tmp_path_factory) -> Path:
    """`trained_run` exported (the default, stock-TF-Serving export) as version 1 of a model base path."""
    from viton_tf.cli import main

    def export(folder: Path) -> None:
        assert main(["export", "--run", str(trained_run), "--out", str(folder / "viton"), "--version", "1",
                     "--data", str(synthetic_world)]) == 0

    return built_once(tmp_path_factory, "models", export) / "viton"
