"""`viton-tf warp-eval` (training/warp_eval.py): the warp against the synthetic world's true warp."""
from __future__ import annotations

import json

import numpy as np

from training.warp_eval import load_pairs, measure_cloth_fixes


def test_warp_eval_writes_its_report(synthetic_world, tmp_path, capsys):
    from viton_tf.cli import main

    out = tmp_path / "warp.json"
    assert main(["warp-eval", "--data", str(synthetic_world), "--out", str(out), "--matcher", "sinkhorn",
                 "--set", "warp.sinkhorn_iterations=12"]) == 0
    report = json.loads(out.read_text())
    for key in ("median_iou", "mean_iou", "ssim_in_garment", "ms_per_pair"):
        assert np.isfinite(report[key]), key
        assert np.isfinite(report["bbox_affine"][key]), key
    assert report["pairs"] == 4 and (report["height"], report["width"]) == (64, 48) and report["occluders"]
    assert report["warp_config"]["sinkhorn_iterations"] == 12 and report["warp_config"]["control_grid"] == 10
    assert main(["warp-eval", "--data", str(synthetic_world), "--out", str(out), "--set", "warp.grid=4"]) == 2
    assert "warp.grid: no such field" in capsys.readouterr().err
    assert 0.5 < report["median_iou"] <= 1.0
    assert set(report["neck_label"]) >= {"detection_rate", "false_positive_rate"}
    assert "iou_gain" in report["collar"]


def test_fixes_on_the_synthetic_world(synthetic_world):
    examples = []
    for split in ("train", "test"):
        examples += load_pairs(synthetic_world, split)[0]
    report = measure_cloth_fixes(examples, 64, 48)
    assert report["neck_label"]["with_label"] >= 2 and report["neck_label"]["without_label"] >= 2
    assert report["neck_label"]["detection_rate"] > 0.8
    assert report["neck_label"]["false_positive_rate"] < 0.2
    assert report["collar"]["iou_gain"] > 0
    assert report["collar"]["mean_iou_fixed"] > 0.97
