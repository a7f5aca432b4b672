"""`viton-tf evaluate`: every trained method on the same test pairs -> metrics.json, metrics.md, comparison.png.

Paired metrics compare each person's try-on with their own garment to the photo itself; unpaired ones
compare the try-on with another garment to the synthetic world's true image of that person wearing it
(test/unpaired-image/<person>__<cloth>.jpg), which no real dataset has. Inception Score and FID need
real Inception weights and are never computed on random ones.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from viton_tf import methods
from viton_tf.config import CATEGORY_NAMES, ExperimentConfig, load_run_config
from viton_tf.data.codecs import from_uint8, to_uint8
from viton_tf.errors import UserError

NO_WEIGHTS = "n/a (no weights)"
# Method order of the paper's Table 1, then VITON itself.
METHODS = methods.NAMES
TITLES = {name: method.title for name, method in methods.METHODS.items()}
# VITON paper (Han et al., CVPR 2018), Table 1, Inception Score on the Zalando test set.
PAPER_IS = {"prgan": 2.688, "cagan": 2.981, "crn": 2.449, "encoder_decoder": 2.653, "nonparametric": 3.070,
            "viton": 2.514}
IMAGE_METRICS = ("ssim", "psnr", "l1", "garment_ssim")
# Against the true unpaired image: the rendered garment region's IoU with the true one, the old garment
# left where it should be gone, the product photo's white at the garment's edge, and the share of the pixels the
# category keeps (face and hair; for a lower-body garment the top and arms too) that changed (viton_tf.metrics).
UNPAIRED_METRICS = ("garment_iou", "remnant", "fringe", "kept_changed")
# Per category (when a test split has more than one): the table's columns, (setting, metric).
CATEGORY_COLUMNS = (("paired", "ssim"), ("unpaired", "ssim"), ("unpaired", "garment_iou"),
                    ("unpaired", "kept_changed"), ("warp_iou", "unpaired"))
FIGURE_ROWS = 8
BATCH_SIZE = 8


@dataclass
class Run:
    """One run folder of RUNS_DIR: its name, method and stored experiment (for viton_tf.run.load_predictor)."""

    name: str
    method: str
    folder: Path
    experiment: ExperimentConfig


@dataclass
class Scores:
    """Per-example values of one method and each example's category, appended batch by batch."""

    values: dict = field(default_factory=dict)
    categories: dict = field(default_factory=dict)

    def add(self, name: str, batch_values, categories) -> None:
        values = np.asarray(batch_values, np.float64).reshape(-1).tolist()
        self.values.setdefault(name, []).extend(values)
        self.categories.setdefault(name, []).extend(list(categories)[:len(values)])

    def means(self, prefix: str = "", category: str | None = None) -> dict:
        means = {}
        for name, values in self.values.items():
            chosen = [v for v, c in zip(values, self.categories[name]) if category in (None, c)]
            if name.startswith(prefix) and chosen:
                means[name[len(prefix):]] = float(np.mean(chosen))
        return means


# --- runs ---------------------------------------------------------------------------------------

def find_runs(runs_dir: Path) -> list[Run]:
    """The run folders in `runs_dir` (each with a config.json naming its method), in Table 1's order."""
    runs = []
    for config_path in sorted(Path(runs_dir).glob("*/config.json")):
        experiment = load_run_config(config_path.parent)
        method = experiment.train.method
        if method not in METHODS:
            raise UserError(f"{config_path}: 'method' is {method!r}, expected one of {', '.join(METHODS)}")
        runs.append(Run(config_path.parent.name, method, config_path.parent, experiment))
    if not runs:
        raise UserError(f"{runs_dir}: no run folders (subfolders with a config.json from `viton-tf train`)")
    return sorted(runs, key=lambda run: (METHODS.index(run.method), run.name))


def _image_size(runs: list[Run]) -> tuple[int, int]:
    sizes = {(r.experiment.train.height, r.experiment.train.width) for r in runs}
    if len(sizes) > 1:
        described = ", ".join(f"{r.name}: {r.experiment.train.height}x{r.experiment.train.width}" for r in runs)
        raise UserError(f"runs were trained at different sizes ({described}); evaluate compares one size")
    return sizes.pop()


