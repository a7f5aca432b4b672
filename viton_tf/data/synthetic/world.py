"""The synthetic world on disk: train and test splits in the VITON-HD layout plus the truths no real
dataset has (gt-warp, cloth-label, cloth-mask-worn, unpaired images); or the same persons and garments in
DressCode's layout, a fixture for its reader."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np

from viton_tf.config import (BODY25_TO_COCO18, CATEGORIES, CATEGORY_NAMES, DRESSCODE_FOLDERS, DRESSCODE_KEYPOINT_FRAME,
                             LIP, SynthConfig)
from viton_tf.data.synthetic.bodies import _keypoints, _sample_body
from viton_tf.data.synthetic.garments import _sample_lower, _sample_upper
from viton_tf.data.synthetic.geometry import _Grid
from viton_tf.data.synthetic.rendering import _render
from viton_tf.errors import UserError

VERSION = 1
FOLDERS = ("image", "cloth", "cloth-mask", "image-parse-v3", "openpose_json",
           "gt-warp", "cloth-label", "cloth-mask-worn")


def _validate(out: Path, config: SynthConfig) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is an existing file; expected a folder (new or a previous synthetic world)")
    if out.is_dir() and any(out.iterdir()) and not (out / "meta.json").is_file():
        raise UserError(f"--out {out}: folder is not empty and holds no synthetic world (meta.json); "
                        "choose a new or empty folder")
    if not isinstance(config.pairs, int) or config.pairs < 1:
        raise UserError(f"SynthConfig.pairs: expected a positive integer, got {config.pairs!r}")
    for name in ("height", "width"):
        value = getattr(config, name)
        if not isinstance(value, int) or value < 32 or value % 16:
            raise UserError(f"SynthConfig.{name}: expected a multiple of 16 of at least 32, got {value!r}")
    if not isinstance(config.seed, int) or config.seed < 0:
        raise UserError(f"SynthConfig.seed: expected a non-negative integer, got {config.seed!r}")
    if not 0.0 <= config.test_fraction < 1.0:
        raise UserError(f"SynthConfig.test_fraction: expected a value in [0, 1), got {config.test_fraction!r}")
    if not 0.0 <= config.neck_label_probability <= 1.0:
        raise UserError(f"SynthConfig.neck_label_probability: expected a value in [0, 1], "
                        f"got {config.neck_label_probability!r}")
    if not 1 <= config.jpeg_quality <= 100:
        raise UserError(f"SynthConfig.jpeg_quality: expected 1..100, got {config.jpeg_quality!r}")
    categories = tuple(config.categories) if not isinstance(config.categories, str) else (config.categories,)
    unknown = [c for c in categories if c not in CATEGORIES]
    if unknown or not categories:
        raise UserError(f"SynthConfig.categories: unknown {unknown or 'empty'}; choose from {', '.join(CATEGORY_NAMES)}")
    if config.layout not in ("vitonhd", "dresscode"):
        raise UserError(f"SynthConfig.layout: {config.layout!r}; expected 'vitonhd' or 'dresscode'")


def count_test_pairs(config: SynthConfig) -> int:
    """How many of the pairs go to the test split: none, or 2 to pairs - 1 (unpaired needs two)."""
    if config.test_fraction <= 0 or config.pairs < 3:
        return 0
    return min(max(int(round(config.pairs * config.test_fraction)), 2), config.pairs - 1)


def _categories_of(categories: tuple, n_train: int, n_test: int) -> list[str]:
    """Train pairs cycle through the categories; test pairs take them two by two, so that every
    test garment has another test garment of its category to be swapped with."""
    train = [categories[index % len(categories)] for index in range(n_train)]
    test = [categories[(position // 2) % len(categories)] for position in range(n_test)]
    if n_test % 2 and n_test > 1 and test.count(test[-1]) == 1:
        test[-1] = test[-2]
    return train + test


def _world_item(config: SynthConfig, index: int, category: str, grid: _Grid):
    """Person and garment of pair `index`, each from its own seeded stream."""
    height, width = config.height, config.width
    body = _sample_body(np.random.default_rng([config.seed, index, 0]), height, width)
    # The person's own top or bottom, worn with a garment of the other kind, from streams 2 and 3.
    if category == "lower":
        body.top = _sample_upper(np.random.default_rng([config.seed, index, 2]), grid, "top", 0.0)
    if category == "upper":
        body.bottom = _sample_lower(np.random.default_rng([config.seed, index, 3]), grid)
    rng = np.random.default_rng([config.seed, index, 1])
    if category == "upper":
        garment = _sample_upper(rng, grid, "top", config.neck_label_probability)
    elif category == "dress":
        garment = _sample_upper(rng, grid, "dress", config.neck_label_probability)
    else:
        garment = _sample_lower(rng, grid)
    return body, garment


def _write_jpeg(path: Path, image: np.ndarray, quality: int) -> None:
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_OPTIMIZE, 0])


def _write_png(path: Path, image: np.ndarray) -> None:
    cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, 3])


def _write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, sort_keys=True) + "\n")


def _openpose(keypoints: np.ndarray) -> dict:
    flat = [round(float(value), 3) for value in keypoints.reshape(-1)]
    person = {"person_id": [-1], "pose_keypoints_2d": flat, "face_keypoints_2d": [],
              "hand_left_keypoints_2d": [], "hand_right_keypoints_2d": [], "pose_keypoints_3d": [],
              "face_keypoints_3d": [], "hand_left_keypoints_3d": [], "hand_right_keypoints_3d": []}
    return {"version": 1.3, "people": [person]}


def swapped_garment(config: SynthConfig, index: int, product_index: int, category: str = "upper") -> dict:
    """Person `index` of the world, rendered in their own garment and in the garment of `product_index`:
    {"parse_own", "parse_new": uint8 LIP ids [H, W], "keypoints": BODY_25 [25, 3], "product_mask": uint8
    [H, W] (255 = garment) of the product photo}. The exact truth of an unpaired try-on's layout."""
    grid = _Grid.of(config.height, config.width)
    body, own = _world_item(config, index, category, grid)
    _, product = _world_item(config, product_index, category, grid)
    _, parse_own, _ = _render(body, own, grid)
    _, parse_new, _ = _render(body, product, grid)
    return {"parse_own": parse_own, "parse_new": parse_new, "keypoints": _keypoints(body, config.height, config.width),
            "product_mask": product.mask}


