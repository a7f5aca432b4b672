"""viton_tf.warp.tps against tensorflow-addons' own outputs (tests/data/tps_goldens.npz, written by
tools/make_tps_goldens.py in a TF 2.15 + tfa 0.23 virtualenv) and against known warps."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from viton_tf.warp import tps

GOLDENS = Path(__file__).parent / "data" / "tps_goldens.npz"


@pytest.fixture(scope="module")
def goldens() -> dict:
    if not GOLDENS.is_file():
        pytest.skip(f"{GOLDENS} missing: run tools/make_tps_goldens.py in a tensorflow 2.15.1 + "
                    "tensorflow-addons 0.23.0 virtualenv (see its docstring)")
    return dict(np.load(GOLDENS))


def _case(goldens, case):
    prefix = case + "__"
    return {k[len(prefix):]: v for k, v in goldens.items() if k.startswith(prefix)}


def _run(case_name, g, dtype):
    """Our outputs for a golden case, as {name: array} with the goldens' names."""
    cast = {k: v.astype(dtype) for k, v in g.items() if v.dtype == np.float32 and v.ndim > 0}
    if case_name.startswith("spline"):
        values = tps.interpolate_spline(cast["train_points"], cast["train_values"],
                                        cast["query_points"], int(g["order"]),
                                        float(g["regularization_weight"]))
        return {"values": values.numpy()}
    if case_name == "dense":
        return {"warped": tps.dense_image_warp(cast["image"], cast["flow"]).numpy()}
    warped, flow = tps.sparse_image_warp(
        cast["image"], cast["source"], cast["dest"], interpolation_order=int(g["order"]),
        regularization_weight=float(g["regularization_weight"]),
        num_boundary_points=int(g["num_boundary_points"]))
    return {"warped": warped.numpy(), "flow": flow.numpy()}


CASES = ["spline_order1_reg0", "spline_order2_reg0", "spline_order3_reg0", "spline_order4_reg0",
         "spline_order2_reg0.01", "spline_order3_reg0.05", "dense", "sparse_32x24",
         "sparse_32x24_boundary2", "sparse_32x24_boundary1_reg", "sparse_32x24_order3",
         "sparse_64x48_boundary3"]


@pytest.mark.parametrize("case_name", CASES)
def test_matches_tfa(goldens, case_name):
    g = _case(goldens, case_name)
    assert g, f"case {case_name} not in {GOLDENS}"
    # Values scale with the flow, so errors are measured relative to it (at least 1).
    scale = max([1.0] + [float(np.abs(g[k]).max()) for k in ("values_f64", "flow_f64") if k in g])
    ours64, ours32 = _run(case_name, g, np.float64), _run(case_name, g, np.float32)
    # Order 4 is poorly conditioned in float32 (tfa's own float32 is off by 5e-4 of its scale).
    tol32 = 1e-3 if "order4" in case_name else 1e-4
    for name in ours64:
        reference = g[name + "_f64"]
        assert ours64[name].shape == reference.shape
        np.testing.assert_allclose(ours64[name], reference, rtol=0, atol=1e-6 * scale)
        np.testing.assert_allclose(ours32[name], reference, rtol=0, atol=tol32 * scale)


def test_float32_more_accurate_than_tfa(goldens):
    """Normalized coordinates and a float64 solve: tfa's float32 flow at 64x48 is ~8x further
    from the exact (float64) one than ours."""
    g = _case(goldens, "sparse_64x48_boundary3")
    ours = _run("sparse_64x48_boundary3", g, np.float32)["flow"]
    ours_error = np.abs(ours - g["flow_f64"]).max()
    tfa_error = np.abs(g["flow_f32"] - g["flow_f64"]).max()
    assert ours_error < 5e-4
    assert ours_error < tfa_error / 3


def test_gradients_match_tfa(goldens):
    g = _case(goldens, "grad")
    tensors = [tf.constant(g[k], tf.float64) for k in ("image", "source", "dest")]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        warped, _ = tps.sparse_image_warp(*tensors, num_boundary_points=1)
        loss = tf.reduce_sum(warped * tf.constant(g["weights"], tf.float64))
    grads = tape.gradient(loss, tensors)
    for grad, name in zip(grads, ("d_image", "d_source", "d_dest")):
        reference = g[name]
        np.testing.assert_allclose(grad.numpy(), reference, rtol=0,
                                   atol=1e-5 * max(1.0, np.abs(reference).max()), err_msg=name)


