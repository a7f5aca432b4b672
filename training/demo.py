"""`viton-tf demo`: the main job, end to end.

Synthesise a small world -> train both VITON stages briefly -> export the learned model, the
non-parametric (warp and paste) one and the real-photo (layout) one -> start `viton-tf serve` ->
prepare the real photos offline -> try every real person on with several garments through the gRPC
client (layout and non-parametric, at the photo's size) -> the learned VITON on the synthetic test pairs
beside their true unpaired images -> write results/index.html.
"""
from __future__ import annotations

import csv
import dataclasses
import html
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
REAL_MODELS = ("layout", "nonparametric")  # on real photos; VITON only where it means something (synthetic)
# Each real person tries one garment of each kind (cycled): long sleeves, short sleeves, sleeveless/off-shoulder.
GARMENT_KINDS = {"long sleeves": ("00470_00", "09176_00", "00151_00", "09263_00"),
                 "short sleeves": ("00126_00", "04743_00", "04469_00", "09236_00", "09163_00"),
                 "sleeveless": ("09133_00", "02015_00", "09256_00", "02305_00")}


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    pairs: int = 48
    height: int = 128
    width: int = 96
    stage1_steps: int = 150
    stage2_steps: int = 50
    batch_size: int = 4
    real_persons: int = 10  # real persons tried on, each with one garment of each kind
    synthetic_rows: int = 6  # synthetic test pairs shown with their true unpaired image
    category_persons: int = 4  # real persons also tried on with a lower-body garment and a dress


QUICK = DemoSettings(pairs=8, height=64, width=48, stage1_steps=10, stage2_steps=10, batch_size=2, real_persons=2,
                     synthetic_rows=2, category_persons=1)


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
    viton_tf("export", "--run", work / "runs/viton", "--out", work / "models/viton", "--version", 1, "--data", data)
    for name in ("nonparametric", "layout"):
        viton_tf("export", "--method", name, "--out", work / "models" / name, "--version", 1, "--data", data)

    prepared = work / "real"
    shutil.rmtree(prepared, ignore_errors=True)
    pairs = real_pairs(real_photos_dir(), settings.real_persons, work / "real_pairs.txt")
    viton_tf("prepare", "--persons", real_photos_dir() / "person", "--cloths", real_photos_dir() / "cloth",
             "--out", prepared, "--height", 256, "--width", 192, "--pairs", work / "real_pairs.txt")

    results, synthetic, categories = [], [], []
    products = category_products(work)
    with Server(work) as server:
        for person, cloth, kind in pairs:
            results.append(try_on(server, prepared / "test", real_photos_dir() / "person" / f"{person}.jpg",
                                  person, cloth, kind, out / "tryon"))
        for person in sorted({person for person, _, _ in pairs})[:settings.category_persons]:
            for category, product in products.items():
                categories.append(try_on_category(server, prepared / "test", real_photos_dir() / "person" /
                                                  f"{person}.jpg", person, product, category, out / "categories"))
        for person, cloth in synthetic_pairs(data, settings.synthetic_rows):
            synthetic.append(try_on_synthetic(server, data, person, cloth, out / "synthetic"))
    curves = training_curves(work / "runs/viton", out / "training_curves.png")
    seconds = time.perf_counter() - started
    write_page(out / "index.html", results, synthetic, curves, settings, seconds, categories)
    print(f"demo: wrote {out / 'index.html'} ({len(results)} real try-ons, {len(synthetic)} synthetic, "
          f"{seconds / 60:.1f} min)")
    return 0


def real_pairs(real: Path, count: int, pairs_file: Path) -> list[tuple[str, str, str]]:
    """(person, garment, kind): the first `count` persons, each with one garment of each kind (cycled), also
    written as a pairs file for `viton-tf prepare`."""
    persons = sorted(p.stem for p in (real / "person").glob("*.jpg"))[:count]
    cloths = {p.stem for p in (real / "cloth").glob("*.jpg")}
    if not persons or not cloths:
        raise RuntimeError(f"{real}: expected person/*.jpg and cloth/*.jpg (the real VITON-HD photos)")
    fallback = sorted(cloths)
    pairs = []
    for i, person in enumerate(persons):
        for j, (kind, names) in enumerate(GARMENT_KINDS.items()):
            present = [name for name in names if name in cloths] or fallback
            pairs.append((person, present[(i + j) % len(present)], kind))
    pairs_file.write_text("".join(f"{p}.jpg {c}.jpg\n" for p, c, _ in pairs))
    return pairs