def _clear(out: Path) -> None:
    """Remove what an earlier synthetic world wrote to `out` (either layout)."""
    for stale in ("train", "test", "train_pairs.txt", "test_pairs.txt", "meta.json", *DRESSCODE_FOLDERS.values()):
        path = out / stale
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def write_world(out: Path | str, config: SynthConfig, progress: bool = True) -> None:
    """Write `config.pairs` person/garment pairs in the VITON-HD layout plus the synthetic ground truth (or, with
    `config.layout` "dresscode", in DressCode's layout: `write_dresscode`)."""
    from tqdm import tqdm

    out = Path(out)
    _validate(out, config)
    if config.layout == "dresscode":
        write_dresscode(out, config, progress)
        return
    categories = (config.categories,) if isinstance(config.categories, str) else tuple(config.categories)
    _clear(out)
    n_test = count_test_pairs(config)
    n_train = config.pairs - n_test
    for split in ("train", "test"):
        for folder in FOLDERS:
            (out / split / folder).mkdir(parents=True, exist_ok=True)
    for folder in ("unpaired-image", "unpaired-parse"):
        (out / "test" / folder).mkdir(parents=True, exist_ok=True)

    height, width, quality = config.height, config.width, config.jpeg_quality
    grid = _Grid.of(height, width)
    stems = [f"{index:05d}_00" for index in range(config.pairs)]
    category_of = _categories_of(categories, n_train, n_test)
    items = {}
    bar = tqdm(total=config.pairs + n_test, desc="synth", unit="image", disable=not progress)
    for index, stem in enumerate(stems):
        split = "train" if index < n_train else "test"
        body, garment = _world_item(config, index, category_of[index], grid)
        if split == "test":
            items[index] = (body, garment)
        image, parse, warp = _render(body, garment, grid)
        folder = out / split
        _write_jpeg(folder / "image" / f"{stem}.jpg", image, quality)
        _write_png(folder / "image-parse-v3" / f"{stem}.png", parse)
        _write_json(folder / "openpose_json" / f"{stem}_keypoints.json", _openpose(_keypoints(body, height, width)))
        _write_jpeg(folder / "cloth" / f"{stem}.jpg", garment.image, quality)
        _write_jpeg(folder / "cloth-mask" / f"{stem}.jpg", garment.mask, quality)
        _write_png(folder / "cloth-mask-worn" / f"{stem}.png", garment.worn_mask)
        np.save(folder / "gt-warp" / f"{stem}.npy", warp)
        _write_json(folder / "cloth-label" / f"{stem}.json",
                    {"has_label": garment.label_box is not None, "box": garment.label_box})
        bar.update()

    # Unpaired test pairs: each test person with the next test garment of the same category.
    test_pairs = []
    test_indices = list(range(n_train, config.pairs))
    for category in categories:
        group = [index for index in test_indices if category_of[index] == category]
        for position, index in enumerate(group):
            test_pairs.append((index, group[(position + 1) % len(group)]))
    test_pairs.sort()
    for person_index, cloth_index in test_pairs:
        body, _ = items[person_index]
        _, garment = items[cloth_index]
        image, parse, _ = _render(body, garment, grid)
        name = f"{stems[person_index]}__{stems[cloth_index]}"
        _write_jpeg(out / "test" / "unpaired-image" / f"{name}.jpg", image, quality)
        _write_png(out / "test" / "unpaired-parse" / f"{name}.png", parse)
        bar.update()
    bar.close()

    (out / "train_pairs.txt").write_text("".join(f"{s}.jpg {s}.jpg\n" for s in stems[:n_train]))
    (out / "test_pairs.txt").write_text(
        "".join(f"{stems[p]}.jpg {stems[c]}.jpg\n" for p, c in test_pairs))
    # Each person's category (readers.pair_table reads it: the VITON-HD layout has no place for it).
    _write_json(out / "meta.json", {"height": height, "width": width, "seed": config.seed,
                                    "categories": list(categories), "pairs": config.pairs, "version": VERSION,
                                    "category_of": dict(zip(stems, category_of))})


