"""`viton-tf export`: a training run -> BASE/N/, a SavedModel version stock TF Serving can load.

The version is written to BASE/.tmp-N-*/ (TF Serving ignores folders that are not integers),
with the run's config in assets/ and one real request in assets.extra/tf_serving_warmup_requests
(at each batch size TF Serving's batching may send). It is then validated as TF Serving would run it:
export/serving_check.py loads it in a fresh process that never imports viton_tf, into a TF1 session
through the saver_def, replays the warm-up requests by the signature's tensor names, and its answers
are compared with the in-process ones. The default export has no must-compile (XLA) function, which
stock TF Serving refuses; `--xla` compiles the warp and needs `--xla_cpu_compilation_enabled=true`.
Only a model that passes is renamed into BASE/N/, so a server polling BASE never sees a broken version.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from serving.servables import WARMUP_FILE  # TF Serving's warm-up file, where the server replays it from
from viton_tf.config import ServingConfig, SynthConfig
from viton_tf.errors import UserError

# Batch sizes of the warm-up requests: serving/batching.config's allowed_batch_sizes.
WARMUP_BATCH_SIZES = tuple(2 ** i for i in range(ServingConfig.max_batch_size.bit_length())
                           if 2 ** i <= ServingConfig.max_batch_size)
# Same machine, same graph: the fresh process must agree up to float noise.
TOLERANCE = {"warped_cloth": 1e-4, "composition_mask": 1e-4, "tryon": 1.0}  # tryon in 0..255 PNG levels
# Measured: an --xla export's warped cloth differs by up to 2.4e-4 between the in-process function and the
# session (float sums reordered inside the compiled Sinkhorn and TPS solve); the PNG stays within a level.
XLA_TOLERANCE_FACTOR = 10.0
SERVING_CHECK = Path(__file__).with_name("serving_check.py")


def example_request(data: Path | None, work: Path, height: int, width: int) -> dict[str, np.ndarray]:
    """The serving inputs of one real pair: file bytes [1] and COCO-18 keypoints [1, 18, 3].

    From the first test (else train) pair of `data`, or of a one-pair synthetic world at the model's size.
    """
    from viton_tf.data.readers import detect_layout, read_keypoints_json, read_pairs

    if data is None:
        from viton_tf.data.synthetic import write_world

        data = work / "example-world"
        write_world(data, SynthConfig(pairs=4, height=height, width=width, seed=0, test_fraction=0.25),
                    progress=False)
    layout = detect_layout(data)
    if layout == "original":
        raise UserError(f"--data {data}: VITON's original layout keeps parsing in .mat files; "
                        "use a VITON-HD or CP-VTON layout folder (PNG parsing maps)")
    if layout == "dresscode":
        raise UserError(f"--data {data}: DressCode's label maps are ATR labels, not the LIP ids the served model "
                        "reads; use a VITON-HD or CP-VTON layout folder")
    split = "test" if (Path(data) / "test_pairs.txt").is_file() else "train"
    files = read_pairs(data, layout, split, skip_bad=True)[0].files
    return {"person_image": np.array([files["person"].read_bytes()], dtype=object),
            "cloth_image": np.array([files["cloth"].read_bytes()], dtype=object),
            "parse_image": np.array([files["parsing"].read_bytes()], dtype=object),
            "keypoints": read_keypoints_json(files["keypoints"])[None]}


def category_request(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """serving_category's inputs: the example once per category (upper, lower, dress) and upper again, a batch
    of 4 (an allowed batch size of serving/batching.config)."""
    from viton_tf.config import CATEGORY_NAMES

    names = CATEGORY_NAMES + ("upper",)
    repeated = {name: np.repeat(value, len(names), axis=0) for name, value in inputs.items()}
    return {**repeated, "category": np.array([name.encode() for name in names], dtype=object)}


def write_warmup(version_dir: Path, inputs: dict[str, np.ndarray], model_name: str,
                 batch_sizes: tuple[int, ...] = WARMUP_BATCH_SIZES) -> None:
    """TF Serving's warm-up file: a TFRecord of PredictionLog, one serving_default request per batch size
    (the example repeated; the first record is the example as given), then one serving_category request
    (category_request: the last record)."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    path = version_dir / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    requests = [("serving_default", {name: np.repeat(value, size, axis=0) for name, value in inputs.items()})
                for size in batch_sizes] + [("serving_category", category_request(inputs))]
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature, tensors in requests:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = signature
            for name, value in tensors.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def served_outputs(outputs: dict) -> dict[str, np.ndarray]:
    """serving_default's outputs as the validation compares them (the PNG decoded)."""
    import tensorflow as tf

    return {"tryon": np.stack([tf.io.decode_png(png).numpy() for png in np.asarray(outputs["tryon_png_bytes"])]),
            "warped_cloth": np.asarray(outputs["warped_cloth"]),
            "composition_mask": np.asarray(outputs["composition_mask"])}