def synthetic_pairs(data: Path, count: int) -> list[tuple[str, str]]:
    """The first `count` unpaired synthetic test pairs that have a true unpaired image."""
    lines = (data / "test_pairs.txt").read_text().split("\n")
    pairs = [tuple(Path(name).stem for name in line.split()) for line in lines if line.strip()]
    return [(p, c) for p, c in pairs if (data / "test" / "unpaired-image" / f"{p}__{c}.jpg").is_file()][:count]


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


def _decode_png(data: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(bytes(data), np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def try_on(server: Server, split: Path, photo: Path, person: str, cloth: str, kind: str, out: Path) -> dict:
    """The real-photo models on one prepared real pair, the person's own photo sent at its full size
    (keypoints scaled to it); every panel saved as a PNG under `out`, the layout result also at full size."""
    from export.tryon import request_from_files
    from serving.client import predict_grpc

    out.mkdir(parents=True, exist_ok=True)
    product = real_photos_dir() / "cloth" / f"{cloth}.jpg"  # the original: see export.tryon.prepared_request
    inputs, small, full, scale = _real_request(split, photo, person, product)
    person_rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
    parsing = cv2.imread(str(split / "image-parse-v3" / f"{person}.png"), cv2.IMREAD_GRAYSCALE)
    panels = {"person": person_rgb,
              "garment": cv2.cvtColor(cv2.imread(str(split / "cloth" / f"{cloth}.jpg")), cv2.COLOR_BGR2RGB),
              "keypoints": draw_keypoints(person_rgb, inputs["keypoints"][0] / scale),
              "parsing": colourise_parsing(parsing)}
    timings, files = {}, {}
    for model in REAL_MODELS:
        start = time.perf_counter()
        outputs = predict_grpc(server.address, inputs, model)
        timings[model] = time.perf_counter() - start
        tryon = _decode_png(outputs["tryon_png_bytes"][0])
        if model == "layout":
            panels["predicted layout"] = _gray(outputs["garment_mask"][0, ..., 0])
            panels["warped cloth"] = _to_uint8(outputs["warped_cloth"][0])
            panels["try-on (layout)"] = tryon
            files["full size"] = out / f"{person}__{cloth}__full.png"
            cv2.imwrite(str(files["full size"]), cv2.cvtColor(tryon, cv2.COLOR_RGB2BGR))
        else:
            panels["non-parametric"] = tryon
    for title, image in panels.items():
        path = out / f"{person}__{cloth}__{title.split(' (')[0].replace(' ', '_')}.png"
        cv2.imwrite(str(path), cv2.cvtColor(_tile(image), cv2.COLOR_RGB2BGR))
        files[title] = path
    size = f"{full.shape[1]}x{full.shape[0]}"
    return {"person": person, "cloth": cloth, "kind": kind, "size": size, "files": files,
            "ms": {k: v * 1000 for k, v in timings.items()}}


def _real_request(split: Path, photo: Path, person: str, product: Path):
    """The request for a prepared real person at the photo's own size (keypoints scaled to it) and a product
    photo: (inputs, the prepared small photo, the full photo, the keypoint scale)."""
    from export.tryon import request_from_files

    inputs = request_from_files(split / "image" / f"{person}.jpg", product, split / "image-parse-v3" / f"{person}.png",
                                split / "openpose_json" / f"{person}_keypoints.json")
    small, full = cv2.imread(str(split / "image" / f"{person}.jpg")), cv2.imread(str(photo))
    scale = np.array([full.shape[1] / small.shape[1], full.shape[0] / small.shape[0], 1.0], np.float32)
    inputs = {**inputs, "person_image": np.array([photo.read_bytes()], dtype=object),
              "keypoints": (inputs["keypoints"] * scale).astype(np.float32)}
    return inputs, small, full, scale


def try_on_category(server: Server, split: Path, photo: Path, person: str, product: Path, category: str,
                    out: Path) -> dict:
    """The layout model's serving_category on a real person with a (synthetic) lower-body or dress product."""
    from serving.client import predict_grpc

    out.mkdir(parents=True, exist_ok=True)
    inputs, small, full, _ = _real_request(split, photo, person, product)
    inputs["category"] = np.array([category.encode()], dtype=object)
    start = time.perf_counter()
    outputs = predict_grpc(server.address, inputs, "layout")
    milliseconds = (time.perf_counter() - start) * 1000
    tryon = _decode_png(outputs["tryon_png_bytes"][0])
    stem = f"{person}__{category}"
    files = {"full size": out / f"{stem}__full.png"}
    cv2.imwrite(str(files["full size"]), cv2.cvtColor(tryon, cv2.COLOR_RGB2BGR))
    panels = {"person": cv2.cvtColor(small, cv2.COLOR_BGR2RGB),
              "garment": cv2.cvtColor(cv2.imread(str(product)), cv2.COLOR_BGR2RGB), "try-on (layout)": tryon}
    for title, image in panels.items():
        files[title] = out / f"{stem}__{title.split(' (')[0].replace(' ', '_')}.png"
        cv2.imwrite(str(files[title]), cv2.cvtColor(_tile(image), cv2.COLOR_RGB2BGR))
    return {"person": person, "cloth": product.stem, "kind": category, "size": f"{full.shape[1]}x{full.shape[0]}",
            "files": files, "ms": {"layout": milliseconds}}


def category_products(work: Path) -> dict[str, Path]:
    """One synthetic product photo per category lower and dress at 1024x768 (no real ones ship with the demo)."""
    import json

    folder = work / "category_products"
    shutil.rmtree(folder, ignore_errors=True)
    viton_tf("synth", "--out", folder, "--pairs", 4, "--height", 1024, "--width", 768, "--categories", "lower,dress",
             "--seed", 7)
    category_of = json.loads((folder / "meta.json").read_text())["category_of"]
    photos = {path.stem: path for path in sorted(folder.glob("*/cloth/*.jpg"))}
    return {name: photos[next(stem for stem in sorted(photos) if category_of[stem] == name)]
            for name in ("lower", "dress")}


def try_on_synthetic(server: Server, data: Path, person: str, cloth: str, out: Path) -> dict:
    """Every served model on one unpaired synthetic test pair, beside the world's true image of it."""
    from export.tryon import request_from_files
    from serving.client import predict_grpc

    out.mkdir(parents=True, exist_ok=True)
    split = data / "test"
    inputs = request_from_files(split / "image" / f"{person}.jpg", split / "cloth" / f"{cloth}.jpg",
                          split / "image-parse-v3" / f"{person}.png",
                          split / "openpose_json" / f"{person}_keypoints.json")
    read = lambda path: cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    panels = {"person": read(split / "image" / f"{person}.jpg"), "garment": read(split / "cloth" / f"{cloth}.jpg")}
    for model in MODELS:
        outputs = predict_grpc(server.address, inputs, model)
        if model == "viton":
            panels["coarse result"] = _to_uint8(outputs["coarse_person"][0])
        panels[model] = _decode_png(outputs["tryon_png_bytes"][0])
    panels["truth"] = read(split / "unpaired-image" / f"{person}__{cloth}.jpg")
    files = {}
    for title, image in panels.items():
        path = out / f"{person}__{cloth}__{title.replace(' ', '_')}.png"
        cv2.imwrite(str(path), cv2.cvtColor(_tile(image), cv2.COLOR_RGB2BGR))
        files[title] = path
    return {"person": person, "cloth": cloth, "files": files}


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


def _table(path: Path, results: list[dict], caption) -> str:
    def img(file: Path) -> str:
        return f'<img src="{html.escape(os.path.relpath(file, path.parent))}" width="144">'

    titles = [t for t in (results[0]["files"] if results else []) if t != "full size"]
    rows = "".join(f"<tr><td>{caption(r)}</td>" + "".join(f"<td>{img(r['files'][t])}</td>" for t in titles)
                   + "</tr>" for r in results)
    head = "".join(f"<th>{html.escape(t)}</th>" for t in ["pair"] + titles)
    return f"<table><tr>{head}</tr>{rows}</table>"


def write_page(path: Path, results: list[dict], synthetic: list[dict], curves: Path, settings: DemoSettings,
               seconds: float, categories: list[dict] = ()) -> None:
    """results/index.html: the real try-ons, the synthetic pairs with their truth, the training curves."""
    def real_caption(r: dict) -> str:
        full = os.path.relpath(r["files"]["full size"], path.parent)
        return (f"{html.escape(r['person'])}<br>{html.escape(r['cloth'])}<br>{html.escape(r['kind'])}<br>"
                f'<a href="{html.escape(full)}">{r["size"]} result</a><br>'
                + " / ".join(f"{r['ms'][m]:.0f}" for m in REAL_MODELS if m in r["ms"]) + " ms")

    trained = (f"{settings.pairs} synthetic pairs at {settings.height}&times;{settings.width}, stage 1 "
               f"{settings.stage1_steps} steps, stage 2 {settings.stage2_steps} steps, batch {settings.batch_size}, "
               "L1 and mask losses only (no ImageNet VGG19 weights offline, so no perceptual loss), "
               "batch-norm momentum 0.9 for the short run")
    real = _table(path, results, real_caption)
    by_category = _table(path, list(categories), real_caption) if categories else ""
    fake = _table(path, synthetic, lambda r: f"{html.escape(r['person'])}<br>{html.escape(r['cloth'])}")
    path.write_text(f"""<!doctype html>
<html><head><meta charset="utf-8"><title>viton-tf demo</title>
<style>body{{font-family:sans-serif;margin:24px}} td,th{{padding:4px;text-align:center;font-size:12px}}
img{{display:block}}</style></head><body>
<h1>viton-tf demo</h1>
<h2>Real photos: the layout method</h2>
<p>Real VITON-HD photos prepared offline (BlazePose keypoints, parsing from offline models), served by
<code>viton-tf serve</code> and called through the gRPC client with the person's photo at its own size.
<b>Layout</b> (the real-photo method): a layout network trained on the synthetic world, from texture-free
inputs only (pose, blurred body shape, the product's mask), decides where the new garment and the newly bare
skin go; the product is warped there by shape-context TPS; new skin takes the person's own tone, what the old
garment leaves uncovered is filled from its surroundings, and every other pixel is the photo's own. The result
is at the photo's size (the link under each pair). <b>Non-parametric</b> (the paper's baseline): the product
warped onto the old garment's outline and pasted inside it. Time per request (layout / non-parametric) under the
pair names. Whole demo: {seconds / 60:.1f} min.</p>
{real}
<h2>Real photos: lower-body garments and dresses</h2>
<p>The same served layout model through its <code>serving_category</code> signature (category
<code>lower</code> or <code>dress</code>). No real lower-body or dress product photo ships with the project, so
the products are the synthetic world's, rendered at 1024&times;768. The photos end at the thighs, so trousers and
skirts are placed by the body's anchors (the waistband on the top of the worn trousers or skirt) instead of a shape
match to an outline the frame cuts; a dress is cut at half its height, its bodice tried on as a top (the upper
layout network and the warp fit it to the torso and arms) and its skirt then placed with its waistband on the
bodice's hem. The top, arms, face and hair of a lower-body try-on, and the face and hair of a dress, are the
photo's own pixels.</p>
{by_category}
<h2>Synthetic test pairs, with the true image</h2>
<p><b>VITON</b> (G_C + shape-context TPS warp + G_R, the paper's method) is trained here only on the
project's synthetic world: {trained}. It has never seen a real photo, so it is shown where it means
something: on unpaired synthetic test pairs, beside the world's true image of the person wearing the garment.
On real photos it would redraw the whole person from what it learned of synthetic ones.</p>
{fake}
<h2>Training curves (VITON)</h2><img src="{curves.name}" width="560">
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
    from viton_tf.data.codecs import to_uint8

    return to_uint8(np.asarray(image))


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