def _ramp(batch, height, width):
    """A linear image: bilinear sampling reproduces it exactly inside the frame."""
    ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    channels = np.stack([0.01 * ys, 0.02 * xs, 0.01 * ys - 0.015 * xs], -1)
    return np.repeat(channels[None], batch, 0).astype(np.float32)


def _control_points(rng, batch, n, height, width, margin=4.0):
    extent = np.array([height - 1 - 2 * margin, width - 1 - 2 * margin])
    return (margin + rng.uniform(0, 1, (batch, n, 2)) * extent).astype(np.float32)


def test_identity_when_source_equals_dest():
    rng = np.random.default_rng(0)
    image = rng.uniform(-1, 1, (2, 64, 48, 3)).astype(np.float32)
    points = _control_points(rng, 2, 20, 64, 48)
    warped, flow = tps.sparse_image_warp(image, points, points, num_boundary_points=2)
    np.testing.assert_allclose(flow.numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(warped.numpy(), image, atol=1e-5)


def test_affine_warp_is_reproduced():
    """A thin-plate spline through an affine map's correspondences is that affine map."""
    rng = np.random.default_rng(1)
    height, width = 64, 48
    matrix = np.array([[1.1, 0.15], [-0.1, 0.9]])
    offset = np.array([-3.0, 2.5])
    dest = _control_points(rng, 1, 12, height, width)
    source = ((dest[0] - offset) @ np.linalg.inv(matrix).T)[None].astype(np.float32)
    image = _ramp(1, height, width)
    warped, flow = tps.sparse_image_warp(image, source, dest)

    ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    pixels = np.stack([ys, xs], -1).astype(np.float64)
    expected_source = (pixels - offset) @ np.linalg.inv(matrix).T
    np.testing.assert_allclose(flow.numpy()[0], pixels - expected_source, atol=2e-3)
    inside = ((expected_source[..., 0] >= 0) & (expected_source[..., 0] <= height - 1)
              & (expected_source[..., 1] >= 0) & (expected_source[..., 1] <= width - 1))
    assert inside.mean() > 0.6
    sy, sx = expected_source[..., 0], expected_source[..., 1]
    expected = np.stack([0.01 * sy, 0.02 * sx, 0.01 * sy - 0.015 * sx], -1)
    np.testing.assert_allclose(warped.numpy()[0][inside], expected[inside], atol=1e-4)


def test_dest_control_points_show_source_pixels():
    rng = np.random.default_rng(2)
    image = rng.uniform(-1, 1, (1, 32, 24, 1)).astype(np.float32)
    source = rng.integers(3, 20, (1, 6, 2)).astype(np.float32)
    dest = np.clip(source + rng.integers(-2, 3, source.shape), 0, 23).astype(np.float32)
    warped, _ = tps.sparse_image_warp(image, source, dest)
    s, d = source[0].astype(int), dest[0].astype(int)
    np.testing.assert_allclose(warped.numpy()[0, d[:, 0], d[:, 1]], image[0, s[:, 0], s[:, 1]],
                               atol=1e-4)


def test_boundary_points_pin_the_corners():
    rng = np.random.default_rng(3)
    source = _control_points(rng, 2, 8, 32, 24)
    dest = source + rng.normal(0, 2, source.shape).astype(np.float32)
    _, flow = tps.sparse_image_warp(np.zeros((2, 32, 24, 1), np.float32), source, dest,
                                    num_boundary_points=1)
    corners = flow.numpy()[:, [0, 0, -1, -1], [0, -1, 0, -1]]
    np.testing.assert_allclose(corners, 0.0, atol=1e-4)
    assert np.abs(flow.numpy()).max() > 1.0


def test_gradients_reach_image_and_control_points():
    rng = np.random.default_rng(4)
    image = tf.constant(rng.uniform(-1, 1, (2, 32, 24, 3)).astype(np.float32))
    source = tf.constant(_control_points(rng, 2, 8, 32, 24))
    dest = tf.constant(source.numpy() + rng.normal(0, 1.5, source.shape).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch([image, source, dest])
        warped, _ = tps.sparse_image_warp(image, source, dest)
        loss = tf.reduce_sum(tf.square(warped - 0.3))
    for grad, name in zip(tape.gradient(loss, [image, source, dest]), ("image", "src", "dst")):
        assert grad is not None, name
        assert np.all(np.isfinite(grad.numpy())), name
        assert np.abs(grad.numpy()).max() > 1e-3, name


def test_jit_compile_with_unknown_batch():
    rng = np.random.default_rng(5)
    image = rng.uniform(-1, 1, (3, 64, 48, 3)).astype(np.float32)
    source = _control_points(rng, 3, 16, 64, 48)
    dest = source + rng.normal(0, 1.5, source.shape).astype(np.float32)

    @tf.function(jit_compile=True, input_signature=[
        tf.TensorSpec([None, 64, 48, 3]), tf.TensorSpec([None, None, 2]),
        tf.TensorSpec([None, None, 2])])
    def warp(image, source, dest):
        return tps.sparse_image_warp(image, source, dest, regularization_weight=1e-3,
                                     num_boundary_points=2)

    warped, flow = warp(image, source, dest)
    eager_warped, eager_flow = tps.sparse_image_warp(
        image, source, dest, regularization_weight=1e-3, num_boundary_points=2)
    assert warped.shape == (3, 64, 48, 3) and flow.shape == (3, 64, 48, 2)
    np.testing.assert_allclose(flow.numpy(), eager_flow.numpy(), atol=1e-3)
    # Noise images change by up to 2 per pixel, so a 1e-3 px flow difference may show twice.
    np.testing.assert_allclose(warped.numpy(), eager_warped.numpy(), atol=3e-3)
    assert warp(image[:1], source[:1], dest[:1])[0].shape == (1, 64, 48, 3)


def test_saved_model_round_trip(tmp_path):
    rng = np.random.default_rng(6)
    image = rng.uniform(-1, 1, (1, 32, 24, 3)).astype(np.float32)
    source = _control_points(rng, 1, 8, 32, 24)
    dest = source + 1.0

    module = tf.Module()
    module.warp = tf.function(
        lambda image, source, dest: tps.sparse_image_warp(image, source, dest)[0],
        input_signature=[tf.TensorSpec([None, None, None, 3]), tf.TensorSpec([None, 8, 2]),
                         tf.TensorSpec([None, 8, 2])])
    tf.saved_model.save(module, str(tmp_path / "warp"))
    loaded = tf.saved_model.load(str(tmp_path / "warp"))
    np.testing.assert_allclose(loaded.warp(image, source, dest).numpy(),
                               tps.sparse_image_warp(image, source, dest)[0].numpy(), atol=1e-5)


def test_flow_stride_approximates_the_exact_flow():
    rng = np.random.default_rng(7)
    height, width, stride = 64, 48, 4
    ys, xs = np.meshgrid(np.linspace(6, 57, 6), np.linspace(5, 42, 5), indexing="ij")
    source = np.stack([ys, xs], -1).reshape(1, -1, 2).astype(np.float32)
    bend = np.stack([2.0 * np.sin(source[..., 1] / 10.0), 1.5 * np.cos(source[..., 0] / 12.0)], -1)
    dest = (source + bend + rng.normal(0, 0.2, source.shape)).astype(np.float32)
    image = rng.uniform(-1, 1, (1, height, width, 3)).astype(np.float32)
    _, exact = tps.sparse_image_warp(image, source, dest)
    _, coarse = tps.sparse_image_warp(image, source, dest, flow_stride=stride)
    exact, coarse = exact.numpy(), coarse.numpy()
    np.testing.assert_allclose(coarse[:, ::stride, ::stride], exact[:, ::stride, ::stride],
                               atol=1e-4)
    error = np.abs(coarse - exact).max()
    assert 1e-4 < error < 0.1


def test_unbatched_image_like_tfa():
    rng = np.random.default_rng(8)
    image = rng.uniform(-1, 1, (32, 24, 3)).astype(np.float32)
    source = _control_points(rng, 1, 6, 32, 24)
    warped, flow = tps.sparse_image_warp(image, source, source + 1.0)
    batched, _ = tps.sparse_image_warp(image[None], source, source + 1.0)
    assert warped.shape == (32, 24, 3) and flow.shape == (1, 32, 24, 2)
    np.testing.assert_allclose(warped.numpy(), batched.numpy()[0], atol=1e-6)