# --- test pairs ---------------------------------------------------------------------------------

def _read_rgb(path: Path, height: int, width: int) -> np.ndarray:
    import cv2

    from viton_tf.data.readers import read_image

    image = cv2.resize(read_image(path), (width, height), interpolation=cv2.INTER_AREA)
    return from_uint8(image)


def _read_labels(path: Path, height: int, width: int) -> np.ndarray:
    import cv2

    from viton_tf.data.readers import read_parsing

    parsing = read_parsing(path, (height, width)).astype(np.uint8)
    return cv2.resize(parsing, (width, height), interpolation=cv2.INTER_NEAREST).astype(np.int32)


def load_test_pairs(data: Path, split: str, height: int, width: int) -> list[dict]:
    """Each pair of the split's pairs file: the person with their own garment ("paired" inputs and
    ground truth) and with the file's garment ("unpaired"), plus the true unpaired image if it exists."""
    from viton_tf.data.readers import detect_layout, load_example, read_pairs

    layout = detect_layout(data)
    pairs = []
    for own, other in zip(read_pairs(data, layout, split, paired=True), read_pairs(data, layout, split)):
        paired = load_example(data, own.person, own.cloth, layout, split, height, width)
        unpaired = load_example(data, other.person, other.cloth, layout, split, height, width)
        for example in (paired, unpaired):  # the readers' bytes -> the category's name
            example["category"] = np.asarray(example["category"]).item().decode()
        stem = f"{Path(other.person).stem}__{Path(other.cloth).stem}"
        truth_image = Path(data) / split / "unpaired-image" / f"{stem}.jpg"
        truth_parse = Path(data) / split / "unpaired-parse" / f"{stem}.png"
        pair = {"name": f"{other.person} {other.cloth}", "paired": paired, "unpaired": unpaired,
                "differs": other.cloth != own.cloth, "truth": None, "truth_parsing": None}
        if pair["differs"] and truth_image.is_file() and truth_parse.is_file():
            pair["truth"] = _read_rgb(truth_image, height, width)
            pair["truth_parsing"] = _read_labels(truth_parse, height, width)
        pairs.append(pair)
    return pairs


def _stack(pairs: list[dict], setting: str) -> dict:
    """A batch of inputs for all methods: the readers' keys plus the representation and the worn cloth."""
    import tensorflow as tf

    from viton_tf.representation import person_representation

    from viton_tf.representation import category_ids

    keys = ("person", "cloth", "cloth_mask", "parsing", "keypoints")
    batch = {key: tf.constant(np.stack([p[setting][key] for p in pairs])) for key in keys}
    batch["category"] = tf.constant([p[setting]["category"] for p in pairs])
    batch["representation"] = person_representation(batch["person"], batch["parsing"], batch["keypoints"],
                                                    category=category_ids(batch["category"]))
    batch["worn_cloth"] = tf.constant(np.stack([p["paired"]["cloth"] for p in pairs]))
    batch["worn_cloth_mask"] = tf.constant(np.stack([p["paired"]["cloth_mask"] for p in pairs]))
    return batch


# --- Inception Score and FID ----------------------------------------------------------------------

