"""Warp benchmark: ms per pair (batch 1, after warm-up) of the shape-context TPS warp and its
parts, and warp-eval's quality numbers for every matcher; optionally the README figure.

    python benchmarks/warp.py --data WORLD [--pairs 48] [--figure /tmp/warp_figure.png]

Writes benchmarks/results/warp.json. Pin the cores to time "2 cores": `taskset -c 0,1`. The full
warp, the fit and the fixes are timed twice: under XLA (`jit_compile=True`) and, as `*_no_jit`, in
plain graph mode, the way stock TF Serving runs the exported try-on.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the jobs (training/) import by their folder names, as from a checkout
from viton_tf.data.codecs import to_uint8  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "warp.json"


def _time(function, args, repeats: int) -> dict:
    """Median and best of `repeats` calls, in ms; on a shared machine the best is the
    closer estimate of the unloaded cost."""
    function(*args)  # warm-up: trace and compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        outputs = function(*args)
        [o.numpy() for o in (outputs if isinstance(outputs, (tuple, list)) else [outputs])]
        times.append(1000.0 * (time.perf_counter() - start))
    return {"median": float(np.median(times)), "min": float(np.min(times))}


def timings(examples: list, height: int, width: int, repeats: int) -> dict:
    import tensorflow as tf

    from viton_tf.config import WarpConfig
    from viton_tf.warp import cloth_fixes, shape_context, tps

    example = examples[0]
    cloth, mask, target, occluders = (tf.constant(example[k][None])
                                      for k in ("cloth", "cloth_mask", "garment_mask", "occluder_mask"))
    spec3, spec1 = tf.TensorSpec([None, height, width, 3]), tf.TensorSpec([None, height, width, 1])
    config, plain = WarpConfig(), WarpConfig(collar_fix=False, neck_label_fix=False)
    source, dest = shape_context.fit_tps(mask, target, plain, "sinkhorn", occluders)
    jit = dict(jit_compile=True)
    warp = lambda warp_config, matcher: lambda c, m, t, o: shape_context.warp_cloth(c, m, t, warp_config, matcher, o)
    inputs, signature = (cloth, mask, target, occluders), [spec3, spec1, spec1, spec1]
    parts = {
        "warp_cloth_sinkhorn_with_fixes": (tf.function(warp(config, "sinkhorn"), input_signature=signature, **jit),
                                           inputs),
        "warp_cloth_sinkhorn_no_fixes": (tf.function(warp(plain, "sinkhorn"), input_signature=signature, **jit),
                                         inputs),
        "warp_cloth_hungarian_with_fixes": (tf.function(warp(config, "hungarian"), input_signature=signature),
                                            inputs),
        "fit_tps_sinkhorn": (tf.function(lambda m, t, o: shape_context.fit_tps(m, t, plain, "sinkhorn", o),
                                         input_signature=[spec1] * 3, **jit), (mask, target, occluders)),
        "sparse_image_warp": (tf.function(lambda c, s, d: tps.sparse_image_warp(
            c, s, d, flow_stride=config.flow_stride)[0], **jit), (tf.concat([cloth, mask], -1), source, dest)),
        "cloth_fixes": (tf.function(lambda c, m: cloth_fixes.fix_cloth(c, m),
                                    input_signature=[spec3, spec1], **jit), (cloth, mask)),
    }
    # Stock TF Serving runs no XLA (the export marks nothing must-compile): the same parts in graph mode.
    for name in ("warp_cloth_sinkhorn_with_fixes", "fit_tps_sinkhorn", "cloth_fixes"):
        function, args = parts[name]
        parts[f"{name}_no_jit"] = (tf.function(function.python_function, input_signature=function.input_signature),
                                   args)
    return {name: _time(function, args, repeats) for name, (function, args) in parts.items()}


def figure(data: str, out: str, count: int = 4) -> None:
    """Cloth, worn garment, then each matcher's warp (and the bounding-box floor), one pair a row."""
    import cv2

    from viton_tf.config import WarpConfig
    from training.warp_eval import _compiled_warp, _reference, bbox_affine_warp, load_pairs, opencv_warp

    examples, _, height, width = load_pairs(data, "test")
    config = WarpConfig()
    methods = {"sinkhorn": _compiled_warp(config, "sinkhorn", height, width),
               "hungarian": _compiled_warp(config, "hungarian", height, width),
               "opencv": _reference(lambda c, m, t: opencv_warp(c, m, t, config), config, height, width),
               "bbox affine": _reference(bbox_affine_warp, config, height, width)}
    step = max(1, len(examples) // count)
    rows = []
    for example in examples[::step][:count]:
        garment = example["garment_mask"]
        worn = to_uint8(example["person"] * garment + (1 - garment))
        tiles = [to_uint8(example["cloth"]), worn]
        for method in methods.values():
            warped, warped_mask = method(example["cloth"], example["cloth_mask"], garment, example["occluder_mask"])
            tile = to_uint8(warped * (warped_mask > 0.5) + (warped_mask <= 0.5))
            contours, _ = cv2.findContours((garment[..., 0] > 0.5).astype(np.uint8), cv2.RETR_EXTERNAL,
                                           cv2.CHAIN_APPROX_NONE)
            tile = np.ascontiguousarray(tile)
            cv2.drawContours(tile, contours, -1, (255, 0, 0), 1)  # the worn garment's outline
            tiles.append(tile)
        rows.append(np.hstack(tiles))
    header = np.full((18, rows[0].shape[1], 3), 255, np.uint8)
    for i, name in enumerate(["cloth", "worn garment", *methods]):
        cv2.putText(header, name, (i * width + 4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(out, cv2.cvtColor(np.vstack([header, *rows]), cv2.COLOR_RGB2BGR))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a synthetic world (viton-tf synth) or another dataset")
    parser.add_argument("--real", default=None, help="also warp-eval this dataset (e.g. the CP-VTON fixture)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--figure", default=None, help="also write the figure to this PNG")
    parser.add_argument("--skip-eval", action="store_true")
    args = parser.parse_args()

    from training.warp_eval import evaluate_warp, load_pairs

    examples, _, height, width = load_pairs(args.data, "test")
    report = {"data": args.data, "height": height, "width": width, "pairs": len(examples),
              "cpus_allowed": len(os.sched_getaffinity(0)), "cpu": platform.processor() or platform.machine(),
              "ms_batch1": timings(examples, height, width, args.repeats)}
    if not args.skip_eval:
        report["warp_eval"] = {m: evaluate_warp(args.data, "test", m, progress=False)
                               for m in ("sinkhorn", "hungarian", "opencv")}
        report["warp_eval"]["sinkhorn_no_collar_fix"] = evaluate_warp(args.data, "test", "sinkhorn", False,
                                                                      progress=False)
        for matcher in ("sinkhorn", "opencv"):  # the bare warp: arms and hair ignored
            report["warp_eval"][f"{matcher}_no_occluders"] = evaluate_warp(args.data, "test", matcher,
                                                                           progress=False, occluders=False)
        if args.real:
            report["warp_eval_real"] = {m: evaluate_warp(args.real, "test", m, progress=False)
                                        for m in ("sinkhorn", "hungarian", "opencv")}
            report["warp_eval_real"]["sinkhorn_no_occluders"] = evaluate_warp(args.real, "test", "sinkhorn",
                                                                              progress=False, occluders=False)
    elif RESULTS.is_file():  # keep the last full run's quality numbers
        previous = json.loads(RESULTS.read_text())
        report.update({k: v for k, v in previous.items() if k.startswith("warp_eval")})
    report["load_average"] = os.getloadavg()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["ms_batch1"], indent=2))
    if args.figure:
        figure(args.data, args.figure)


if __name__ == "__main__":
    main()
