"""Served latency (p50/p95) and throughput through `viton-tf serve`, with and without batching.

    .venv/bin/python benchmarks/serving.py [--model-base work/models/viton] [--clients 8] [--requests 25]

Each of `--clients` threads sends `--requests` Predict calls over gRPC (and, without batching, over
REST too); the request is the newest version's own warm-up record (the export writes one real
example there). Without --model-base a toy model with the same signature is served
(tests/serving_toy.py). Writes benchmarks/results/serving.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2, prediction_service_pb2_grpc

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # the jobs (serving/) by their folder names, and the toy server
from serving_toy import Server, write_toy_model  # noqa: E402

from serving.client import ClientError, predict_rest  # noqa: E402
from serving.servables import WARMUP_FILE, version_folders  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "serving.json"


def _warmup_request(base: Path, model: str):
    """The newest version's first warm-up record, as a PredictRequest for MODEL."""
    number, folder = max(version_folders(base).items())
    record = next(iter(tf.data.TFRecordDataset(str(folder / WARMUP_FILE)))).numpy()
    request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
    request.model_spec.name = model
    return request, number


def _grpc_call(port: int, request):
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", 2**31 - 1),
                                                                  ("grpc.max_send_message_length", 2**31 - 1)])
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    return lambda: stub.Predict(request, timeout=300), channel.close


def _rest_call(port: int, request):
    inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
    address, model = f"127.0.0.1:{port}", request.model_spec.name
    return lambda: predict_rest(address, inputs, model, timeout=300), lambda: None


def _load(call, clients: int, requests: int) -> dict:
    latencies, failures, lock = [], [], threading.Lock()
    call, close = call
    call()  # one untimed call
    start_line = threading.Barrier(clients + 1)

    def client() -> None:
        start_line.wait()
        for _ in range(requests):
            begin = time.perf_counter()
            try:
                call()
                with lock:
                    latencies.append(time.perf_counter() - begin)
            except (grpc.RpcError, ClientError) as error:
                with lock:
                    failures.append(error.code().name if isinstance(error, grpc.RpcError) else str(error)[:200])

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    start_line.wait()
    begin = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - begin
    close()
    milliseconds = np.array(latencies) * 1000
    return {"requests": len(latencies), "failures": len(failures),
            "p50_ms": round(float(np.percentile(milliseconds, 50)), 1),
            "p95_ms": round(float(np.percentile(milliseconds, 95)), 1),
            "mean_ms": round(float(milliseconds.mean()), 1),
            "throughput_rps": round(len(latencies) / seconds, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-base", type=Path, default=None, help="exported model base path (BASE/N/)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=25, help="requests per client")
    parser.add_argument("--batching-config", type=Path, default=REPO / "serving" / "batching.config")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    base = args.model_base
    if base is None:
        base = work / "toy"
        write_toy_model(base / "1", version=1, warmup_requests=1)
    base = base.resolve()
    config = work / "models.config"
    config.write_text(f'model_config_list {{ config {{ name: "viton" base_path: "{base}" '
                      f'model_platform: "tensorflow" }} }}\n')
    request, version = _warmup_request(base, "viton")
    runs = {}
    for label, batching in (("no_batching", None), ("batching", args.batching_config)):
        server = Server(config, work / f"{label}.log", ["--batching-config", str(batching)] if batching else [])
        try:
            server.wait_ready("viton", timeout=300)
            runs[label] = _load(_grpc_call(server.grpc_port, request), args.clients, args.requests)
            print(f"{label}: {runs[label]}")
            if batching is None:
                runs["rest_no_batching"] = _load(_rest_call(server.rest_port, request), args.clients, args.requests)
                print(f"rest_no_batching: {runs['rest_no_batching']}")
        finally:
            server.stop()

    result = {
        "model": "toy (tests/serving_toy.py)" if args.model_base is None else str(args.model_base),
        "version": version,
        "request_examples": int(request.inputs["keypoints"].tensor_shape.dim[0].size),
        "clients": args.clients, "requests_per_client": args.requests,
        "batching_config": args.batching_config.read_text() if args.batching_config else None,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, no GPU"
                   if not tf.config.list_physical_devices("GPU") else "GPU: "
                   + ", ".join(d.name for d in tf.config.list_physical_devices("GPU")),
        "load_average_1m": round(os.getloadavg()[0], 2),  # other work on the machine skews the numbers
        "command": "python benchmarks/serving.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
