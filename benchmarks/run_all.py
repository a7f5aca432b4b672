"""The benchmark suite and the latency budget (issue 8), in one command.

    .venv/bin/python benchmarks/run_all.py [--quick] [--run RUN] [--skip served,train,memory]
        [--peer cpvton --peer-python PYTHON --peer-dir CP_VTON_CHECKOUT]

With --peer, CP-VTON's GMM + TOM are timed in the same run (benchmarks/peer_cpvton.py, by the peer's own
Python) and the ratios ours / peer are printed first.

Exports a run at 256x192 as stock TF Serving runs it (float32, no XLA), with `--xla`, with
`--precision bfloat16` (flagged where the CPU has no AMX/AVX512-BF16) and the real-photo `layout` method,
and measures: each SavedModel end to end (encoded images in -> PNG out; batch 1 median/p95, batch 8 per
image), each stage with its FLOPs, GFLOP/s and fraction of the float32 peak measured on this machine (a
large matmul on the same threads), the warp with and without XLA, bfloat16's quality cost against float32,
served latency and throughput through
`viton-tf serve` with and without batching (benchmarks/serving.py), the peak RSS of a process running
100 try-ons, and training ms/step (benchmarks/train_step.py). Without --run the networks are freshly
initialised: latency does not depend on the weights' values (every loop in the graph runs a fixed
number of iterations, except the cloth-mask flood fill, which depends on the cloth photo only).
Writes benchmarks/results/run_all.json and benchmarks/results/README_table.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from viton_tf.data.codecs import from_uint8, to_uint8  # noqa: E402
RESULTS = REPO / "benchmarks" / "results"
HEIGHT, WIDTH = 256, 192
BUDGET = {"end_to_end_fp32_batch1_ms": 200.0, "warp_ms": 30.0, "reduced_precision_batch1_ms": 120.0,
          "served_batching_speedup": 2.0, "peak_rss_mb": 1536.0}
# name -> viton_tf export options: the default is what stock TF Serving runs.
EXPORTS = {"float32": {}, "float32_xla": {"xla": True}, "bfloat16": {"precision": "bfloat16"},
           "layout": {"method": "layout"}}
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")

MEMORY_SCRIPT = """
import json, sys
import numpy as np
import tensorflow as tf
# VmHWM, not getrusage's ru_maxrss: that one keeps the forking parent's peak across exec.
peak = lambda: round(int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) / 1024, 1)
report = {"after_import_tensorflow_mb": peak()}
version, runs = sys.argv[1], int(sys.argv[3])
pairs = dict(np.load(sys.argv[2], allow_pickle=True))
serve = tf.saved_model.load(version).signatures["serving_default"]
report["after_load_mb"] = peak()
for i in range(runs):
    j = i % len(pairs["keypoints"])
    serve(**{k: tf.constant(pairs[k][j:j + 1]) for k in ("person_image", "cloth_image", "parse_image", "keypoints")})
    if i == 0:
        report["after_first_tryon_mb"] = peak()
report["peak_rss_mb"] = peak()
print(json.dumps(report))
"""


def measured_peak_gflops(size: int = 2048, runs: int = 10) -> float:
    """This machine's float32 GFLOP/s on the threads TF uses: the best of `runs` size^3 matmuls (2 size^3 FLOP)."""
    import tensorflow as tf

    a = tf.random.normal([size, size], seed=0)
    matmul = tf.function(lambda x: tf.reduce_sum(tf.matmul(x, x)))
    best = min(_time(matmul, (a,), runs, warmup=2))
    return round(2.0 * size ** 3 / best / 1e9, 1)


def environment() -> dict:
    import tensorflow as tf

    from viton_tf.hardware import cpu, fast_bfloat16

    machine = cpu()
    flags, model = set(machine["flags"]), machine["model"]
    return {
        "tensorflow": tf.__version__, "cpu": model, "cpus": os.cpu_count(), "cpu_flags_all": sorted(flags),
        "fast_bfloat16": fast_bfloat16(sorted(flags)),
        "cpus_allowed": len(os.sched_getaffinity(0)),
        "cpu_flags": {flag: flag in flags for flag in CPU_FLAGS},
        # 0 = TF's default: as many threads as allowed cores.
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "env": {name: os.environ.get(name) for name in ("TF_ENABLE_ONEDNN_OPTS", "OMP_NUM_THREADS",
                                                       "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
                                                       "ONEDNN_MAX_CPU_ISA", "TF_XLA_FLAGS")},
        # TF 2.21 on x86 Linux enables its oneDNN ops unless TF_ENABLE_ONEDNN_OPTS=0.
        "onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") not in ("0", "false", "False"),
        "peak_fp32_gflops_measured": measured_peak_gflops(),
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
    }


def _ms(seconds: list[float]) -> dict:
    values = np.array(seconds) * 1000.0
    return {"median_ms": round(float(np.median(values)), 1), "p95_ms": round(float(np.percentile(values, 95)), 1),
            "min_ms": round(float(values.min()), 1), "runs": len(values)}


