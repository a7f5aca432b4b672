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
