"""`viton-tf warp-eval`: how well the shape-context TPS warp moves a product photo onto the
garment as worn, against OpenCV's shape-context + TPS and a bounding-box affine floor.

For each pair the product cloth's mask is warped onto the worn garment's mask (the parse labels
`DataConfig.garment_labels` of the person wearing it): in the synthetic world each test
person with their own garment (the true warp is known), elsewhere the split's pairs file.
With occluders (the default) every method gets the person's arms, hands and hair: the fit
sees the garment's outline behind them and the warped garment is hidden under them, as it
is on the person.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np

from viton_tf.config import CATEGORIES, CATEGORY_NAMES, HEIGHT, WIDTH, DataConfig, WarpConfig, override, parse_overrides
from viton_tf.errors import UserError


# ---------------------------------------------------------------- the data

def _size(root: Path, height: int | None, width: int | None) -> tuple[int, int]:
    meta = root / "meta.json"
    if (height is None or width is None) and meta.is_file():
        values = json.loads(meta.read_text())
        return height or int(values["height"]), width or int(values["width"])
    return height or HEIGHT, width or WIDTH


def load_pairs(root, split: str = "test", height: int | None = None, width: int | None = None,
               data: DataConfig = DataConfig()):
    """(examples, layout, height, width): each example a dict of numpy arrays with the
    product `cloth`, `cloth_mask`, the wearer's `person`, `garment_mask` (the garment of the pair's
    category) and `occluder_mask`, the `name`, the `category`, and, where the synthetic world records them, `worn_mask` and `label` (dict or None)."""
    from viton_tf.data.readers import decode_pair, detect_layout, read_pairs

    root = Path(root)
    layout = detect_layout(root)
    height, width = _size(root, height, width)
    synthetic = (root / split / "gt-warp").is_dir()
    # Synthetic test pairs are unpaired; their persons with their own garments have a truth.
    pairs = read_pairs(root, layout, split, paired=True if synthetic else None)
    examples = []
    for pair in pairs:
        example = decode_pair(pair, height, width)
        stem = Path(pair.cloth).stem
        labels = data.garment_labels if pair.category == "upper" else CATEGORIES[pair.category].garment_labels
        garment = np.isin(example["parsing"], labels).astype(np.float32)[..., None]
        occluders = np.isin(example["parsing"], data.occluder_labels).astype(np.float32)[..., None]
        item = {"name": f"{pair.person} {pair.cloth}", "category": pair.category, "cloth": example["cloth"],
                "cloth_mask": example["cloth_mask"], "person": example["person"],
                "garment_mask": garment, "occluder_mask": occluders, "worn_mask": None, "label": None}
        worn = root / split / "cloth-mask-worn" / f"{stem}.png"
        if worn.is_file():
            mask = cv2.imread(str(worn), cv2.IMREAD_GRAYSCALE)
            mask = cv2.resize(mask.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
            item["worn_mask"] = (mask > 127).astype(np.float32)[..., None]
        label = root / split / "cloth-label" / f"{stem}.json"
        if label.is_file():
            value = json.loads(label.read_text())
            if value.get("box"):  # box in the product photo's pixels -> ours
                photo_height, photo_width = cv2.imread(str(pair.files["cloth"])).shape[:2]
                scale = np.array([width / photo_width, height / photo_height] * 2)
                value["box"] = (np.array(value["box"], np.float64) * scale).tolist()
            item["label"] = value
        examples.append(item)
    return examples, layout, height, width


# ---------------------------------------------------------------- the warps

def _compiled_warp(config: WarpConfig, matcher: str, height: int, width: int):
    import tensorflow as tf

    from viton_tf.warp.shape_context import warp_cloth

    spec = [tf.TensorSpec([None, height, width, 3])] + [tf.TensorSpec([None, height, width, 1])] * 3

    def warp(cloth, mask, target, occluders):
        return warp_cloth(cloth, mask, target, config, matcher, occluders)

    function = tf.function(warp, input_signature=spec, jit_compile=matcher == "sinkhorn")

    def run(cloth, mask, target, occluders):
        warped, warped_mask = function(cloth[None], mask[None], target[None], occluders[None])
        return warped.numpy()[0], warped_mask.numpy()[0]

    return run


@functools.lru_cache(maxsize=None)
def _compiled_completion(config: WarpConfig, height: int, width: int):
    """For the reference warps: (target with the occluded outline completed, occluders) -> numpy,
    the completion `warp_cloth` does, at full size."""
    import tensorflow as tf

    from viton_tf.warp.shape_context import complete_occluded

    reach = max(1, round(config.occlusion_reach * height / config.match_height))
    spec = [tf.TensorSpec([None, height, width, 1])] * 2
    function = tf.function(lambda target, occluders: complete_occluded(target, occluders, reach),
                           input_signature=spec, jit_compile=True)
    return lambda target, occluders: function(target[None], occluders[None]).numpy()[0]


@functools.lru_cache(maxsize=None)  # one compilation for every reference warp of a run
def _compiled_fixes(config: WarpConfig, height: int, width: int):
    """The cloth fixes alone (for the OpenCV and bounding-box warps), as numpy in and out."""
    import tensorflow as tf

    from viton_tf.warp import cloth_fixes

    def fixes(cloth, mask):
        return cloth_fixes.fix_cloth(cloth, mask, config.neck_label_fix, config.collar_fix)

    spec = [tf.TensorSpec([None, height, width, 3]), tf.TensorSpec([None, height, width, 1])]
    function = tf.function(fixes, input_signature=spec, jit_compile=True)

    def run(cloth, mask):
        if not (config.neck_label_fix or config.collar_fix):
            return cloth, mask
        fixed_cloth, fixed_mask = function(cloth[None], mask[None])
        return fixed_cloth.numpy()[0], fixed_mask.numpy()[0]

    return run


def _contour(mask: np.ndarray, count: int) -> np.ndarray | None:
    """`count` points evenly spaced along the mask's contours, float32 [1, count, 2] (x, y)."""
    contours, _ = cv2.findContours((mask > 0.5).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    points = np.concatenate([c.reshape(-1, 2) for c in contours]).astype(np.float32)
    if len(points) < 8:
        return None
    index = np.linspace(0, len(points), count, endpoint=False).astype(int)
    return points[index][None]


def opencv_warp(cloth: np.ndarray, cloth_mask: np.ndarray, target_mask: np.ndarray,
                config: WarpConfig = WarpConfig(), rounds: int = 3):
    """OpenCV's reference: ShapeContextDistanceExtractor matches (one round per call, the
    TPS of each round applied to the points), ThinPlateSplineShapeTransformer maps the
    target back to the product; same 64x48 masks and point count as ours."""
    height, width = cloth.shape[:2]
    size = (config.match_width, config.match_height)
    source = _contour(cv2.resize(cloth_mask[..., 0], size, interpolation=cv2.INTER_AREA), config.num_points)
    target = _contour(cv2.resize(target_mask[..., 0], size, interpolation=cv2.INTER_AREA), config.num_points)
    if source is None or target is None:
        return cloth, cloth_mask
    extractor = cv2.createShapeContextDistanceExtractor()
    extractor.setIterations(1)
    moved = source.copy()
    for _ in range(rounds):
        extractor.computeDistance(moved, target)
        _, moved = extractor.getTransformAlgorithm().applyTransformation(moved)
        moved = moved.astype(np.float32).reshape(1, -1, 2)
    inverse = cv2.createThinPlateSplineShapeTransformer()
    matches = [cv2.DMatch(i, i, 0.0) for i in range(config.num_points)]
    inverse.estimateTransformation(moved, source, matches)
    scale = np.array([config.match_width / width, config.match_height / height], np.float32)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    grid = (np.stack([xs, ys], -1).reshape(1, -1, 2) + 0.5) * scale - 0.5
    _, mapped = inverse.applyTransformation(grid)
    mapped = ((mapped.reshape(height, width, 2) + 0.5) / scale - 0.5).astype(np.float32)
    image = np.concatenate([cloth, cloth_mask], axis=-1)
    # Outside the product photo there is only white background.
    warped = cv2.remap(image, mapped[..., 0], mapped[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                       borderValue=(1.0, 1.0, 1.0, 0.0))
    return warped[..., :3], warped[..., 3:]


def bbox_affine_warp(cloth: np.ndarray, cloth_mask: np.ndarray, target_mask: np.ndarray):
    """The floor: scale and shift the product's bounding box onto the worn garment's."""
    def box(mask):
        ys, xs = np.nonzero(mask[..., 0] > 0.5)
        if len(xs) == 0:
            return None
        return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1

    source, target = box(cloth_mask), box(target_mask)
    if source is None or target is None:
        return cloth, cloth_mask
    sx = (target[2] - target[0]) / max(source[2] - source[0], 1)
    sy = (target[3] - target[1]) / max(source[3] - source[1], 1)
    matrix = np.array([[sx, 0, target[0] - sx * source[0]], [0, sy, target[1] - sy * source[1]]], np.float32)
    height, width = cloth.shape[:2]
    image = np.concatenate([cloth, cloth_mask], axis=-1)
    warped = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                            borderValue=(1.0, 1.0, 1.0, 0.0))
    return warped[..., :3], warped[..., 3:]


# ---------------------------------------------------------------- the measurements

def _iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0.5, b > 0.5
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def _summary(ious: list, ssims: list, times: list) -> dict:
    return {"median_iou": float(np.median(ious)), "mean_iou": float(np.mean(ious)),
            "ssim_in_garment": float(np.mean(ssims)),
            "ms_per_pair": float(np.mean(times)) if times else None,
            "ms_per_pair_median": float(np.median(times)) if times else None}


def measure_cloth_fixes(examples: list, height: int, width: int) -> dict:
    """Neck-label detection and collar-fix IoU against the synthetic world's truth ({} if none)."""
    import tensorflow as tf

    from viton_tf.warp.cloth_fixes import find_collar

    items = {e["name"].split()[1]: e for e in examples if e["worn_mask"] is not None and e["label"] is not None}
    if not items:
        return {}
    function = tf.function(find_collar, jit_compile=True, input_signature=[
        tf.TensorSpec([None, height, width, 3]), tf.TensorSpec([None, height, width, 1])])
    hits = misses = false_positives = negatives = 0
    fixed_ious, unfixed_ious = [], []
    for item in items.values():
        band, label = (t.numpy()[0, ..., 0] > 0.5 for t in function(item["cloth"][None], item["cloth_mask"][None]))
        if item["label"]["has_label"] and item["label"]["box"]:
            x0, y0, x1, y1 = item["label"]["box"]
            inside = label[int(np.floor(y0)):int(np.ceil(y1)), int(np.floor(x0)):int(np.ceil(x1))].any()
            hits, misses = hits + bool(inside), misses + (not inside)
        elif not item["label"]["has_label"]:
            negatives += 1
            false_positives += bool(label.any())
        mask = item["cloth_mask"][..., 0] > 0.5
        fixed_ious.append(_iou(mask & ~band, item["worn_mask"][..., 0]))
        unfixed_ious.append(_iou(mask, item["worn_mask"][..., 0]))
    return {
        "neck_label": {"detection_rate": hits / max(hits + misses, 1), "false_positive_rate":
                       false_positives / max(negatives, 1), "with_label": hits + misses, "without_label": negatives},
        "collar": {"mean_iou_fixed": float(np.mean(fixed_ious)), "mean_iou_unfixed": float(np.mean(unfixed_ious)),
                   "iou_gain": float(np.mean(fixed_ious) - np.mean(unfixed_ious)), "cloths": len(items)},
    }


def _reference(warp, config: WarpConfig, height: int, width: int):
    """A numpy warp (OpenCV's, the bounding box) with the cloth fixes and the occlusion
    handling `warp_cloth` has, so that every method gets the same inputs."""
    fixes = _compiled_fixes(config, height, width)
    completion = _compiled_completion(config, height, width)

    def run(cloth, mask, target, occluders):
        cloth, mask = fixes(cloth, mask)
        warped, warped_mask = warp(cloth, mask, completion(target, occluders))
        return warped, warped_mask * (1.0 - occluders)

    return run


def evaluate_warp(root, split: str = "test", matcher: str = "sinkhorn", collar_fix: bool = True,
                  height: int | None = None, width: int | None = None, progress: bool = True,
                  occluders: bool = True, warp_config: WarpConfig = WarpConfig()) -> dict:
    """The warp-eval report as a dict (see the module docstring); `warp_config`'s collar and
    neck-label switches are set from `collar_fix`."""
    from tqdm import tqdm

    from viton_tf.metrics import ssim

    examples, layout, height, width = load_pairs(root, split, height, width)
    config = dataclasses.replace(warp_config, collar_fix=collar_fix, neck_label_fix=collar_fix)
    if matcher == "opencv":
        warp = _reference(lambda cloth, mask, target: opencv_warp(cloth, mask, target, config), config, height, width)
    elif matcher in ("sinkhorn", "hungarian"):
        warp = _compiled_warp(config, matcher, height, width)
    else:
        raise UserError(f"--matcher {matcher!r}: expected sinkhorn, hungarian or opencv")
    floor = _reference(bbox_affine_warp, config, height, width)

    # Without occluders every method gets an empty occluder mask.
    inputs = lambda e: (e["cloth"], e["cloth_mask"], e["garment_mask"],
                        e["occluder_mask"] if occluders else np.zeros_like(e["occluder_mask"]))
    results, per_category = {}, {}
    for name, method in (("warp", warp), ("bbox_affine", floor)):
        method(*inputs(examples[0]))  # warm-up: tracing, compiling
        ious, ssims, times = [], [], []
        for example in tqdm(examples, desc=f"warp-eval {matcher if name == 'warp' else name}",
                            disable=not progress, leave=False):
            start = time.perf_counter()
            warped, warped_mask = method(*inputs(example))
            times.append(1000.0 * (time.perf_counter() - start))
            ious.append(_iou(warped_mask, example["garment_mask"]))
            ssims.append(float(ssim(warped[None], example["person"][None], example["garment_mask"][None])[0]))
        results[name] = _summary(ious, ssims, times)
        for category in CATEGORY_NAMES:
            chosen = [i for i, example in enumerate(examples) if example["category"] == category]
            if chosen and len(chosen) < len(examples):
                pick = lambda values: [values[i] for i in chosen]
                per_category.setdefault(category, {"pairs": len(chosen)})[name] = _summary(
                    pick(ious), pick(ssims), pick(times))
    report = {"data": str(root), "layout": layout, "split": split, "pairs": len(examples),
              "height": height, "width": width, "matcher": matcher, "collar_fix": collar_fix,
              "occluders": occluders, "warp_config": dataclasses.asdict(config),
              **results["warp"], "bbox_affine": results["bbox_affine"], "categories": per_category,
              "cpus": len(os.sched_getaffinity(0))}
    report.update(measure_cloth_fixes(examples, height, width))
    return report


def run_warp_eval(args) -> int:
    warp_config = override(WarpConfig(), "warp", parse_overrides(args.set, ("warp",)))
    report = evaluate_warp(args.data, args.split, args.matcher, not args.no_collar_fix, args.height, args.width,
                           occluders=not args.no_occluders, warp_config=warp_config)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    keys = ("median_iou", "mean_iou", "ssim_in_garment", "ms_per_pair")
    print(f"{args.matcher}: " + ", ".join(f"{k} {report[k]:.3f}" for k in keys)
          + f"; bbox_affine median_iou {report['bbox_affine']['median_iou']:.3f} -> {args.out}")
    for category, values in report["categories"].items():
        print(f"  {category} ({values['pairs']} pairs): median_iou {values['warp']['median_iou']:.3f}, "
              f"bbox_affine {values['bbox_affine']['median_iou']:.3f}")
    return 0