def _time(function, args: tuple, runs: int, warmup: int = 2) -> list[float]:
    """Wall seconds per call (outputs fetched to numpy), after `warmup` untimed calls."""
    import tensorflow as tf

    fetch = lambda outputs: tf.nest.map_structure(lambda t: t.numpy(), outputs)
    for _ in range(warmup):
        fetch(function(*args))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fetch(function(*args))
        times.append(time.perf_counter() - start)
    return times


# --------------------------------------------------------------------------- the model

def make_model(work: Path, run: Path | None, exports: dict = EXPORTS,
               skip: set[str] = frozenset()) -> tuple[Path, Path, dict[str, Path]]:
    """(world, run, {name: exported version folder}) for each of `exports` not in `skip`; a fresh-weights run
    unless `run` is given."""
    from export.export import export
    from training.train import make_job, write_run_config
    from viton_tf.config import SynthConfig, TrainConfig
    from viton_tf.data.synthetic import write_world

    world = work / "world"
    if not world.is_dir():
        write_world(world, SynthConfig(pairs=32, height=HEIGHT, width=WIDTH, seed=0, test_fraction=0.25),
                    progress=False)
    if run is None and (work / "run" / "refinement.weights.h5").is_file():
        run = work / "run"
    elif run is None:
        import tensorflow as tf

        from viton_tf.models.generator import Generator
        from viton_tf.models.refinement import Refinement

        run = work / "run"
        job = make_job(TrainConfig(height=HEIGHT, width=WIDTH), run)
        write_run_config(job, run)
        image = tf.zeros([1, HEIGHT, WIDTH, 3])
        generator, refinement = Generator(job.generator, name="generator"), Refinement(job.refinement,
                                                                                      name="refinement")
        generator({"representation": tf.zeros([1, HEIGHT, WIDTH, job.representation.channels]), "cloth": image})
        refinement({"warped_cloth": image, "coarse_person": image, "garment_mask": image[..., :1]})
        generator.save_weights(run / "generator.weights.h5")
        refinement.save_weights(run / "refinement.weights.h5")
    from viton_tf.hardware import precision_warning

    versions = {}
    for name, options in exports.items():
        if name in skip:
            continue
        if "precision" in options and precision_warning(options["precision"]):
            print(f"bfloat16 export measured but flagged: {precision_warning(options['precision'])}", flush=True)
        base = work / "models" / name
        # A --work folder of an earlier run keeps its exports (the same run folder).
        versions[name] = base / "1" if (base / "1").is_dir() else export(
            None if options.get("method") == "layout" else run, base, 1, world, **options)
    return world, run, versions


def test_pairs(world: Path, count: int) -> dict[str, np.ndarray]:
    """Serving inputs of the first `count` test pairs (repeated when the split is smaller)."""
    from viton_tf.data.readers import read_keypoints_json, read_pairs

    pairs = read_pairs(world, "vitonhd", "test")
    pairs = [pairs[i % len(pairs)].files for i in range(count)]
    return {"person_image": np.array([f["person"].read_bytes() for f in pairs], dtype=object),
            "cloth_image": np.array([f["cloth"].read_bytes() for f in pairs], dtype=object),
            "parse_image": np.array([f["parsing"].read_bytes() for f in pairs], dtype=object),
            "keypoints": np.stack([read_keypoints_json(f["keypoints"]) for f in pairs])}


# --------------------------------------------------------------------------- measurements

def end_to_end(version: Path, pairs: dict, runs: int, batch_runs: int) -> dict:
    import tensorflow as tf

    serve = tf.saved_model.load(str(version)).signatures["serving_default"]
    one = {name: tf.constant(value[:1]) for name, value in pairs.items()}
    eight = {name: tf.constant(value[:8]) for name, value in pairs.items()}
    batch1 = _ms(_time(lambda: serve(**one), (), runs, warmup=3))
    batch8 = _ms(_time(lambda: serve(**eight), (), batch_runs, warmup=1))
    batch8["per_image_ms"] = round(batch8["median_ms"] / 8, 1)
    return {"batch1": batch1, "batch8": batch8}


def full_resolution_cost(version: Path, pairs: dict, runs: int) -> dict:
    """The layout method with the person photo at 1024x768 (the synthetic photo upscaled, keypoints scaled)
    against the same pair at 256x192: what composing the result into a VITON-HD-sized photo costs."""
    import cv2
    import tensorflow as tf

    serve = tf.saved_model.load(str(version)).signatures["serving_default"]
    small = {name: tf.constant(value[:1]) for name, value in pairs.items()}
    photo = cv2.imdecode(np.frombuffer(pairs["person_image"][0], np.uint8), cv2.IMREAD_COLOR)
    scale = np.array([768 / photo.shape[1], 1024 / photo.shape[0], 1.0], np.float32)
    large = dict(small, person_image=tf.constant([cv2.imencode(".jpg", cv2.resize(photo, (768, 1024)))[1].tobytes()]),
                 keypoints=tf.constant(pairs["keypoints"][:1] * scale))
    at_model_size = _ms(_time(lambda: serve(**small), (), runs))
    at_photo_size = _ms(_time(lambda: serve(**large), (), runs))
    return {"256x192_ms": at_model_size, "1024x768_ms": at_photo_size,
            "extra_ms": round(at_photo_size["median_ms"] - at_model_size["median_ms"], 1)}


