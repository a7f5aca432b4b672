"""bfloat16 against float32 on the same trained weights, end to end (issue 17): a trained run exported both ways,
then every test pair of its world through both SavedModels (encoded images in, PNG out).

    .venv/bin/python benchmarks/precision_quality.py --run RUN --data WORLD [--work DIR] [--runs 20]

Prints and writes benchmarks/results/precision_quality.json: the try-on's SSIM (mean, min) and PNG difference,
the coarse person's, G_C's mask pixels that flip, and each export's batch-1 latency at the run's size, measured
interleaved in this process, with the CPU's flags (bfloat16 is fast only with AMX-BF16 or AVX512-BF16).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.run_all import RESULTS, _ms, _time, environment, reduced_precision_quality  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a trained run folder (both stages)")
    parser.add_argument("--data", type=Path, required=True, help="its synthetic world (the test split is used)")
    parser.add_argument("--work", type=Path, default=None, help="where the exports go (default: a temporary folder)")
    parser.add_argument("--runs", type=int, default=20, help="timed batch-1 requests per export")
    args = parser.parse_args()

    import tensorflow as tf

    from export.export import export
    from viton_tf.data.readers import read_keypoints_json, read_pairs
    from viton_tf.hardware import precision_warning

    work = args.work or Path(tempfile.mkdtemp(prefix="viton-precision-"))
    versions = {precision: export(args.run, work / precision, 1, args.data, precision=precision)
                for precision in ("float32", "bfloat16")}
    files = [pair.files for pair in read_pairs(args.data, "vitonhd", "test")]
    pairs = {"person_image": np.array([f["person"].read_bytes() for f in files], dtype=object),
             "cloth_image": np.array([f["cloth"].read_bytes() for f in files], dtype=object),
             "parse_image": np.array([f["parsing"].read_bytes() for f in files], dtype=object),
             "keypoints": np.stack([read_keypoints_json(f["keypoints"]) for f in files])}
    quality = reduced_precision_quality(versions, pairs)
    serves = {precision: tf.saved_model.load(str(version)).signatures["serving_default"]
              for precision, version in versions.items()}
    one = {name: tf.constant(value[:1]) for name, value in pairs.items()}
    timings = {precision: [] for precision in serves}
    for _ in range(2):  # interleaved, so that a change of load falls on both
        for precision, serve in serves.items():
            timings[precision].append(_ms(_time(lambda serve=serve: serve(**one), (), args.runs // 2, warmup=2)))
    latency = {precision: {"median_ms": round(float(np.mean([t["median_ms"] for t in runs])), 1),
                           "min_ms": round(float(min(t["min_ms"] for t in runs)), 1)}
               for precision, runs in timings.items()}
    report = {"run": str(args.run), "data": str(args.data), "environment": environment(),
              "bfloat16_warning": precision_warning("bfloat16"), "quality": quality, "batch1": latency,
              "bfloat16_over_float32_median": round(latency["bfloat16"]["median_ms"]
                                                    / latency["float32"]["median_ms"], 3)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "precision_quality.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
