"""`viton-tf evaluate`: the IS/FID arithmetic, run discovery, and every method trained and compared."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from training.evaluate import NO_WEIGHTS, TITLES, find_runs, frechet_distance, inception_score
from viton_tf.cli import main
from viton_tf.errors import UserError

SIZE = ["--height", "64", "--width", "48"]


def test_inception_score_is_one_for_identical_predictions_and_n_for_n_distinct_classes():
    assert inception_score(np.full((5, 10), 0.1)) == pytest.approx(1.0)
    assert inception_score(np.eye(4)) == pytest.approx(4.0, rel=1e-6)
    mixed = np.array([[0.9, 0.1], [0.1, 0.9]])
    assert 1.0 < inception_score(mixed) < 2.0


def test_frechet_distance_of_shifted_gaussians_is_the_squared_shift():
    features = np.random.default_rng(0).normal(size=(400, 3))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(features, features + [2.0, 0.0, 0.0]) == pytest.approx(4.0, rel=1e-6)


def test_find_runs_needs_a_config_naming_a_known_method(tmp_path):
    with pytest.raises(UserError, match="no run folders"):
        find_runs(tmp_path)
    (tmp_path / "mystery").mkdir()
    (tmp_path / "mystery" / "config.json").write_text(json.dumps({"method": "pix2pix"}))
    with pytest.raises(UserError, match="mystery/config.json.*pix2pix"):
        find_runs(tmp_path)
    (tmp_path / "mystery" / "config.json").write_text(json.dumps({"method": "crn", "data": {"height": 64}}))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "config.json").write_text(json.dumps({"method": "prgan"}))
    assert [(run.name, run.method) for run in find_runs(tmp_path)] == [("b", "prgan"), ("mystery", "crn")]


def _train(world, runs, method, *extra):
    assert main(["train", "--method", method, "--data", str(world), "--out", str(runs / method), "--steps", "2",
                 "--batch-size", "2", "--vgg-weights", "none", *SIZE, *extra]) == 0


def _evaluate(world, runs, report):
    assert main(["evaluate", "--data", str(world), "--runs", str(runs), "--out", str(report)]) == 0
    return json.loads((report / "metrics.json").read_text()), (report / "metrics.md").read_text()


class StubInception:
    """Stands in for InceptionV3 (no weights offline): 3 'classes' from the mean colour, 6 'features'."""

    def __init__(self, weights):
        self.weights = weights

    def __call__(self, images):
        images = np.asarray(images)
        colour = images.mean(axis=(1, 2)) * 5.0
        probabilities = np.exp(colour) / np.exp(colour).sum(axis=1, keepdims=True)
        return np.concatenate([colour, images[:, ::16, ::16, 0].reshape(len(images), -1)[:, :3]], axis=1), probabilities


def test_nonparametric_needs_no_training_and_pastes_the_warped_cloth(synthetic_world, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    _train(synthetic_world, runs, "nonparametric")
    assert sorted(p.name for p in (runs / "nonparametric").iterdir()) == ["config.json"]
    metrics, _ = _evaluate(synthetic_world, runs, tmp_path / "report")
    row = metrics["methods"]["nonparametric"]
    # The own garment warped onto its own region: most of the image is the person itself.
    assert row["paired"]["ssim"] > 0.8 and row["warp_iou"]["paired"] > 0.6
    assert row["unpaired"]["ssim"] < row["paired"]["ssim"]
    assert row["inception_score"] == row["fid"] == NO_WEIGHTS

    import training.evaluate

    monkeypatch.setattr(training.evaluate, "Inception", StubInception)
    assert main(["evaluate", "--data", str(synthetic_world), "--runs", str(runs), "--out", str(tmp_path / "is"),
                 "--inception-weights", "stub"]) == 0
    row = json.loads((tmp_path / "is" / "metrics.json").read_text())["methods"]["nonparametric"]
    assert 1.0 <= row["inception_score"] <= 3.0 and 0.0 <= row["fid"] < 1e3


@pytest.mark.slow
def test_all_six_methods_train_and_evaluate(synthetic_world, tmp_path):
    runs = tmp_path / "runs"
    for method in ("prgan", "cagan", "crn", "encoder_decoder", "nonparametric"):
        _train(synthetic_world, runs, method)
    _train(synthetic_world, runs, "viton", "--stage", "1")
    _train(synthetic_world, runs, "viton", "--stage", "2")
    report = tmp_path / "report"
    metrics, table = _evaluate(synthetic_world, runs, report)

    methods = metrics["methods"]
    assert list(methods) == ["prgan", "cagan", "crn", "encoder_decoder", "nonparametric", "viton"]
    assert metrics["pairs"] == metrics["unpaired_pairs"] == 4
    for name, row in methods.items():
        assert row["inception_score"] == row["fid"] == NO_WEIGHTS
        for setting in ("paired", "unpaired"):
            assert -1.0 <= row[setting]["ssim"] <= 1.0 and row[setting]["psnr"] > 0.0 and row[setting]["l1"] >= 0.0
        assert (row["warp_iou"] is not None) == (name in ("nonparametric", "viton"))
        line = next(line for line in table.splitlines() if line.startswith(f"| {TITLES[name]} |"))
        assert line.count(NO_WEIGHTS) == 2
    # Two training steps teach nothing; pasting the own garment back reproduces the person best.
    best = max(methods, key=lambda name: methods[name]["paired"]["ssim"])
    assert best == "nonparametric"

    figure = cv2.imread(str(report / "comparison.png"))
    tile_h, tile_w = 128, 96  # 64x48 drawn twice as large
    assert figure.shape == (22 + 4 * tile_h, (2 + 6 + 1) * tile_w, 3)


def test_inception_weights_must_exist(tmp_path):
    from training.evaluate import Inception

    with pytest.raises(UserError, match="no such file"):
        Inception(str(tmp_path / "inception.h5"))
