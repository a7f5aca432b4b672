"""Runs a SavedModel version the way TF Serving's C++ server does, in a process that never imports viton_tf.

TF Serving loads a SavedModel into a session from its MetaGraphDef (variables restored through the
saver_def), replays assets.extra/tf_serving_warmup_requests, and runs a signature by its tensor names;
no Python tf.function ever runs. This script does exactly that with the tf.compat.v1 loader and
Session.run, and writes every warm-up answer to an .npz (`<record>/<output>`; a `*_bytes` PNG output
decoded to pixels as `<record>/<output>:pixels`), plus the functions marked must-compile (XLA), which
stock TF Serving refuses unless started with --xla_cpu_compilation_enabled.

    python export/serving_check.py VERSION_DIR OUT.npz
"""
from __future__ import annotations

import json
import sys

sys.modules["viton_tf"] = None  # any import of viton_tf now fails: the model must not need it

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.core.protobuf import saved_model_pb2  # noqa: E402
from tensorflow_serving.apis import prediction_log_pb2  # noqa: E402


def must_compile_functions(version: str) -> list[str]:
    """Names of the functions in saved_model.pb that carry _XlaMustCompile = true."""
    model = saved_model_pb2.SavedModel()
    with open(f"{version}/saved_model.pb", "rb") as file:
        model.ParseFromString(file.read())
    names = []
    for meta_graph in model.meta_graphs:
        for function in meta_graph.graph_def.library.function:
            attr = function.attr.get("_XlaMustCompile")
            if attr is not None and attr.b:
                names.append(function.signature.name)
            for node in function.node_def:
                if node.attr.get("_XlaMustCompile") is not None and node.attr["_XlaMustCompile"].b:
                    names.append(f"{function.signature.name}/{node.name}")
        for node in meta_graph.graph_def.node:
            if node.attr.get("_XlaMustCompile") is not None and node.attr["_XlaMustCompile"].b:
                names.append(node.name)
    return names


def replay_warmup(version: str) -> dict[str, np.ndarray]:
    """Every warm-up request run through a TF1 session on the signature's tensor names."""
    answers = {}
    records = [record.numpy() for record in
               tf.data.TFRecordDataset(f"{version}/assets.extra/tf_serving_warmup_requests")]
    with tf.compat.v1.Session(graph=tf.Graph()) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], version)
        for index, record in enumerate(records):
            request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
            signature = meta_graph.signature_def[request.model_spec.signature_name or "serving_default"]
            feeds = {signature.inputs[name].name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
            fetches = {name: info.name for name, info in signature.outputs.items()}
            for name, value in session.run(fetches, feeds).items():
                answers[f"{index}/{name}"] = value
    with tf.compat.v1.Session(graph=tf.Graph()) as decoder:  # PNG bytes -> pixels, outside the model's graph
        data = tf.compat.v1.placeholder(tf.string, [])
        pixels = tf.io.decode_png(data)
        for key in [key for key in answers if key.endswith("_bytes")]:
            answers[f"{key}:pixels"] = np.stack([decoder.run(pixels, {data: png}) for png in answers[key]])
    return answers


if __name__ == "__main__":
    version, out = sys.argv[1], sys.argv[2]
    answers = replay_warmup(version)
    answers["must_compile"] = np.array(json.dumps(must_compile_functions(version)))
    np.savez(out, **{key: np.asarray(value, dtype=object) if value.dtype == object else value
                     for key, value in answers.items()})
