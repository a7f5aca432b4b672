"""`viton-tf demo`: the main job, end to end.

Synthesise a small world -> train both VITON stages briefly -> export the learned model and the
non-parametric (warp and paste) one -> start `viton-tf serve` -> prepare the real photos offline ->
try every real person on through the gRPC client -> write results/index.html.
"""
from __future__ import annotations

import csv
import dataclasses
import html
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from viton_tf import methods

REPO = Path(__file__).resolve().parents[1]
# OpenPose COCO-18 limbs, as joint index pairs (see config.COCO18).
SKELETON = ((1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
            (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17))
TILE = (256, 192)  # every panel is shown at this size, whatever the data's
MODELS = methods.EXPORTABLE  # each is exported, served and tried on


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    pairs: int = 48
    height: int = 128
    width: int = 96
    stage1_steps: int = 150
    stage2_steps: int = 50
    batch_size: int = 4
    real_pairs: int = 10  # real persons tried on (each with one garment)


QUICK = DemoSettings(pairs=8, height=64, width=48, stage1_steps=10, stage2_steps=10, batch_size=2, real_pairs=2)


def real_photos_dir() -> Path:
    """The real VITON-HD photos beside the checkout (`../shared/data/real`), or $VITON_SHARED_DATA/real."""
    return Path(os.environ.get("VITON_SHARED_DATA", REPO.parent / "shared" / "data")) / "real"


def viton_tf(*args: str, log: Path | None = None) -> None:
    """Run one `viton-tf` subcommand as a user would, failing loudly with its output."""
    command = [sys.executable, "-m", "viton_tf.cli", *map(str, args)]
    print(f"$ viton-tf {' '.join(map(str, args))}", flush=True)
    if log is None:
        completed = subprocess.run(command, cwd=REPO)
    else:
        with log.open("w") as stream:
            completed = subprocess.run(command, cwd=REPO, stdout=stream, stderr=subprocess.STDOUT)
    if completed.returncode != 0:
        tail = log.read_text()[-3000:] if log else ""
        raise RuntimeError(f"viton-tf {args[0]} failed with exit code {completed.returncode}\n{tail}")


def run_demo(out, work, quick: bool = False) -> int:
    """Run the whole demo; `out`/index.html is the page."""
    settings = QUICK if quick else DemoSettings()
    out, work = Path(out), Path(work)
    started = time.perf_counter()
    for folder in (out, work / "runs", work / "models", work / "logs"):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    data = work / "data"
    size = ("--height", settings.height, "--width", settings.width)

    shutil.rmtree(data, ignore_errors=True)
    viton_tf("synth", "--out", data, "--pairs", settings.pairs, *size, "--seed", 0)
    write_representation_figure(data, out / "representation.png", settings)
    # configs/demo.json: L1 + mask L1 (no ImageNet VGG19 offline), batch-norm momentum 0.9 for a short run.
    common = ("--data", data, "--config", REPO / "configs" / "demo.json", "--batch-size", settings.batch_size, *size)
    viton_tf("train", "--stage", 1, "--out", work / "runs/viton", "--steps", settings.stage1_steps, *common)
    viton_tf("train", "--stage", 2, "--out", work / "runs/viton", "--steps", settings.stage2_steps, *common)
    viton_tf("train", "--method", "nonparametric", "--out", work / "runs/nonparametric", "--steps", 1, *common)
    for name in MODELS:
        viton_tf("export", "--run", work / "runs" / name, "--out", work / "models" / name, "--version", 1,
                 "--data", data)

    prepared = work / "real"
    shutil.rmtree(prepared, ignore_errors=True)
    pairs = real_pairs(real_photos_dir(), settings.real_pairs, work / "real_pairs.txt")
    viton_tf("prepare", "--persons", real_photos_dir() / "person", "--cloths", real_photos_dir() / "cloth",
             "--out", prepared, "--height", 256, "--width", 192, "--pairs", work / "real_pairs.txt")

    results = []
    with Server(work) as server:
        for person, cloth in pairs:
            results.append(try_on(server, prepared / "test", person, cloth, out / "tryon"))
    curves = training_curves(work / "runs/viton", out / "training_curves.png")
    seconds = time.perf_counter() - started
    write_page(out / "index.html", results, curves, settings, seconds)
    print(f"demo: wrote {out / 'index.html'} ({len(results)} try-ons, {seconds / 60:.1f} min)")
    return 0


def real_pairs(real: Path, count: int, pairs_file: Path) -> list[tuple[str, str]]:
    """The first `count` persons, each with a different garment, written as a pairs file."""
    persons = sorted(p.stem for p in (real / "person").glob("*.jpg"))[:count]
    cloths = sorted(p.stem for p in (real / "cloth").glob("*.jpg"))
    if not persons or not cloths:
        raise RuntimeError(f"{real}: expected person/*.jpg and cloth/*.jpg (the real VITON-HD photos)")
    pairs = [(person, cloths[i % len(cloths)]) for i, person in enumerate(persons)]
    pairs_file.write_text("".join(f"{p}.jpg {c}.jpg\n" for p, c in pairs))
    return pairs


class Server:
    """`viton-tf serve` over both exported models, on free localhost ports, stopped with SIGTERM."""

    def __init__(self, work: Path):
        self.work = work

    def __enter__(self) -> "Server":
        from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc
        import grpc

        config = self.work / "models.config"
        config.write_text("model_config_list {\n" + "".join(
            f'  config {{ name: "{name}" base_path: "{(self.work / "models" / name).resolve()}" '
            f'model_platform: "tensorflow" }}\n' for name in MODELS) + "}\n")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.address = f"localhost:{self.port}"
        print(f"$ viton-tf serve --model-config {config} --grpc-port {self.port}", flush=True)
        self.log = self.work / "logs" / "serve.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "viton_tf.cli", "serve", "--model-config", str(config),
             "--grpc-port", str(self.port)], cwd=REPO, stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        stub = model_service_pb2_grpc.ModelServiceStub(grpc.insecure_channel(self.address))
        deadline = time.monotonic() + 300
        ready: set[str] = set()
        while ready != set(MODELS):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"viton-tf serve did not start: {self.log.read_text()[-2000:]}")
            for name in set(MODELS) - ready:
                request = get_model_status_pb2.GetModelStatusRequest()
                request.model_spec.name = name
                try:
                    states = stub.GetModelStatus(request, timeout=5).model_version_status
                    if any(s.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE for s in states):
                        ready.add(name)
                except grpc.RpcError:
                    time.sleep(0.5)
        return self

    def __exit__(self, *exc) -> None:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=120)
        print(f"viton-tf serve stopped (exit code {code})")


