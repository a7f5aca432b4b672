"""Write tests/data/tps_goldens.npz: tensorflow-addons' own outputs for the functions that
viton_tf/warp/tps.py reimplements, so tests/test_tps.py can prove parity without tfa.

tfa cannot be imported next to TF >= 2.16 (Keras 3), so this runs in its own virtualenv:

    python3.11 -m venv /tmp/tfa_venv
    /tmp/tfa_venv/bin/pip install tensorflow-cpu==2.15.1 tensorflow-addons==0.23.0
    /tmp/tfa_venv/bin/python tools/make_tps_goldens.py            # from the repository root

(tensorflow==2.15.1 works as well where the -cpu wheel is unavailable.) It imports nothing from
viton_tf. Inputs are stored as float32; each case is run by tfa twice, on those values in float32
and in float64 (the latter is the exact math that the tests hold our float32 output to); all
outputs are stored as float32 to keep the file small.
Keys are "<case>__<name>"; every case also stores its parameters.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_addons as tfa

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "tps_goldens.npz"


def _points(rng, batch, n, height, width, margin=1.0):
    scale = np.array([height - 1 - 2 * margin, width - 1 - 2 * margin])
    return (margin + rng.uniform(0, 1, (batch, n, 2)) * scale).astype(np.float32)


def _smooth_dest(rng, source, amplitude):
    """A garment-like displacement: mild affine + a sine bend + small jitter."""
    y, x = source[..., 0], source[..., 1]
    dy = 0.04 * y + amplitude * np.sin(x / 7.0) + rng.normal(0, 0.3, y.shape)
    dx = -0.03 * x + amplitude * np.cos(y / 9.0) + rng.normal(0, 0.3, x.shape)
    return (source + np.stack([dy, dx], -1)).astype(np.float32)


def _both_dtypes(fn, *arrays):
    """fn's outputs on the float32 inputs, run in float32 and in float64."""
    out = {}
    for dtype, suffix in ((tf.float32, "f32"), (tf.float64, "f64")):
        result = fn(*[tf.constant(a, dtype) for a in arrays])
        result = result if isinstance(result, tuple) else (result,)
        out[suffix] = [r.numpy().astype(np.float32) for r in result]
    return out


def spline_cases(rng, goldens):
    train = _points(rng, 2, 12, 32, 24)
    values = rng.normal(0, 2, (2, 12, 3)).astype(np.float32)
    query = _points(rng, 2, 40, 40, 30, margin=-4.0)  # also outside the centers' hull
    for order, reg in ((1, 0.0), (2, 0.0), (3, 0.0), (4, 0.0), (2, 0.01), (3, 0.05)):
        case = f"spline_order{order}_reg{reg:g}"
        results = _both_dtypes(
            lambda t, v, q: tfa.image.interpolate_spline(t, v, q, order, reg),
            train, values, query)
        goldens.update({f"{case}__train_points": train, f"{case}__train_values": values,
                        f"{case}__query_points": query, f"{case}__order": np.int32(order),
                        f"{case}__regularization_weight": np.float32(reg),
                        f"{case}__values_f32": results["f32"][0],
                        f"{case}__values_f64": results["f64"][0]})


def dense_cases(rng, goldens):
    image = rng.uniform(-1, 1, (2, 32, 24, 3)).astype(np.float32)
    flow = rng.normal(0, 4, (2, 32, 24, 2)).astype(np.float32)  # pushes some queries outside
    results = _both_dtypes(tfa.image.dense_image_warp, image, flow)
    goldens.update({"dense__image": image, "dense__flow": flow,
                    "dense__warped_f32": results["f32"][0], "dense__warped_f64": results["f64"][0]})


def sparse_cases(rng, goldens):
    cases = [  # name, height, width, channels, points, boundary points, regularization, order
        ("sparse_32x24", 32, 24, 3, 8, 0, 0.0, 2),
        ("sparse_32x24_boundary2", 32, 24, 1, 8, 2, 0.0, 2),
        ("sparse_32x24_boundary1_reg", 32, 24, 1, 10, 1, 0.01, 2),
        ("sparse_32x24_order3", 32, 24, 1, 8, 0, 0.0, 3),
        ("sparse_64x48_boundary3", 64, 48, 3, 16, 3, 0.0, 2),
    ]
    for case, height, width, channels, n, boundary, reg, order in cases:
        image = rng.uniform(-1, 1, (2, height, width, channels)).astype(np.float32)
        source = _points(rng, 2, n, height, width, margin=2.0)
        dest = _smooth_dest(rng, source, amplitude=height / 16.0)
        results = _both_dtypes(
            lambda i, s, d: tfa.image.sparse_image_warp(
                i, s, d, interpolation_order=order, regularization_weight=reg,
                num_boundary_points=boundary),
            image, source, dest)
        goldens.update({f"{case}__image": image, f"{case}__source": source,
                        f"{case}__dest": dest, f"{case}__num_boundary_points": np.int32(boundary),
                        f"{case}__regularization_weight": np.float32(reg),
                        f"{case}__order": np.int32(order),
                        f"{case}__warped_f32": results["f32"][0],
                        f"{case}__flow_f32": results["f32"][1],
                        f"{case}__warped_f64": results["f64"][0],
                        f"{case}__flow_f64": results["f64"][1]})


def gradient_case(rng, goldens):
    """Gradients of a fixed weighted sum of the warped image, in float64."""
    image = rng.uniform(-1, 1, (2, 32, 24, 1)).astype(np.float32)
    source = _points(rng, 2, 6, 32, 24, margin=3.0)
    dest = _smooth_dest(rng, source, amplitude=1.5)
    weights = rng.normal(0, 1, image.shape).astype(np.float32)
    tensors = [tf.constant(a, tf.float64) for a in (image, source, dest)]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        warped, _ = tfa.image.sparse_image_warp(*tensors, num_boundary_points=1)
        loss = tf.reduce_sum(warped * tf.constant(weights, tf.float64))
    grads = tape.gradient(loss, tensors)
    goldens.update({"grad__image": image, "grad__source": source, "grad__dest": dest,
                    "grad__weights": weights, "grad__d_image": grads[0].numpy().astype(np.float32),
                    "grad__d_source": grads[1].numpy().astype(np.float32),
                    "grad__d_dest": grads[2].numpy().astype(np.float32)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    rng = np.random.default_rng(20180618)  # any fixed seed
    goldens = {"tf_version": np.array(tf.__version__), "tfa_version": np.array(tfa.__version__)}
    spline_cases(rng, goldens)
    dense_cases(rng, goldens)
    sparse_cases(rng, goldens)
    gradient_case(rng, goldens)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **goldens)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB, {len(goldens)} arrays, "
          f"tf {tf.__version__}, tfa {tfa.__version__})")


if __name__ == "__main__":
    main()