def inception_score(probabilities: np.ndarray) -> float:
    """exp(E_x KL(p(y|x) || p(y))) over all images at once (one split: test sets here are small)."""
    p = np.clip(np.asarray(probabilities, np.float64), 1e-12, 1.0)
    marginal = p.mean(axis=0, keepdims=True)
    return float(np.exp(np.mean(np.sum(p * (np.log(p) - np.log(marginal)), axis=1))))


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two sets of Inception pool features (Heusel et al. 2017)."""
    from scipy import linalg

    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
    if not np.all(np.isfinite(root)):  # singular product: the usual epsilon on the diagonals
        offset = np.eye(len(cov_a)) * 1e-6
        root = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    return float(np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a + cov_b - 2.0 * np.real(root)))


class Inception:
    """InceptionV3 with real weights: class probabilities (for IS) and 2048-d pool features (for FID)."""

    def __init__(self, weights: str):
        import keras

        try:
            if weights == "imagenet":
                model = keras.applications.InceptionV3(weights="imagenet")
            else:
                if not Path(weights).is_file():
                    raise UserError(f"--inception-weights: no such file {weights} (expected imagenet or a path "
                                    "to Keras InceptionV3 weights with the classifier top)")
                model = keras.applications.InceptionV3(weights=str(weights))
        except UserError:
            raise
        except Exception as error:  # a failed download or a wrong file
            raise UserError(f"--inception-weights {weights}: could not load Keras InceptionV3 weights with the "
                            f"classifier top ({error}); leave the flag out to skip IS and FID") from None
        self.model = keras.Model(model.input, [model.get_layer("avg_pool").output, model.output])

    def __call__(self, images) -> tuple[np.ndarray, np.ndarray]:
        import tensorflow as tf

        # keras.applications.inception_v3.preprocess_input maps [0, 255] to [-1, 1]: our images already are.
        resized = tf.image.resize(images, (299, 299), method="bilinear")
        features, probabilities = self.model(resized, training=False)
        return np.asarray(features), np.asarray(probabilities)


# --- evaluation -----------------------------------------------------------------------------------

def _garment(parsing, categories: list[str]) -> "tf.Tensor":
    """The garment each example's category replaces (the synthetic world's labels: DataConfig's defaults)."""
    from viton_tf.representation import category_ids, replaced_mask

    return replaced_mask(parsing, category_ids(categories))


def _kept(parsing, categories: list[str]) -> "tf.Tensor":
    from viton_tf.representation import category_ids, category_mask, category_table

    return category_mask(parsing, category_ids(categories), category_table("kept_labels"))


def _image_metrics(scores: Scores, prefix: str, tryon, truth, truth_garment, categories) -> None:
    from viton_tf import metrics

    scores.add(prefix + "ssim", metrics.ssim(tryon, truth), categories)
    scores.add(prefix + "psnr", metrics.psnr(tryon, truth), categories)
    scores.add(prefix + "l1", metrics.l1(tryon, truth), categories)
    scores.add(prefix + "garment_ssim", metrics.ssim(tryon, truth, truth_garment), categories)


def evaluate_method(predict, pairs: list[dict], inception: Inception | None, progress) -> tuple[dict, dict]:
    """Run one method on every pair: (summary for metrics.json, figure images of the first pairs)."""
    import tensorflow as tf

    from viton_tf import metrics

    scores, figure = Scores(), {}
    features, probabilities = [], []
    for start in range(0, len(pairs), BATCH_SIZE):
        chunk = pairs[start:start + BATCH_SIZE]
        categories = [p["paired"]["category"] for p in chunk]
        paired = _stack(chunk, "paired")
        outputs = predict(paired)
        truth_garment = _garment(paired["parsing"], categories)
        _image_metrics(scores, "paired/", outputs["tryon"], paired["person"], truth_garment, categories)
        if "warped_mask" in outputs:
            scores.add("warp_iou/paired", metrics.iou(outputs["warped_mask"], truth_garment), categories)

        unpaired = _stack(chunk, "unpaired")
        outputs = predict(unpaired)
        tryon = np.asarray(outputs["tryon"])
        has_truth = [i for i, p in enumerate(chunk) if p["truth"] is not None]
        if has_truth:
            chosen = [categories[i] for i in has_truth]
            truth = tf.constant(np.stack([chunk[i]["truth"] for i in has_truth]))
            truth_garment = _garment(np.stack([chunk[i]["truth_parsing"] for i in has_truth]), chosen)
            _image_metrics(scores, "unpaired/", tf.gather(tryon, has_truth), truth, truth_garment, chosen)
            result, person = tf.gather(tryon, has_truth), tf.gather(unpaired["person"], has_truth)
            parsing = tf.gather(unpaired["parsing"], has_truth)
            scores.add("unpaired/remnant", metrics.remnant(result, person, truth, _garment(parsing, chosen),
                                                           truth_garment), chosen)
            scores.add("unpaired/fringe", metrics.fringe(result, truth, truth_garment), chosen)
            scores.add("unpaired/kept_changed", metrics.kept_changed(result, person, _kept(parsing, chosen)), chosen)
            if "garment_region" in outputs:
                scores.add("unpaired/garment_iou", metrics.iou(tf.gather(outputs["garment_region"], has_truth),
                                                               truth_garment), chosen)
            if "warped_mask" in outputs:
                scores.add("warp_iou/unpaired", metrics.iou(tf.gather(outputs["warped_mask"], has_truth),
                                                            truth_garment), chosen)
        for i, pair in enumerate(chunk):
            if start + i < FIGURE_ROWS:
                figure[pair["name"]] = tryon[i]
        if inception is not None:
            pool, probs = inception(tryon)
            features.append(pool)
            probabilities.append(probs)
        progress.update(len(chunk))

    summary = {"paired": scores.means("paired/") or None, "unpaired": scores.means("unpaired/") or None,
               "warp_iou": scores.means("warp_iou/") or None}
    present = {c for values in scores.categories.values() for c in values}
    names = [name for name in CATEGORY_NAMES if name in present]
    if len(names) > 1:
        summary["categories"] = {name: {setting: scores.means(f"{setting}/", name) or None
                                        for setting in ("paired", "unpaired", "warp_iou")} for name in names}
    if inception is None:
        summary["inception_score"] = summary["fid"] = NO_WEIGHTS
    else:
        summary["inception_score"] = inception_score(np.concatenate(probabilities))
        summary["features"] = np.concatenate(features)
    return summary, figure