def run_as_tf_serving(version_dir: Path, work: Path) -> dict[str, np.ndarray]:
    """export/serving_check.py's answers for `version_dir`: each warm-up request run through a TF1 session
    in a fresh process without viton_tf, keyed "<record>/<output>", plus "must_compile" (a JSON list)."""
    result = work / "session_outputs.npz"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ""}
    process = subprocess.run([sys.executable, str(SERVING_CHECK), str(version_dir), str(result)],
                             capture_output=True, text=True, env=env, cwd=work)
    if process.returncode != 0:
        lines = [line for line in process.stderr.strip().splitlines() if line.strip()]
        raise UserError(f"{version_dir}: not published: the model does not run the way TF Serving loads it "
                        f"(a TF1 session, without viton_tf): {' | '.join(lines[-3:])}")
    with np.load(result, allow_pickle=True) as answers:
        return {key: answers[key] for key in answers.files}


def validate(version_dir: Path, expected: dict[str, np.ndarray], work: Path, xla: bool = False,
             expected_category: dict[str, np.ndarray] | None = None) -> None:
    """Run `version_dir` as TF Serving does and compare its first warm-up answer with `expected` (and its
    last, serving_category's, with `expected_category`)."""
    answers = run_as_tf_serving(version_dir, work)
    compiled = json.loads(str(answers["must_compile"]))
    if compiled and not xla:
        raise UserError(f"{version_dir}: not published: {len(compiled)} must-compile (XLA) functions, which "
                        f"stock TF Serving refuses ({compiled[0]}, ...)")
    _compare(version_dir, answers, "0", expected, xla)
    if expected_category is not None:
        last = str(len(WARMUP_BATCH_SIZES))
        _compare(version_dir, answers, last, expected_category, xla, " (serving_category)")


def _compare(version_dir: Path, answers: dict, record: str, expected: dict, xla: bool, what: str = "") -> None:
    fresh = {"tryon": answers[f"{record}/tryon_png_bytes:pixels"], "warped_cloth": answers[f"{record}/warped_cloth"],
             "composition_mask": answers[f"{record}/composition_mask"]}
    for name, tolerance in TOLERANCE.items():
        if xla and name != "tryon":  # XLA fuses differently when TF1's session compiles the same graph
            tolerance *= XLA_TOLERANCE_FACTOR
        if fresh[name].shape != expected[name].shape:
            raise UserError(f"{version_dir}: not published: '{name}'{what} has shape {fresh[name].shape} in a "
                            f"fresh process, {expected[name].shape} in this one")
        difference = float(np.abs(fresh[name].astype(np.float64) - expected[name]).max())
        if not difference <= tolerance:
            raise UserError(f"{version_dir}: not published: '{name}'{what} differs from the in-process output "
                            f"by {difference:.3g} (tolerance {tolerance})")


def export(run: Path | None, base: Path, version: int, data: Path | None = None,
           model_name: str = ServingConfig.model_name, precision: str = "float32", xla: bool = False,
           method: str | None = None) -> Path:
    """Write, validate and publish BASE/<version>/; returns that folder. `precision="bfloat16"`
    runs the networks in bfloat16 (see viton_tf.run.tryon_module); the signatures stay float32.
    `xla=True` compiles the warp (TF Serving then needs --xla_cpu_compilation_enabled=true)."""
    import tensorflow as tf

    from viton_tf.run import tryon_module

    base = Path(base).absolute()  # the validation runs in another working directory
    final = base / str(version)
    if final.exists():
        raise UserError(f"{final}: version {version} already exists; export a new --version")
    module = tryon_module(run, method, precision=precision, xla=xla)
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=base))
    work = Path(tempfile.mkdtemp(prefix="viton-export-"))
    try:
        inputs = example_request(data, work, module.height, module.width)
        expected = served_outputs(module.serving_default(**{k: tf.constant(v) for k, v in inputs.items()}))
        expected_category = served_outputs(module.serving_category(
            **{k: tf.constant(v) for k, v in category_request(inputs).items()}))
        config = Path(run) / "config.json" if run is not None else work / "config.json"
        if run is None:  # a method without a run folder (layout, nonparametric): its defaults
            config.write_text(json.dumps({"method": module.method}, indent=2) + "\n")
        module.config_file = tf.saved_model.Asset(str(config))  # -> assets/config.json
        tf.saved_model.save(module, str(staging), signatures=module.signatures())
        write_warmup(staging, inputs, model_name)
        validate(staging, expected, work, xla, expected_category)
        os.chmod(staging, 0o755)  # mkdtemp made it private; servers may run as another user
        os.rename(staging, final)  # atomic: a polling server sees all of the version or none
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def run_export(args) -> int:
    from viton_tf.hardware import precision_warning

    precision, xla = getattr(args, "precision", "float32"), getattr(args, "xla", False)
    warning = precision_warning(precision)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    run, method = getattr(args, "run", None), getattr(args, "method", None)
    if run is None and method is None:
        raise UserError("export: give --run (a trained run folder) or --method layout|nonparametric")
    final = export(run, args.out, args.version, getattr(args, "data", None), precision=precision, xla=xla,
                   method=method)
    engine = "TF Serving with --xla_cpu_compilation_enabled=true" if xla else "stock TF Serving"
    print(f"exported {run or method} -> {final} ({precision}{', XLA' if xla else ''}; validated as {engine} runs it)")
    return 0