def new_batch_sizes(version: Path, pairs: dict, sizes=(3, 5, 6, 7, 9, 16)) -> dict:
    """The first request at each batch size never seen (no warm-up record) against a warm request at the same
    size, and the process's RSS after each: a new size must not compile anything costly, or keep memory."""
    import tensorflow as tf

    rss = lambda: round(int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) / 1024, 1)
    serve = tf.saved_model.load(str(version)).signatures["serving_default"]
    batch = lambda n: {name: tf.constant(np.concatenate([value] * (n // len(value) + 1))[:n])
                       for name, value in pairs.items()}
    serve(**batch(1))
    report = {"rss_start_mb": rss(), "sizes": {}}
    for size in sizes:
        inputs = batch(size)
        first = _time(lambda: serve(**inputs), (), 1, warmup=0)[0]
        warm = min(_time(lambda: serve(**inputs), (), 2, warmup=0))
        report["sizes"][size] = {"first_ms": round(first * 1000, 1), "warm_ms": round(warm * 1000, 1),
                                 "first_over_warm": round(first / warm, 2), "rss_mb": rss()}
    return report


def _flops(function, specs) -> float:
    """FLOPs of one call (TF's graph profiler; a loop's body is counted once)."""
    import tensorflow as tf

    graph = tf.function(function).get_concrete_function(*specs).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return float(tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops)


def stages(run: Path, pairs: dict, runs: int, precision: str, peak: float, only: tuple[str, ...] | None = None) -> dict:
    """Batch-1 ms of each stage (or of those in `only`), run as its own tf.function on the previous
    stage's outputs."""
    import dataclasses

    import tensorflow as tf

    from viton_tf.data.cloth_mask import cloth_mask_from_photo
    from viton_tf.data.codecs import to_uint8
    from viton_tf.representation import label_mask, person_representation
    from viton_tf.run import tryon_module
    from viton_tf.tryon import refine, refinement_inputs
    from viton_tf.warp.cloth_fixes import fix_cloth
    from viton_tf.warp.shape_context import warp_cloth

    module = tryon_module(run, precision=precision)
    data = [tf.constant(pairs[name][:1]) for name in ("person_image", "cloth_image", "parse_image")]
    keypoints = tf.constant(pairs["keypoints"][:1])

    def decode(person_image, cloth_image, parse_image):
        person, cloth, parsing, _ = module.decode(person_image, cloth_image, parse_image)
        return person, cloth, cloth_mask_from_photo(cloth, module.data_config.cloth_foreground_threshold), parsing

    person, cloth, cloth_mask, parsing = decode(*data)
    representation = person_representation(person, parsing, keypoints, module.representation_config)
    generator = lambda r, c: module.generator({"representation": r, "cloth": c}, training=False)
    occluders = label_mask(parsing, module.data_config.occluder_labels)
    inputs = refinement_inputs(module.generator, representation, cloth, cloth_mask, occluders, module.warp)
    coarse_person, target, warped_cloth = (inputs[k] for k in ("coarse_person", "garment_mask", "warped_cloth"))
    plain = dataclasses.replace(module.warp_config, collar_fix=False, neck_label_fix=False)
    fixes = lambda c, m: fix_cloth(c, m, module.warp_config.neck_label_fix, module.warp_config.collar_fix)
    match_and_warp = lambda c, m, t, o: warp_cloth(c, m, t, plain, occluder_mask=o)
    refinement = lambda w, p, g: refine(module.refinement, {"warped_cloth": w, "coarse_person": p,
                                                            "garment_mask": g})
    tryon = refinement(warped_cloth, coarse_person, target)["tryon"]
    encode = lambda t: tf.map_fn(lambda image: tf.io.encode_png(image, compression=1), to_uint8(t),
                                 fn_output_signature=tf.string)  # as TryOnModule._serve
    spec = lambda t: tf.TensorSpec(t.shape, t.dtype)
    table = {  # name: (function, inputs, jit_compile)
        "decode_and_cloth_mask": (decode, data, False),
        "representation": (lambda p, s, k: person_representation(p, s, k, module.representation_config),
                           (person, parsing, keypoints), False),
        "generator": (generator, (representation, cloth), False),
        "warp": (lambda c, m, t, o: warp_cloth(c, m, t, module.warp_config, occluder_mask=o),
                 (cloth, cloth_mask, target, occluders), False),
        "warp_xla": (lambda c, m, t, o: warp_cloth(c, m, t, module.warp_config, occluder_mask=o),
                     (cloth, cloth_mask, target, occluders), True),
        "warp.cloth_fixes": (fixes, (cloth, cloth_mask), False),
        "warp.shape_context_and_tps": (match_and_warp, (cloth, cloth_mask, target, occluders), False),
        "refinement_and_composition": (refinement, (warped_cloth, coarse_person, target), False),
        "png_encode": (encode, (tryon,), False),
    }
    results = {}
    for name, (function, inputs, jit) in table.items():
        if only is not None and name not in only:
            continue
        compiled = tf.function(function, jit_compile=jit or None)
        numbers = _ms(_time(compiled, tuple(inputs), runs))
        numbers["xla"] = jit
        if name in ("generator", "refinement_and_composition"):
            flops = _flops(function, [spec(t) for t in inputs])
            numbers["gflops"] = round(flops / 1e9, 3)
            numbers["gflop_per_s"] = round(flops / 1e9 / (numbers["median_ms"] / 1000.0), 1)
            # Best run against the best matmul, the matmul timed right after: on cores shared with other
            # work, a peak measured minutes earlier is a different machine (measured 77 vs 309 GFLOP/s).
            numbers["peak_fp32_gflops_beside"] = max(peak, measured_peak_gflops())
            numbers["gflop_per_s_best_run"] = round(flops / 1e9 / (numbers["min_ms"] / 1000.0), 1)
            numbers["fraction_of_fp32_peak"] = round(numbers["gflop_per_s_best_run"]
                                                     / numbers["peak_fp32_gflops_beside"], 3)
        results[name] = numbers
    return results


def warp_equivalence(run: Path, pairs: dict) -> dict:
    """The XLA-compiled warp (as exported) against the same warp in graph mode, on every test pair."""
    import tensorflow as tf

    from viton_tf.data.cloth_mask import cloth_mask_from_photo
    from viton_tf.representation import garment_mask, label_mask
    from viton_tf.run import tryon_module
    from viton_tf.warp.cloth_fixes import fix_cloth
    from viton_tf.warp.shape_context import fit_tps, warp_cloth

    module = tryon_module(run, xla=True)
    person, cloth, parsing, _ = module.decode(*(tf.constant(pairs[k]) for k in ("person_image", "cloth_image",
                                                                                  "parse_image")))
    cloth_mask = cloth_mask_from_photo(cloth)
    target = garment_mask(parsing, module.data_config.garment_labels)
    occluders = label_mask(parsing, module.data_config.occluder_labels)
    graph = tf.function(lambda c, m, t, o: warp_cloth(c, m, t, module.warp_config, occluder_mask=o))
    compiled, plain = module.warp(cloth, cloth_mask, target, occluders), graph(cloth, cloth_mask, target, occluders)
    differences = [np.abs(a.numpy() - b.numpy()) for a, b in zip(compiled, plain)]
    fit = lambda m, t: fit_tps(fix_cloth(cloth, m)[1], t, module.warp_config, occluder_mask=occluders)[0]
    points = [f(cloth_mask, target).numpy() for f in (tf.function(fit, jit_compile=True), tf.function(fit))]
    return {"pairs": int(cloth.shape[0]),
            "control_points_max_abs_px": round(float(np.abs(points[0] - points[1]).max()), 5),
            "control_points_median_abs_px": round(float(np.median(np.abs(points[0] - points[1]))), 6),
            "warped_cloth_max_abs": round(float(differences[0].max()), 6),
            "warped_cloth_mean_abs": round(float(differences[0].mean()), 7),
            "warped_mask_max_abs": round(float(differences[1].max()), 6),
            "note": "XLA reorders float sums in the Sinkhorn matching and the TPS solve: the control points "
                    "move by the distance above, which flips single pixels on hard mask edges (the max); "
                    "the mean difference is what stays ~1e-4"}


def network_precision_quality(run: Path, pairs: dict) -> dict:
    """bfloat16 G_C and G_R against float32 on identical inputs (the float32 pipeline's own), so that
    thresholding G_C's mask at 0.5 does not turn rounding into a different warp downstream."""
    import tensorflow as tf

    from viton_tf.data.cloth_mask import cloth_mask_from_photo
    from viton_tf.metrics import ssim
    from viton_tf.representation import label_mask, person_representation
    from viton_tf.run import tryon_module
    from viton_tf.tryon import PRECISIONS, refine, refinement_inputs

    full, low = (tryon_module(run, precision=p) for p in PRECISIONS)
    person, cloth, parsing, _ = full.decode(*(tf.constant(pairs[k]) for k in ("person_image", "cloth_image",
                                                                                "parse_image")))
    representation = person_representation(person, parsing, tf.constant(pairs["keypoints"]),
                                            full.representation_config)
    coarse = [{k: tf.cast(v, tf.float32) for k, v in m.generator({"representation": representation, "cloth": cloth},
                                                                  training=False).items()} for m in (full, low)]
    occluders = label_mask(parsing, full.data_config.occluder_labels)
    inputs = refinement_inputs(full.generator, representation, cloth, cloth_mask_from_photo(cloth), occluders,
                               full.warp)
    tryon = [refine(m.refinement, inputs)["tryon"] for m in (full, low)]
    levels = [to_uint8(t.numpy()).astype(int) for t in tryon]
    scores = np.asarray(ssim(tryon[0], tryon[1]))
    return {"pairs": int(cloth.shape[0]),
            "generator_coarse_person_max_abs": round(float(np.abs(coarse[0]["coarse_person"]
                                                                  - coarse[1]["coarse_person"]).max()), 5),
            "generator_cloth_mask_max_abs": round(float(np.abs(coarse[0]["cloth_mask"]
                                                               - coarse[1]["cloth_mask"]).max()), 5),
            "generator_mask_pixels_flipped_at_0.5": round(float(np.mean(
                (coarse[0]["cloth_mask"].numpy() > 0.5) != (coarse[1]["cloth_mask"].numpy() > 0.5))), 5),
            "refinement_tryon_ssim_mean": round(float(scores.mean()), 5),
            "refinement_tryon_ssim_min": round(float(scores.min()), 5),
            "refinement_tryon_max_abs_png_levels": int(np.abs(levels[0] - levels[1]).max()),
            "refinement_tryon_mean_abs_png_levels": round(float(np.abs(levels[0] - levels[1]).mean()), 4)}


def reduced_precision_quality(versions: dict, pairs: dict) -> dict:
    """bfloat16 against float32 on the synthetic test pairs: SSIM and max |difference| of the try-on."""
    import tensorflow as tf

    from viton_tf.metrics import ssim

    outputs = {}
    for precision, version in versions.items():
        serve = tf.saved_model.load(str(version)).signatures["serving_default"]
        result = serve(**{name: tf.constant(value) for name, value in pairs.items()})
        outputs[precision] = {"png": np.stack([tf.io.decode_png(p).numpy() for p in result["tryon_png_bytes"].numpy()]),
                              **{k: result[k].numpy() for k in ("coarse_person", "garment_mask", "warped_cloth")}}
    full, low = outputs["float32"], outputs["bfloat16"]
    to_float = lambda png: tf.constant(from_uint8(png))
    return {
        "pairs": int(full["png"].shape[0]),
        "tryon_ssim_mean": round(float(tf.reduce_mean(ssim(to_float(full["png"]), to_float(low["png"])))), 4),
        "tryon_ssim_min": round(float(tf.reduce_min(ssim(to_float(full["png"]), to_float(low["png"])))), 4),
        "tryon_max_abs_png_levels": int(np.abs(full["png"].astype(int) - low["png"]).max()),
        "tryon_mean_abs_png_levels": round(float(np.abs(full["png"].astype(int) - low["png"]).mean()), 3),
        "coarse_person_max_abs": round(float(np.abs(full["coarse_person"] - low["coarse_person"]).max()), 4),
        "garment_mask_pixels_changed": round(float((full["garment_mask"] != low["garment_mask"]).mean()), 5),
        "warped_cloth_max_abs": round(float(np.abs(full["warped_cloth"] - low["warped_cloth"]).max()), 4),
    }


def peak_rss(version: Path, pairs: dict, runs: int, work: Path) -> dict:
    path = work / "pairs.npz"
    np.savez(path, **pairs)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ""}
    process = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(version), str(path), str(runs)],
                             capture_output=True, text=True, env=env, check=True)
    return {**json.loads(process.stdout.strip().splitlines()[-1]), "tryons": runs, "batch_size": 1,
            "process": "python, tensorflow only: load the SavedModel, run serving_default"}