def _truth_features(pairs: list[dict], inception: Inception) -> np.ndarray:
    """Inception features of the real images the try-ons should look like (unpaired truth, else the persons)."""
    images = [p["truth"] if p["truth"] is not None else p["paired"]["person"] for p in pairs]
    return np.concatenate([inception(np.stack(images[i:i + BATCH_SIZE]))[0]
                           for i in range(0, len(images), BATCH_SIZE)])


# --- report -------------------------------------------------------------------------------------

def _label(run_name: str, method: str) -> str:
    return TITLES[method] + ("" if run_name == method else f" ({run_name})")


def _cell(value, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    return f"{value:.{digits}f}"


def write_markdown(path: Path, report: dict) -> None:
    columns = ([("paired", name) for name in IMAGE_METRICS]
               + [("unpaired", name) for name in IMAGE_METRICS + UNPAIRED_METRICS])
    header = (["Method"] + [f"{setting} {name.replace('_', ' ')}" for setting, name in columns]
              + ["warp IoU (paired / unpaired)", "IS", "FID", "paper IS (Table 1)"])
    lines = [f"Split `{report['split']}`, {report['pairs']} pairs at {report['height']}x{report['width']}; "
             f"unpaired metrics on {report['unpaired_pairs']} pairs with true unpaired images. "
             "SSIM/PSNR higher is better, L1 and FID lower; garment SSIM is SSIM inside the worn garment; garment "
             "IoU is the rendered garment region against the true one; remnant is the share of pixels that should "
             "have changed (old garment gone) but still show the old garment, fringe the share of the true "
             "garment's boundary that is near-white in the result but not in the truth (both lower is better).",
             "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in report["methods"].items():
        cells = [_label(name, row["method"])]
        for setting, metric in columns:
            values = row[setting] or {}
            cells.append(_cell(values.get(metric), 2 if metric == "psnr" else 3))
        warp = row["warp_iou"]
        cells.append("n/a" if not warp else " / ".join(_cell(warp.get(k)) for k in ("paired", "unpaired")))
        cells += [_cell(row["inception_score"]), _cell(row["fid"], 1), _cell(PAPER_IS.get(row["method"]))]
        lines.append("| " + " | ".join(cells) + " |")
    categorised = {name: row for name, row in report["methods"].items() if row.get("categories")}
    if categorised:
        header = ["Method", "category"] + [f"{setting} {metric}".replace("_", " ").replace("iou", "IoU")
                                           for setting, metric in CATEGORY_COLUMNS]
        lines += ["", "Per category (kept changed: the share of the pixels the category keeps, face and hair, and "
                  "for a lower-body garment the top and arms, that the try-on changed; 0 is the goal):", "",
                  "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for name, row in categorised.items():
            for category, values in row["categories"].items():
                cells = [_label(name, row["method"]), category]
                cells += [_cell((values[setting] or {}).get(metric)) for setting, metric in CATEGORY_COLUMNS]
                lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Paper IS: VITON (Han et al., CVPR 2018) Table 1 on its Zalando test set, not comparable in "
              "absolute value with IS on other images; IS and FID here need real Inception weights "
              "(`--inception-weights imagenet` or a path)."]
    path.write_text("\n".join(lines) + "\n")


def write_figure(path: Path, pairs: list[dict], figures: dict, labels: dict, scale: int) -> None:
    """Rows = test pairs; columns = person, cloth, each method's try-on, ground truth (cv2, labelled)."""
    import cv2

    rows = [p for p in pairs if p["name"] in next(iter(figures.values()), {})][:FIGURE_ROWS]
    titles = ["person", "cloth"] + [labels[name] for name in figures] + ["ground truth"]
    height, width = rows[0]["paired"]["person"].shape[:2]
    tile_h, tile_w = height * scale, width * scale
    label_h = 22

    def tile(image):
        pixels = to_uint8(np.asarray(image))[..., ::-1]
        return cv2.resize(pixels, (tile_w, tile_h), interpolation=cv2.INTER_NEAREST)

    header = np.full((label_h, tile_w * len(titles), 3), 255, np.uint8)
    font_scale = min(0.5, 0.9 * tile_w / max(cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, 1.0, 1)[0][0]
                                             for t in titles))
    for i, title in enumerate(titles):
        cv2.putText(header, title, (i * tile_w + 3, label_h - 7), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                    (0, 0, 0), 1, cv2.LINE_AA)
    lines = [header]
    for pair in rows:
        truth = pair["truth"] if pair["truth"] is not None else (
            pair["paired"]["person"] if not pair["differs"] else np.ones_like(pair["paired"]["person"]))
        images = [pair["unpaired"]["person"], pair["unpaired"]["cloth"]]
        images += [figures[name][pair["name"]] for name in figures] + [truth]
        lines.append(np.concatenate([tile(image) for image in images], axis=1))
    if not cv2.imwrite(str(path), np.concatenate(lines, axis=0)):
        raise UserError(f"{path}: could not write the figure")


def _json_ready(report: dict) -> dict:
    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    return clean(report)


def run_evaluate(args) -> int:
    from tqdm import tqdm

    from viton_tf.run import load_predictor

    data, out = Path(args.data), Path(args.out)
    runs = find_runs(Path(args.runs))
    height, width = _image_size(runs)
    inception = Inception(args.inception_weights) if args.inception_weights else None
    pairs = load_test_pairs(data, args.split, height, width)
    truth_features = _truth_features(pairs, inception) if inception is not None else None

    report = {"split": args.split, "pairs": len(pairs), "height": height, "width": width,
              "unpaired_pairs": sum(p["truth"] is not None for p in pairs),
              "inception_weights": args.inception_weights, "paper_is": PAPER_IS, "methods": {}}
    figures = {}
    with tqdm(total=len(runs) * len(pairs), desc="evaluate", unit="pair") as progress:
        for run in runs:
            progress.set_postfix_str(run.name)
            predict = load_predictor(run.folder, run.method, run.experiment, height, width)
            summary, figures[run.name] = evaluate_method(predict, pairs, inception, progress)
            if inception is not None:
                summary["fid"] = frechet_distance(summary.pop("features"), truth_features)
            report["methods"][run.name] = {"method": run.method, "run": str(run.folder), **summary}

    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(_json_ready(report), indent=2) + "\n")
    write_markdown(out / "metrics.md", report)
    labels = {run.name: _label(run.name, run.method) for run in runs}
    write_figure(out / "comparison.png", pairs, figures, labels, scale=max(1, math.ceil(128 / height)))
    print(f"wrote {out / 'metrics.json'}, {out / 'metrics.md'} and {out / 'comparison.png'}")
    return 0
