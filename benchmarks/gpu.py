"""The GPU check (issue 14): training ms/step of both stages at 256x192 batch 16 in float32 and mixed
precision, and end-to-end inference ms/image of the exported model at batch 1 and 8, as JSON.

    benchmarks/gpu.sh            # on a machine with one GPU; under 5 minutes
    .venv/bin/python benchmarks/gpu.py [--out FILE] [--quick]

Training: benchmarks/train_step.py's timing (the real training models, VGG19 randomly initialised, a batch
in memory) for float32 and mixed_float16 (loss scaling). Inference: a fresh-weights run exported as stock TF
Serving loads it (float32, benchmarks/run_all.py's export and timing), encoded images in, PNG out.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
RESULTS = REPO / "benchmarks" / "results" / "gpu.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--quick", action="store_true", help="a smoke test: batch 2, 1 timed step, few runs")
    parser.add_argument("--precision", default="float32,mixed_float16")
    args = parser.parse_args()

    import tensorflow as tf

    import run_all
    import train_step
    from viton_tf.config import SynthConfig
    from viton_tf.data.synthetic import write_world

    started = time.perf_counter()
    gpus = tf.config.list_physical_devices("GPU")
    device = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU") if gpus else \
        f"CPU ({platform.processor() or platform.machine()}): NOT a GPU run"
    batch = 2 if args.quick else 16
    step_args = argparse.Namespace(batch_size=batch, height=256, width=192, steps=1 if args.quick else 20)
    result = {"device": device, "tensorflow": tf.__version__, "quick": args.quick, "batch_size": batch,
              "height": 256, "width": 192, "train_ms_per_step": {}}
    with tempfile.TemporaryDirectory() as folder:
        world, run = Path(folder) / "world", Path(folder) / "run"
        run.mkdir()
        write_world(world, SynthConfig(pairs=max(12, 2 * batch), height=256, width=192, test_fraction=0.1),
                    progress=False)
        for precision in args.precision.split(","):
            for stage in (1, 2):
                numbers = train_step.time_stage(stage, world, run, step_args, precision)
                result["train_ms_per_step"][f"stage{stage}_{precision}"] = numbers
                print(f"stage {stage} {precision}: {numbers['ms_per_step_median']:.1f} ms/step", flush=True)
        work = Path(folder) / "inference"
        world, _, versions = run_all.make_model(work, None, exports={"float32": {}})
        pairs = run_all.test_pairs(world, 8)
        runs, batch_runs = (3, 1) if args.quick else (50, 10)
        result["inference"] = run_all.end_to_end(versions["float32"], pairs, runs, batch_runs)
        result["inference"]["batch1_ms_per_image"] = result["inference"]["batch1"]["median_ms"]
        result["inference"]["batch8_ms_per_image"] = result["inference"]["batch8"]["per_image_ms"]
        print(f"inference: {result['inference']['batch1_ms_per_image']} ms/image at batch 1, "
              f"{result['inference']['batch8_ms_per_image']} at batch 8", flush=True)
    result["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out} ({result['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
