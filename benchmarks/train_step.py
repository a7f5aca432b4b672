"""Training speed: ms per train step of VITON's stage 1 and stage 2 at batch 8, 256x192.

    .venv/bin/python benchmarks/train_step.py [--batch-size 8] [--height 256] [--width 192] [--steps 5]
        [--precision float32,mixed_float16] [--out FILE]

The real training models of `viton-tf train` (default network configs, PatchGAN off) on batches of a
small synthetic world, timing the compiled train step on a batch already in memory (the tf.data
pipeline is cached and prefetched in real runs). VGG19 is randomly initialised (`--vgg-weights none`):
the same FLOPs as the ImageNet weights. Stage 2 includes G_C's forward pass and the shape-context TPS
warp (sinkhorn matcher), which run inside its train step. Writes benchmarks/results/train_step.json.
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
RESULTS = REPO / "benchmarks" / "results" / "train_step.json"


def time_stage(stage: int, world: Path, run: Path, args, precision: str = "float32") -> dict:
    import keras
    import tensorflow as tf

    from training.fit import _optimizer
    from training.train import build_viton, make_job, pair_tables, training_dataset
    from viton_tf.config import TrainConfig

    config = TrainConfig(stage=stage, steps=args.steps, batch_size=args.batch_size, height=args.height,
                         width=args.width, vgg_weights="none", precision=precision)
    job = make_job(config, run)
    batch = next(iter(training_dataset(pair_tables(world, job)[0], job)))
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)  # as training/fit.py builds a model
    try:
        model = build_viton(job)
        model.compile(_optimizer(config))
        model.build_all(batch)
        model.build_optimizers([v for network in model.saved_networks().values()
                                for v in network.trainable_variables])
    finally:
        keras.mixed_precision.set_global_policy(policy)
    if stage == 1:
        model.generator.save_weights(run / "generator.weights.h5")  # stage 2 loads it from the run folder
    step = tf.function(model.train_step)
    start = time.perf_counter()
    float(step(batch)["loss"])  # trace + first step
    first = time.perf_counter() - start
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        float(step(batch)["loss"])  # reading the loss waits for the step to finish
        times.append(time.perf_counter() - start)
    times.sort()
    return {"ms_per_step_median": 1000 * times[len(times) // 2], "ms_per_step_min": 1000 * times[0],
            "first_step_s": first, "timed_steps": len(times),
            "trainable_parameters": int(sum(v.numpy().size for network in model.saved_networks().values()
                                            for v in network.trainable_variables))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=192)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per stage (after one warm-up step)")
    parser.add_argument("--precision", default="float32",
                        help="comma-separated Keras policies to time: float32, mixed_float16, mixed_bfloat16")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    import tensorflow as tf

    from viton_tf.config import SynthConfig
    from viton_tf.data.synthetic import write_world

    with tempfile.TemporaryDirectory() as folder:
        world, run = Path(folder) / "world", Path(folder) / "run"
        run.mkdir()
        write_world(world, SynthConfig(pairs=max(12, 2 * args.batch_size), height=args.height, width=args.width,
                                       test_fraction=0.1), progress=False)
        precisions = args.precision.split(",")
        stages = {}
        for precision in precisions:
            for stage in (1, 2):  # stage 2 reads the generator stage 1 saved, in the same precision
                name = f"stage{stage}" if precisions == ["float32"] else f"stage{stage}_{precision}"
                stages[name] = time_stage(stage, world, run, args, precision)

    gpus = tf.config.list_physical_devices("GPU")
    result = {
        "batch_size": args.batch_size, "height": args.height, "width": args.width, "vgg_weights": "none",
        "device": (tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU") if gpus
                   else f"CPU ({platform.processor() or platform.machine()}, {tf.config.threading.get_intra_op_parallelism_threads() or 'all'} threads)"),
        "tensorflow": tf.__version__, **stages,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for name, numbers in stages.items():
        print(f"{name}: {numbers['ms_per_step_median']:.0f} ms/step (median of {numbers['timed_steps']}), "
              f"batch {args.batch_size} at {args.height}x{args.width} on {result['device']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
