"""The one check every network's test runs: shapes at two sizes, config round trip, .keras round trip."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

SIZES = ((64, 48), (256, 192))


def _build(model_cls, config):
    return model_cls(**config) if isinstance(config, dict) else model_cls(config)


def _shapes(outputs) -> dict:
    if isinstance(outputs, dict):
        return {name: tuple(value.shape) for name, value in outputs.items()}
    return {"output": tuple(outputs.shape)}


def run_model_test(model_cls, config, inputs: Callable[[int, int], dict], expected_shapes: Callable[[int, int], dict],
                   sizes=SIZES) -> None:
    """Build `model_cls(config)` (or `model_cls(**config)` for a dict) and check it.

    `inputs(height, width)` gives the input dict; `expected_shapes(height, width)` the output shapes by name
    ({"output": shape} for a model returning one tensor). For each size: the output shapes. Then
    get_config/from_config gives the same config, and a .keras save/load round trip gives equal outputs.
    """
    import keras

    for height, width in sizes:
        model = _build(model_cls, config)
        outputs = model(inputs(height, width), training=False)
        assert _shapes(outputs) == {k: tuple(v) for k, v in expected_shapes(height, width).items()}, (height, width)

    height, width = sizes[0]
    model = _build(model_cls, config)
    batch = inputs(height, width)
    expected = model(batch, training=False)
    clone = model_cls.from_config(model.get_config())
    assert clone.get_config() == model.get_config()

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        model.save(path)
        loaded = keras.saving.load_model(path)
    assert type(loaded) is model_cls
    actual = loaded(batch, training=False)
    if not isinstance(expected, dict):
        expected, actual = {"output": expected}, {"output": actual}
    for name in expected:
        np.testing.assert_allclose(np.asarray(actual[name]), np.asarray(expected[name]), rtol=1e-5, atol=1e-6,
                                   err_msg=name)