# --- DressCode's layout -------------------------------------------------------------------

# LIP ids -> DressCode's ATR ids: the inverse of config.DRESSCODE_TO_LIP where it has one; the neck goes into
# ATR's head (the reader splits it off at the shoulders), coats are upper clothes, socks legs, gloves arms.
_LIP_TO_DRESSCODE = {
    LIP.BACKGROUND: 0, LIP.HAT: 1, LIP.HAIR: 2, LIP.GLOVE: 14, LIP.SUNGLASSES: 3, LIP.UPPER_CLOTHES: 4, LIP.DRESS: 7,
    LIP.COAT: 4, LIP.SOCKS: 12, LIP.PANTS: 6, LIP.NECK: 11, LIP.SCARF: 17, LIP.SKIRT: 5, LIP.FACE: 11,
    LIP.LEFT_ARM: 14, LIP.RIGHT_ARM: 15, LIP.LEFT_LEG: 12, LIP.RIGHT_LEG: 13, LIP.LEFT_SHOE: 9, LIP.RIGHT_SHOE: 10,
}


def _dresscode_keypoints(body25: np.ndarray, height: int, width: int) -> dict:
    """BODY_25 keypoints [25, 3] in pixels as DressCode's JSON: COCO-18 [x, y, score, id] in its 384 x 512
    frame, a missing joint at (0, 0) with score 0 and id -1."""
    coco = body25[list(BODY25_TO_COCO18)]
    scale = (DRESSCODE_KEYPOINT_FRAME[0] / width, DRESSCODE_KEYPOINT_FRAME[1] / height)
    points = [[round(float(x * scale[0]), 3), round(float(y * scale[1]), 3), round(float(c), 3), joint]
              if c > 0 else [0.0, 0.0, 0.0, -1] for joint, (x, y, c) in enumerate(coco)]
    return {"keypoints": points}


def write_dresscode(out: Path, config: SynthConfig, progress: bool = True) -> None:
    """The world's persons and garments in DressCode's layout: per category folder images/<id>_0.jpg (person),
    <id>_1.jpg (product), label_maps/<id>_4.png (ATR ids), keypoints/<id>_2.json, train_pairs.txt,
    test_pairs_paired.txt, test_pairs_unpaired.txt (each test person with the next test garment of the folder).
    DressCode ships no cloth masks and no truths; nor does this fixture."""
    from tqdm import tqdm

    categories = (config.categories,) if isinstance(config.categories, str) else tuple(config.categories)
    _clear(out)
    n_test = count_test_pairs(config)
    n_train = config.pairs - n_test
    category_of = _categories_of(categories, n_train, n_test)
    lookup = np.zeros(256, np.uint8)
    for lip, atr in _LIP_TO_DRESSCODE.items():
        lookup[lip] = atr
    grid = _Grid.of(config.height, config.width)
    lines = {(category, name): [] for category in categories
             for name in ("train_pairs.txt", "test_pairs_paired.txt", "test_pairs_unpaired.txt")}
    tests = {category: [] for category in categories}
    for index in tqdm(range(config.pairs), desc="synth", unit="pair", disable=not progress):
        category = category_of[index]
        folder = out / DRESSCODE_FOLDERS[category]
        for name in ("images", "label_maps", "keypoints"):
            (folder / name).mkdir(parents=True, exist_ok=True)
        body, garment = _world_item(config, index, category, grid)
        image, parse, _ = _render(body, garment, grid)
        key = f"{index:06d}"
        _write_jpeg(folder / "images" / f"{key}_0.jpg", image, config.jpeg_quality)
        _write_jpeg(folder / "images" / f"{key}_1.jpg", garment.image, config.jpeg_quality)
        _write_png(folder / "label_maps" / f"{key}_4.png", lookup[parse])
        _write_json(folder / "keypoints" / f"{key}_2.json",
                    _dresscode_keypoints(_keypoints(body, config.height, config.width), config.height, config.width))
        if index < n_train:
            lines[category, "train_pairs.txt"].append(f"{key}_0.jpg {key}_1.jpg\n")
        else:
            lines[category, "test_pairs_paired.txt"].append(f"{key}_0.jpg {key}_1.jpg\n")
            tests[category].append(key)
    for category, keys in tests.items():
        for position, key in enumerate(keys):
            lines[category, "test_pairs_unpaired.txt"].append(f"{key}_0.jpg {keys[(position + 1) % len(keys)]}_1.jpg\n")
    for (category, name), text in lines.items():
        folder = out / DRESSCODE_FOLDERS[category]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("".join(text))
    _write_json(out / "meta.json", {"height": config.height, "width": config.width, "seed": config.seed,
                                    "categories": list(categories), "pairs": config.pairs, "version": VERSION,
                                    "layout": "dresscode"})
