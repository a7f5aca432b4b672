"""The training input pipeline alone: examples/s at 256x192 and 512x384, and peak RSS against dataset size.

    .venv/bin/python benchmarks/input_pipeline.py --work DIR [--pairs 5000] [--rss-pairs 500,5000] [--seconds 30]

Throughput: `training.train.training_dataset` (what `viton-tf train` feeds `model.fit`: read, decode, resize,
cloth mask, representation, batches of 16) on a synthetic world of --pairs pairs at 256x192 and a tenth of
that at 512x384 (`viton-tf synth`, written into --work once), timed after a warm-up; the CPU time the process
spent over the wall time is the number of cores it kept busy, so examples/s per busy core is what one core
gives. Memory: `viton-tf train` with the defaults (--cache none) for a pass over the smallest world of
--rss-pairs, each world its own process, reporting its peak RSS; the same for --cache memory on the smallest
world for contrast. Writes benchmarks/results/input_pipeline.json.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results" / "input_pipeline.json"
BATCH = 16
SIZES = ((256, 192), (512, 384))
# A training process that prints its peak RSS when `viton-tf train` ends.
# VmHWM, not getrusage's ru_maxrss: Linux carries a forked process's high-water mark (the parent's) across exec.
PEAK_RSS_JOB = ("import re, sys\n"
                "from viton_tf.cli import main\n"
                "code = main(sys.argv[1:])\n"
                "peak = re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1)\n"
                "print('PEAK_RSS_KB', peak, flush=True)\n"
                "sys.exit(code)\n")


def world(work: Path, pairs: int, height: int, width: int) -> Path:
    """A synthetic world of `pairs` pairs (2% test), written once."""
    folder = work / f"world-{height}x{width}-{pairs}"
    if not (folder / "train_pairs.txt").is_file():
        subprocess.run([sys.executable, "-m", "viton_tf.cli", "synth", "--out", str(folder), "--pairs", str(pairs),
                        "--height", str(height), "--width", str(width), "--test-fraction", "0.02", "--quiet"],
                       cwd=REPO, check=True)
    return folder


def subset(source: Path, pairs: int, work: Path) -> Path:
    """The first `pairs` training pairs of a world, as a world of their own (its files linked)."""
    folder = work / f"{source.name}-first-{pairs}"
    folder.mkdir(exist_ok=True)
    for name in ("train", "test", "meta.json", "test_pairs.txt"):
        if not (folder / name).exists():
            (folder / name).symlink_to(source / name)
    lines = (source / "train_pairs.txt").read_text().splitlines()[:pairs]
    (folder / "train_pairs.txt").write_text("".join(f"{line}\n" for line in lines))
    return folder


def throughput(folder: Path, height: int, width: int, seconds: float) -> dict:
    from training.train import make_job, pair_tables, training_dataset
    from viton_tf.config import TrainConfig

    job = make_job(TrainConfig(height=height, width=width, batch_size=BATCH), folder)
    start = time.perf_counter()
    table, _ = pair_tables(folder, job)
    checked = time.perf_counter() - start
    batches = iter(training_dataset(table, job))
    for _ in range(5):  # warm-up: tracing, AUTOTUNE's first choices
        next(batches)
    cpu, wall, count = os.times(), time.perf_counter(), 0
    while time.perf_counter() - wall < seconds:
        float(next(batches)["representation"][0, 0, 0, 0])
        count += 1
    wall = time.perf_counter() - wall
    after = os.times()
    busy = (after.user - cpu.user + after.system - cpu.system) / wall
    examples = count * BATCH / wall
    return {"pairs": len(table), "examples_per_s": round(examples, 1), "batches_timed": count,
            "seconds": round(wall, 1), "cores_busy": round(busy, 2), "examples_per_s_per_busy_core": round(examples / busy, 1),
            "up_front_check_s": round(checked, 2), "up_front_check_ms_per_pair": round(1000 * checked / len(table), 3)}


def peak_rss(folder: Path, pairs: int, steps: int, cache: str, work: Path) -> dict:
    run = work / f"rss-run-{folder.name}-{cache}"
    subprocess.run(["rm", "-rf", str(run)], check=True)
    argv = [sys.executable, "-c", PEAK_RSS_JOB, "train", "--data", str(folder), "--out", str(run), "--stage", "1",
            "--steps", str(steps), "--batch-size", str(BATCH), "--vgg-weights", "none", "--cache", cache,
            "--set", "generator.base_filters=8", "--set", "loss.stage1_perceptual=0", "--image-every", "100000",
            "--checkpoint-every", "100000"]
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if result.returncode:
        raise SystemExit(result.stderr[-3000:])
    kilobytes = int(next(line.split()[1] for line in result.stdout.splitlines() if line.startswith("PEAK_RSS_KB")))
    return {"pairs": pairs, "cache": cache, "steps": steps, "examples_read": steps * BATCH,
            "peak_rss_mb": round(kilobytes / 1024, 1), "seconds": round(time.perf_counter() - start, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="where the synthetic worlds are written (kept)")
    parser.add_argument("--pairs", type=int, default=5000, help="pairs of the 256x192 world (a tenth at 512x384)")
    parser.add_argument("--rss-pairs", default="500,5000", help="dataset sizes of the memory measurement")
    parser.add_argument("--seconds", type=float, default=30.0, help="timed seconds per size")
    parser.add_argument("--rss-only", action="store_true", help="keep the results file's throughput, rerun the memory")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    import tensorflow as tf

    result = {"command": "python benchmarks/input_pipeline.py " + " ".join(sys.argv[1:]), "batch_size": BATCH,
              "cpu": _cpu_model(), "cores_available": len(os.sched_getaffinity(0)),
              "load_average_at_start": [round(v, 2) for v in os.getloadavg()], "tensorflow": tf.__version__,
              "throughput": {}}
    big = world(args.work, args.pairs, *SIZES[0])
    if args.rss_only:
        previous = json.loads(RESULTS.read_text())
        result["throughput"] = previous["throughput"]
        result["throughput_command"] = previous.get("throughput_command", previous["command"])
    for height, width in () if args.rss_only else SIZES:
        folder = big if (height, width) == SIZES[0] else world(args.work, max(BATCH * 4, args.pairs // 10), height, width)
        result["throughput"][f"{height}x{width}"] = numbers = throughput(folder, height, width, args.seconds)
        print(f"{height}x{width}: {numbers}", flush=True)
    sizes = sorted(int(n) for n in args.rss_pairs.split(","))
    steps = math.ceil(sizes[0] / BATCH)  # one pass over the smallest world
    worlds = {n: big if n == args.pairs else subset(big, n, args.work) for n in sizes}
    result["peak_rss"] = [peak_rss(worlds[n], n, steps, "none", args.work) for n in sizes]
    result["peak_rss"].append(peak_rss(worlds[sizes[0]], sizes[0], steps, "memory", args.work))
    for row in result["peak_rss"]:
        print(f"peak RSS: {row}", flush=True)
    none = [row["peak_rss_mb"] for row in result["peak_rss"] if row["cache"] == "none"]
    result["peak_rss_spread"] = round(max(none) / min(none) - 1.0, 3)
    result["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    result["platform"] = platform.platform()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


def _cpu_model() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


if __name__ == "__main__":
    sys.exit(main())