def served(base: Path, requests: int, work: Path) -> dict:
    out = work / "serving.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "serving.py"), "--model-base", str(base),
                    "--clients", "8", "--requests", str(requests), "--out", str(out)], check=True, cwd=REPO)
    report = json.loads(out.read_text())
    (RESULTS / "serving.json").write_text(out.read_text())
    runs = report["runs"]
    return {**runs, "clients": report["clients"], "requests_per_client": report["requests_per_client"],
            "load_average_1m": report["load_average_1m"],
            "batching_speedup": round(runs["batching"]["throughput_rps"] / runs["no_batching"]["throughput_rps"], 2)}


def training(steps: int) -> dict:
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "train_step.py"), "--steps", str(steps)],
                   check=True, cwd=REPO)
    report = json.loads((RESULTS / "train_step.json").read_text())
    return {stage: {"ms_per_step": round(report[stage]["ms_per_step_median"], 1),
                    "timed_steps": report[stage]["timed_steps"], "batch_size": report["batch_size"]}
            for stage in ("stage1", "stage2")}


# --------------------------------------------------------------------------- report

def verdicts(result: dict) -> dict:
    """Each budget line: the measured value, the target, met or by how much it is missed."""
    lines = {
        "end_to_end_fp32_batch1_ms": result.get("end_to_end", {}).get("float32", {}).get("batch1", {}).get("median_ms"),
        "warp_ms": result.get("stages", {}).get("float32", {}).get("warp.shape_context_and_tps", {}).get("median_ms"),
        "reduced_precision_batch1_ms": result.get("end_to_end", {}).get("bfloat16", {}).get("batch1", {}).get(
            "median_ms"),
        "served_batching_speedup": result.get("served", {}).get("batching_speedup"),
        "peak_rss_mb": result.get("memory", {}).get("peak_rss_mb"),
    }
    out = {}
    for name, value in lines.items():
        target = BUDGET[name]
        if value is None:
            out[name] = {"target": target, "measured": None, "met": None}
            continue
        higher_is_better = name == "served_batching_speedup"
        met = value >= target if higher_is_better else value <= target
        out[name] = {"target": target, "measured": value, "met": met,
                     "miss_factor": None if met else round(target / value if higher_is_better else value / target, 2)}
    return out