def try_on(server: Server, split: Path, person: str, cloth: str, out: Path) -> dict:
    """Both served models on one prepared real pair; every panel saved as a PNG under `out`."""
    from serving.client import build_inputs, predict_grpc

    out.mkdir(parents=True, exist_ok=True)
    keypoints_file = split / "openpose_json" / f"{person}_keypoints.json"
    inputs = build_inputs(split / "image" / f"{person}.jpg", split / "cloth" / f"{cloth}.jpg",
                          split / "image-parse-v3" / f"{person}.png", keypoints_file)
    person_rgb = cv2.cvtColor(cv2.imread(str(split / "image" / f"{person}.jpg")), cv2.COLOR_BGR2RGB)
    parsing = cv2.imread(str(split / "image-parse-v3" / f"{person}.png"), cv2.IMREAD_GRAYSCALE)
    panels = {"person": person_rgb,
              "garment": cv2.cvtColor(cv2.imread(str(split / "cloth" / f"{cloth}.jpg")), cv2.COLOR_BGR2RGB),
              "keypoints": draw_keypoints(person_rgb, inputs["keypoints"][0]),
              "parsing": colourise_parsing(parsing)}
    timings = {}
    for model in MODELS:
        start = time.perf_counter()
        outputs = predict_grpc(server.address, inputs, model)
        timings[model] = time.perf_counter() - start
        tryon = cv2.cvtColor(cv2.imdecode(np.frombuffer(bytes(outputs["tryon_png"][0]), np.uint8),
                                          cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        if model == "viton":
            panels["warped cloth"] = _to_uint8(outputs["warped_cloth"][0])
            panels["coarse result"] = _to_uint8(outputs["coarse_person"][0])
            panels["composition mask"] = _gray(outputs["composition_mask"][0, ..., 0])
            panels["VITON (learned)"] = tryon
        else:
            panels["non-parametric"] = tryon
    files = {}
    for title, image in panels.items():
        path = out / f"{person}__{cloth}__{title.split(' (')[0].replace(' ', '_')}.png"
        cv2.imwrite(str(path), cv2.cvtColor(_tile(image), cv2.COLOR_RGB2BGR))
        files[title] = path
    return {"person": person, "cloth": cloth, "files": files, "ms": {k: v * 1000 for k, v in timings.items()}}


def training_curves(run: Path, path: Path) -> Path:
    """Each stage's `loss` column of the run's CSV logs, drawn as a line per stage."""
    colours = {"log.csv": (200, 60, 30), "log_stage2.csv": (30, 90, 200)}
    canvas = np.full((300, 560, 3), 255, np.uint8)
    cv2.rectangle(canvas, (50, 20), (540, 260), (0, 0, 0), 1)
    for i, (name, colour) in enumerate(colours.items()):
        rows = list(csv.DictReader((run / name).open())) if (run / name).is_file() else []
        losses = np.array([float(r["loss"]) for r in rows if r.get("loss")])
        if len(losses) < 2:
            continue
        low, high = losses.min(), losses.max() + 1e-9
        xs = 50 + np.linspace(0, 490, len(losses))
        ys = 260 - (losses - low) / (high - low) * 240
        cv2.polylines(canvas, [np.stack([xs, ys], -1).astype(np.int32)], False, colour, 2, cv2.LINE_AA)
        label = f"stage {i + 1} loss: {losses[0]:.3f} -> {losses[-1]:.3f}"
        cv2.putText(canvas, label, (60 + 260 * i, 285), cv2.FONT_HERSHEY_SIMPLEX, 0.42,
                    colour, 1, cv2.LINE_AA)
    cv2.imwrite(str(path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    return path


def write_page(path: Path, results: list[dict], curves: Path, settings: DemoSettings, seconds: float) -> None:
    """results/index.html: a row per try-on, the training curves, and what the model was trained on."""
    def img(file: Path) -> str:
        return f'<img src="{html.escape(os.path.relpath(file, path.parent))}" width="144">'

    titles = list(results[0]["files"]) if results else []
    rows = "".join(
        f"<tr><td>{html.escape(r['person'])}<br>{html.escape(r['cloth'])}<br>"
        f"{r['ms']['viton']:.0f} / {r['ms']['nonparametric']:.0f} ms</td>"
        + "".join(f"<td>{img(r['files'][t])}</td>" for t in titles) + "</tr>" for r in results)
    head = "".join(f"<th>{html.escape(t)}</th>" for t in ["pair"] + titles)
    trained = (f"{settings.pairs} synthetic pairs at {settings.height}&times;{settings.width}, stage 1 "
               f"{settings.stage1_steps} steps, stage 2 {settings.stage2_steps} steps, batch {settings.batch_size}, "
               "L1 and mask losses only (no ImageNet VGG19 weights offline, so no perceptual loss), "
               "batch-norm momentum 0.9 for the short run")
    path.write_text(f"""<!doctype html>
<html><head><meta charset="utf-8"><title>viton-tf demo</title>
<style>body{{font-family:sans-serif;margin:24px}} td,th{{padding:4px;text-align:center;font-size:12px}}
img{{display:block}}</style></head><body>
<h1>viton-tf demo</h1>
<p><b>What the learned model is:</b> VITON (G_C + shape-context TPS warp + G_R) trained only on the
project's synthetic try-on world: {trained}. It has never seen a real photo, so on the real VITON-HD photos
below it shows the pipeline working end to end, not the paper's quality. The non-parametric column warps the
garment onto the parsed upper-clothes region and pastes it, with no learning.</p>
<p>Real photos prepared offline (BlazePose keypoints, parsing from offline models), served by
<code>viton-tf serve</code> and called through the gRPC client. Time per request (learned / non-parametric)
under the pair names. Whole demo: {seconds / 60:.1f} min.</p>
<table><tr>{head}</tr>{rows}</table>
<h2>Training curves</h2><img src="{curves.name}" width="560">
<h2>What the networks are given</h2><img src="representation.png" width="900">
<script>/* for tests and humans: how many images failed to load */
window.addEventListener("load", () => {{ document.body.dataset.brokenImages =
  [...document.images].filter(image => !image.complete || image.naturalWidth === 0).length; }});</script>
</body></html>
""")


def write_representation_figure(data: Path, path: Path, settings: DemoSettings) -> None:
    """Person, cloth, parsing, keypoints and the 22-channel representation of 4 training examples."""
    from viton_tf.data.readers import make_dataset
    from viton_tf.representation import person_representation

    batch = next(iter(make_dataset(data, split="train", height=settings.height, width=settings.width,
                                   batch_size=4)))
    representation = person_representation(batch["person"], batch["parsing"], batch["keypoints"])
    cv2.imwrite(str(path), representation_figure({k: v.numpy() for k, v in batch.items()}, representation.numpy()))


def representation_figure(batch: dict, representation: np.ndarray) -> np.ndarray:
    """A BGR image: one row per example; person, cloth, parsing, keypoints, and the
    representation's pose boxes, body shape and face+hair."""
    titles = ("person", "cloth", "parsing", "keypoints", "pose (18 ch)", "body shape", "face + hair")
    rows = [_header(titles)]
    for i in range(len(batch["person"])):
        person = _to_uint8(batch["person"][i])
        pose = np.clip(representation[i, ..., :18].sum(-1), 0, 1)
        panels = (person, _to_uint8(batch["cloth"][i]), colourise_parsing(batch["parsing"][i]),
                  draw_keypoints(person, batch["keypoints"][i]), _gray(pose),
                  _gray(representation[i, ..., 18]), _to_uint8(representation[i, ..., 19:22]))
        rows.append(np.concatenate([_tile(p) for p in panels], axis=1))
    return cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR)


def colourise_parsing(parsing: np.ndarray) -> np.ndarray:
    """LIP label ids -> RGB, one fixed colour per label, background white."""
    hues = (np.arange(20) * 37) % 180
    palette = cv2.cvtColor(np.stack([hues, np.full(20, 200), np.full(20, 230)], -1)[None].astype(np.uint8),
                           cv2.COLOR_HSV2RGB)[0]
    palette[0] = 255
    return palette[np.clip(parsing, 0, 19)]


def draw_keypoints(person: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """The skeleton over the person, drawn at display size; missing joints are left out."""
    scale = np.array([TILE[1] / person.shape[1], TILE[0] / person.shape[0]])
    canvas = _tile(person).copy()
    points = [tuple(int(v) for v in (k[:2] + 0.5) * scale) if k[2] > 0 else None for k in keypoints]
    for a, b in SKELETON:
        if points[a] and points[b]:
            cv2.line(canvas, points[a], points[b], (255, 200, 0), 2, cv2.LINE_AA)
    for point in filter(None, points):
        cv2.circle(canvas, point, 3, (255, 0, 0), -1, cv2.LINE_AA)
    return canvas


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip((image + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def _gray(values: np.ndarray) -> np.ndarray:
    return np.repeat((np.clip(values, 0, 1)[..., None] * 255).astype(np.uint8), 3, axis=-1)


def _tile(image: np.ndarray) -> np.ndarray:
    if image.shape[:2] == TILE:
        return image
    small = image.shape[0] < TILE[0]
    return cv2.resize(image, TILE[::-1], interpolation=cv2.INTER_NEAREST if small else cv2.INTER_AREA)


def _header(titles) -> np.ndarray:
    header = np.full((28, TILE[1] * len(titles), 3), 255, np.uint8)
    for i, title in enumerate(titles):
        cv2.putText(header, title, (i * TILE[1] + 8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return header