# --------------------------------------------------------------------------- the peer

PEERS = {"cpvton": REPO / "benchmarks" / "peer_cpvton.py"}


def check_peer(name: str, python: str | None, directory: Path | None) -> None:
    """Stop before any export when the peer cannot run: no Python given, no networks.py, no PyTorch there."""
    if python is None or directory is None:
        raise SystemExit(f"--peer {name}: needs --peer-python (a Python with PyTorch and torchvision) and "
                         f"--peer-dir (a folder with sergeywong/cp-vton's networks.py)")
    if not (Path(directory) / "networks.py").is_file():
        raise SystemExit(f"--peer-dir {directory}: no networks.py there (copy it from sergeywong/cp-vton)")
    try:
        process = subprocess.run([python, "-c", "import torch, torchvision"], capture_output=True, text=True,
                                 env=_peer_env())
    except OSError as error:
        raise SystemExit(f"--peer-python {python}: cannot run it ({error})") from None
    if process.returncode != 0:
        raise SystemExit(f"--peer-python {python}: PyTorch and torchvision are not importable there:\n"
                         + "\n".join(process.stderr.strip().splitlines()[-3:]))


def _peer_env() -> dict:
    return {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}


def peer(name: str, python: str, directory: Path, threads: int, runs: int) -> dict:
    """The peer's networks timed by its own Python on the same threads (benchmarks/peer_cpvton.py)."""
    env = _peer_env()
    try:
        process = subprocess.run([python, str(PEERS[name]), "--peer-dir", str(directory), "--threads", str(threads),
                                  "--runs", str(runs)], capture_output=True, text=True, env=env, cwd=REPO)
    except OSError as error:
        raise SystemExit(f"--peer-python {python}: cannot run it ({error})") from None
    if process.returncode != 0:
        tail = "\n".join(process.stderr.strip().splitlines()[-5:])
        raise SystemExit(f"--peer {name}: {python} {PEERS[name].name} failed (exit {process.returncode}); "
                         f"PyTorch and torchvision must be importable there:\n{tail}")
    return json.loads(process.stdout.strip().splitlines()[-1])


def pooled(reports: list[dict], key: str) -> dict:
    """The peer's runs of all its sessions in this benchmark (before and after ours) as one sample."""
    times = [t for report in reports for t in report[key]["times_ms"]]
    return _ms([t / 1000.0 for t in times])


def ratios(result: dict, statistic: str = "median_ms") -> dict:
    """Ours / the peer's batch-1 `statistic`, per export: < 1 is faster than the peer. The min is the one to
    trust on shared cores: PyTorch's OpenMP threads wait at every barrier for a thread the neighbour's load
    descheduled (measured 10x slower then), TF's thread pool far less."""
    reference = result["peer"]["gmm_plus_tom"][statistic]
    return {name: round(numbers["batch1"][statistic] / reference, 3)
            for name, numbers in result["end_to_end"].items()}


def table(result: dict) -> str:
    env = result["environment"]
    e2e, st = result.get("end_to_end", {}), result.get("stages", {})
    exports = [name for name in EXPORTS if name in e2e]
    rows = ["| end to end (encoded images in, PNG out) | " + " | ".join(exports) + " |",
            "|---|" + "---|" * len(exports)]
    if "ratios_to_peer" in result:
        peer = result["peer"]
        rows.append(f"| **ours / {peer['name']}, batch 1: fastest runs (medians)** | " + " | ".join(
            f"**{result['ratios_to_peer_min'][n]}x** ({result['ratios_to_peer'][n]}x)" for n in exports) + " |")
        rows.append(f"| {peer['name']} GMM + TOM (torch {peer['torch']}, {peer['threads']} threads, tensors in and "
                    f"out): min / median / p95 ms | " + " | ".join(
                        f"{peer['gmm_plus_tom']['min_ms']} / {peer['gmm_plus_tom']['median_ms']} / "
                        f"{peer['gmm_plus_tom']['p95_ms']}" for _ in exports) + " |")
    rows.append("| batch 1: min / median / p95 ms | " + " | ".join(
        f"{e2e[n]['batch1']['min_ms']} / {e2e[n]['batch1']['median_ms']} / {e2e[n]['batch1']['p95_ms']}"
        for n in exports) + " |")
    rows.append("| batch 8: ms per image | " + " | ".join(f"{e2e[n]['batch8']['per_image_ms']}" for n in exports)
                + " |")
    rows += ["", f"Stages (measured float32 peak: {env['peak_fp32_gflops_measured']} GFLOP/s):", "",
             "| measurement | float32 | bfloat16 |", "|---|---|---|"]
    names = {"decode_and_cloth_mask": "decode + resize + cloth mask", "representation": "representation",
             "generator": "G_C", "warp": "warp (cloth fixes + shape context + TPS), no XLA (the default export)",
             "warp_xla": "warp, XLA-compiled (`--xla`)",
             "warp.cloth_fixes": "&nbsp;&nbsp;cloth fixes (collar, neck label)",
             "warp.shape_context_and_tps": "&nbsp;&nbsp;shape context + TPS",
             "refinement_and_composition": "G_R + composition", "png_encode": "PNG encode"}
    for name, label in names.items():
        cells = []
        for precision in ("float32", "bfloat16"):
            stage = st.get(precision, {}).get(name)
            if stage is None:
                cells.append("-")
                continue
            cell = f"{stage['median_ms']}"
            if "gflops" in stage:
                cell += (f" ({stage['gflops']} GFLOP; best run {stage.get('min_ms')} ms, "
                         f"{stage.get('gflop_per_s_best_run', stage['gflop_per_s'])} GFLOP/s = "
                         f"{stage['fraction_of_fp32_peak']:.0%} of the peak beside it, "
                         f"{stage.get('peak_fp32_gflops_beside', env['peak_fp32_gflops_measured'])})")
            cells.append(cell)
        rows.append(f"| stage: {label}, ms | {cells[0]} | {cells[1]} |")
    quality = result.get("reduced_precision_quality")
    if quality:
        same, e2e = quality["networks_same_inputs"], quality["end_to_end"]
        rows.append(f"| bf16 vs fp32, G_C + G_R on the same inputs: try-on SSIM mean (min) / max abs diff | 1 / 0 | "
                    f"{same['refinement_tryon_ssim_mean']} ({same['refinement_tryon_ssim_min']}) / "
                    f"{same['refinement_tryon_max_abs_png_levels']} PNG levels; coarse person max abs "
                    f"{same['generator_coarse_person_max_abs']}; G_C mask pixels flipped at 0.5: "
                    f"{same['generator_mask_pixels_flipped_at_0.5']} |")
        rows.append(f"| bf16 vs fp32, end to end (PNG): SSIM mean (min) / max abs diff | 1 / 0 | "
                    f"{e2e['tryon_ssim_mean']} ({e2e['tryon_ssim_min']}) / {e2e['tryon_max_abs_png_levels']} "
                    f"PNG levels (garment mask pixels changed: {e2e['garment_mask_pixels_changed']}) |")
    if "layout_full_resolution" in result:
        full = result["layout_full_resolution"]
        rows.append(f"| layout, batch 1, person photo 256x192 / 1024x768: median ms | "
                    f"{full['256x192_ms']['median_ms']} / {full['1024x768_ms']['median_ms']} "
                    f"(+{full['extra_ms']} for the full-resolution composition) | - |")
    for name, report in result.get("new_batch_sizes", {}).items():
        worst = max(report["sizes"].values(), key=lambda v: v["first_over_warm"])
        last = list(report["sizes"].values())[-1]["rss_mb"]
        rows.append(f"| {name}: first request at a new batch size / warm, worst of {list(report['sizes'])} | "
                    f"{worst['first_over_warm']}x | RSS {report['rss_start_mb']} -> {last} MB |")
    if "memory" in result:
        memory = result["memory"]
        rows.append(f"| peak RSS, load + {memory['tryons']} try-ons | {memory['peak_rss_mb']} MB | - |")
    if "served" in result:
        sv = result["served"]
        for label in ("no_batching", "batching"):
            rows.append(f"| served, 8 clients, {label.replace('_', ' ')}: p50 / p95 ms, req/s | "
                        f"{sv[label]['p50_ms']} / {sv[label]['p95_ms']}, {sv[label]['throughput_rps']} | - |")
    if "train" in result:
        for stage, numbers in result["train"].items():
            rows.append(f"| training {stage}, batch 8: ms/step | {numbers['ms_per_step']} | - |")
    budget = ["", "| budget | target | measured | |", "|---|---|---|---|"]
    for name, verdict in result["budget"].items():
        state = "-" if verdict["met"] is None else ("met" if verdict["met"] else f"missed ({verdict['miss_factor']}x)")
        budget.append(f"| {name} | {verdict['target']} | {verdict['measured']} | {state} |")
    flags = ", ".join(flag for flag, present in env["cpu_flags"].items() if present)
    header = (f"{env['cpu']}, {env['cpus_allowed']} cores ({flags}), "
              f"TF {env['tensorflow']}, oneDNN {'on' if env['onednn_opts'] else 'off'}, "
              f"load average {env['load_average_at_start'][0]} at start / {env['load_average_at_end'][0]} at end; "
              f"256x192, {'freshly initialised' if result['weights'] == 'fresh' else 'trained'} weights.")
    return header + "\n\n" + "\n".join(rows + budget) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs and steps (a smoke test, not for the README)")
    parser.add_argument("--run", type=Path, default=None, help="a trained run folder (default: fresh weights)")
    parser.add_argument("--skip", default="", help="comma-separated: served, train, memory, stages, layout, "
                        "batch_sizes, equivalence, quality")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--peer", choices=sorted(PEERS), default=None,
                        help="also time this peer's networks in the same run and print ours / peer first")
    parser.add_argument("--peer-python", default=None, help="the peer's Python (with PyTorch)")
    parser.add_argument("--peer-dir", type=Path, default=None, help="the peer's checkout (its networks.py)")
    args = parser.parse_args(argv)
    skip = {s for s in args.skip.split(",") if s}
    if args.peer:
        check_peer(args.peer, args.peer_python, args.peer_dir)
    runs, batch_runs = (10, 2) if args.quick else (30, 5)

    import tensorflow as tf

    work = Path(args.work or tempfile.mkdtemp(prefix="viton-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"command": "python benchmarks/run_all.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "quick": args.quick, "height": HEIGHT, "width": WIDTH, "environment": environment(),
              "weights": "fresh" if args.run is None else str(args.run)}
    started = time.perf_counter()
    world, run, versions = make_model(work, args.run, skip=skip)
    pairs = test_pairs(world, 8)
    print(f"model: {run} -> {versions}", flush=True)
    threads = tf.config.threading.get_intra_op_parallelism_threads() or len(os.sched_getaffinity(0))
    # The peer before and after ours, pooled: a neighbour's load that comes and goes is shared by both.
    peers = [peer(args.peer, args.peer_python, args.peer_dir, threads, runs)] if args.peer else []
    result["end_to_end"] = {p: end_to_end(v, pairs, runs, batch_runs) for p, v in versions.items()}
    if args.peer:
        peers.append(peer(args.peer, args.peer_python, args.peer_dir, threads, runs))
        result["peer"] = {**{k: v for k, v in peers[0].items() if k not in ("gmm", "tom", "gmm_plus_tom")},
                          "name": args.peer, "sessions": len(peers),
                          **{key: pooled(peers, key) for key in ("gmm", "tom", "gmm_plus_tom")}}
        result["ratios_to_peer"] = ratios(result)
        result["ratios_to_peer_min"] = ratios(result, "min_ms")
        for key, label in (("ratios_to_peer_min", "fastest runs"), ("ratios_to_peer", "medians")):
            print(f"ours / {args.peer} (batch 1 {label}, same run, {threads} threads): "
                  + ", ".join(f"{name} {ratio}x" for name, ratio in result[key].items()), flush=True)
    print(json.dumps(result["end_to_end"]), flush=True)
    if "layout" not in skip:
        result["layout_full_resolution"] = full_resolution_cost(versions["layout"], pairs, runs)
    if "batch_sizes" not in skip:
        result["new_batch_sizes"] = {name: new_batch_sizes(versions[name], pairs)
                                     for name in ("float32", "float32_xla")}
        print(json.dumps(result["new_batch_sizes"]), flush=True)
    if "equivalence" not in skip:
        result["equivalence"] = {"warp_xla_vs_graph": warp_equivalence(run, pairs)}
    if "quality" not in skip:
        result["reduced_precision_quality"] = {"end_to_end": reduced_precision_quality(
                                                   {p: versions[p] for p in ("float32", "bfloat16")}, pairs),
                                               "networks_same_inputs": network_precision_quality(run, pairs)}
    if "stages" not in skip:
        # Only the networks depend on the precision.
        peak = result["environment"]["peak_fp32_gflops_measured"]
        result["stages"] = {"float32": stages(run, pairs, runs, "float32", peak),
                            "bfloat16": stages(run, pairs, runs, "bfloat16", peak,
                                               only=("generator", "refinement_and_composition"))}
        print(json.dumps(result["stages"]), flush=True)
        for precision, numbers in result["stages"].items():
            print(f"generators, {precision}: " + ", ".join(
                f"{label} {numbers[name]['gflop_per_s_best_run']} GFLOP/s = {numbers[name]['fraction_of_fp32_peak']:.0%} "
                f"of the float32 peak measured beside it ({numbers[name]['peak_fp32_gflops_beside']} GFLOP/s)"
                for name, label in (("generator", "G_C"), ("refinement_and_composition", "G_R"))), flush=True)
    if "memory" not in skip:
        result["memory"] = peak_rss(versions["float32"], pairs, 20 if args.quick else 100, work)
    if "served" not in skip:
        result["served"] = served(versions["float32"].parent, 3 if args.quick else 8, work)
    if "train" not in skip:
        result["train"] = training(1 if args.quick else 3)
    result["environment"]["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    result["environment"]["intra_op_threads_effective"] = tf.config.threading.get_intra_op_parallelism_threads() \
        or os.cpu_count()
    result["budget"] = verdicts(result)
    result["seconds"] = round(time.perf_counter() - started, 1)
    (RESULTS / "run_all.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "README_table.md").write_text(table(result))
    print(table(result))
    print(f"wrote {RESULTS / 'run_all.json'} and {RESULTS / 'README_table.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
