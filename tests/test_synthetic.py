"""The synthetic try-on world: layout, determinism and the correctness of its ground truth."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from viton_tf.config import BODY25_TO_COCO18, COCO18, LIP, SynthConfig
from viton_tf.data.synthetic import count_test_pairs, write_world
from viton_tf.data.synthetic.geometry import _Grid
from viton_tf.data.synthetic.rendering import _render
from viton_tf.data.synthetic.world import _world_item
from viton_tf.errors import UserError

SPLIT_FOLDERS = ("image", "cloth", "cloth-mask", "image-parse-v3", "openpose_json",
                 "gt-warp", "cloth-label", "cloth-mask-worn")


def _rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB).astype(np.float32)


def _gray(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)


def _stems(root: Path, split: str) -> list[str]:
    return sorted(p.stem for p in (root / split / "image").glob("*.jpg"))


def _coco(root: Path, split: str, stem: str) -> np.ndarray:
    data = json.loads((root / split / "openpose_json" / f"{stem}_keypoints.json").read_text())
    body25 = np.array(data["people"][0]["pose_keypoints_2d"], np.float32).reshape(25, 3)
    return body25[list(BODY25_TO_COCO18)]


@pytest.fixture(scope="module")
def labelled_world(tmp_path_factory) -> Path:
    """Few pairs at full size, every product photo with a neck label."""
    out = tmp_path_factory.mktemp("labelled")
    write_world(out, SynthConfig(pairs=4, seed=5, test_fraction=0.5, neck_label_probability=1.0), progress=False)
    return out


def test_layout_and_counts(synthetic_world):
    meta = json.loads((synthetic_world / "meta.json").read_text())
    category_of = meta.pop("category_of")
    assert meta == {"height": 64, "width": 48, "seed": 0, "categories": ["upper"], "pairs": 16, "version": 1}
    assert category_of == {f"{index:05d}_00": "upper" for index in range(16)}
    train, test = _stems(synthetic_world, "train"), _stems(synthetic_world, "test")
    assert len(train) == 12 and len(test) == 4 and not set(train) & set(test)
    assert train[0] == "00000_00"
    suffix = {"image": ".jpg", "cloth": ".jpg", "cloth-mask": ".jpg", "image-parse-v3": ".png",
              "openpose_json": "_keypoints.json", "gt-warp": ".npy", "cloth-label": ".json",
              "cloth-mask-worn": ".png"}
    for split, stems in (("train", train), ("test", test)):
        for folder in SPLIT_FOLDERS:
            names = sorted(p.name for p in (synthetic_world / split / folder).iterdir())
            assert names == sorted(stem + suffix[folder] for stem in stems), (split, folder)
    train_lines = (synthetic_world / "train_pairs.txt").read_text().splitlines()
    assert train_lines == [f"{s}.jpg {s}.jpg" for s in train]
    test_lines = [line.split() for line in (synthetic_world / "test_pairs.txt").read_text().splitlines()]
    assert len(test_lines) == 4
    assert all(person != cloth for person, cloth in test_lines)
    assert sorted(p for p, _ in test_lines) == sorted(c for _, c in test_lines) == [f"{s}.jpg" for s in test]
    unpaired = sorted(p.stem for p in (synthetic_world / "test" / "unpaired-image").glob("*.jpg"))
    assert unpaired == sorted(f"{p[:-4]}__{c[:-4]}" for p, c in test_lines)
    assert sorted(p.stem for p in (synthetic_world / "test" / "unpaired-parse").glob("*.png")) == unpaired
    image = _rgb(synthetic_world / "train" / "image" / f"{train[0]}.jpg")
    assert image.shape == (64, 48, 3)
    warp = np.load(synthetic_world / "train" / "gt-warp" / f"{train[0]}.npy")
    assert warp.shape == (64, 48, 2) and warp.dtype == np.float32


@pytest.mark.parametrize("pairs, fraction, expected", [(16, 0.25, 4), (4, 0.1, 2), (64, 0.25, 16), (1, 0.25, 0),
                                                        (10, 0.0, 0), (3, 0.9, 2), (3, 0.25, 2), (2, 0.5, 0)])
def test_test_split_size(pairs, fraction, expected):
    assert count_test_pairs(SynthConfig(pairs=pairs, test_fraction=fraction)) == expected


def _all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_deterministic_for_a_seed(tmp_path):
    config = SynthConfig(pairs=6, height=64, width=48, seed=3, test_fraction=0.5)
    write_world(tmp_path / "a", config, progress=False)
    write_world(tmp_path / "b", config, progress=False)
    first, second = _all_files(tmp_path / "a"), _all_files(tmp_path / "b")
    assert len(first) == 6 * 8 + 3 * 2 + 3
    assert first == second
    write_world(tmp_path / "c", SynthConfig(pairs=6, height=64, width=48, seed=4, test_fraction=0.5),
                progress=False)
    third = _all_files(tmp_path / "c")
    assert third.keys() == first.keys()
    images = [name for name in first if name.endswith(".jpg")]
    assert sum(first[name] != third[name] for name in images) == len(images)
    # Rewriting into an existing world replaces it completely.
    write_world(tmp_path / "a", SynthConfig(pairs=2, height=64, width=48, seed=3, test_fraction=0.0),
                progress=False)
    assert len(_all_files(tmp_path / "a")) == 2 * 8 + 3


def test_parse_maps_hold_hair_upper_clothes_and_face(synthetic_world):
    allowed = {0, 2, 5, 9, 10, 12, 13, 14, 15, 16, 17}
    for split in ("train", "test"):
        for stem in _stems(synthetic_world, split):
            parse = _gray(synthetic_world / split / "image-parse-v3" / f"{stem}.png")
            labels = set(np.unique(parse).tolist())
            assert {LIP.HAIR, LIP.UPPER_CLOTHES, LIP.FACE, LIP.NECK} <= labels, stem
            assert labels <= allowed, stem
            assert (parse == LIP.UPPER_CLOTHES).sum() > 0.05 * parse.size


def test_keypoints_sit_on_their_body_parts(synthetic_world):
    names = {name: i for i, name in enumerate(COCO18)}
    limb_hits, limb_total = 0, 0
    for stem in _stems(synthetic_world, "train"):
        keypoints = _coco(synthetic_world, "train", stem)
        parse = _gray(synthetic_world / "train" / "image-parse-v3" / f"{stem}.png")
        visible = keypoints[:, 2] > 0
        assert visible[:8].all() and visible[[8, 11, 14, 15]].all(), stem
        x, y = keypoints[visible, 0], keypoints[visible, 1]
        assert (x >= 0).all() and (x <= 47).all() and (y >= 0).all() and (y <= 63).all()

        def label_at(name: str) -> int:
            px, py, _ = keypoints[names[name]]
            return int(parse[int(round(py)), int(round(px))])

        assert label_at("nose") == LIP.FACE, stem
        assert label_at("r_eye") == LIP.FACE and label_at("l_eye") == LIP.FACE, stem
        assert keypoints[names["r_shoulder"], 0] < keypoints[names["l_shoulder"], 0]
        assert keypoints[names["r_eye"], 0] < keypoints[names["l_eye"], 0]
        for shoulder in ("r_shoulder", "l_shoulder"):
            for hip in ("r_hip", "l_hip"):
                assert keypoints[names[shoulder], 1] + 10 < keypoints[names[hip], 1]
        assert keypoints[names["nose"], 1] < keypoints[names["neck"], 1]
        np.testing.assert_allclose(keypoints[names["neck"], :2],
                                   keypoints[[names["r_shoulder"], names["l_shoulder"]], :2].mean(0), atol=0.01)
        for joint in ("r_elbow", "r_wrist", "l_elbow", "l_wrist"):
            limb_total += 1
            limb_hits += label_at(joint) in (LIP.LEFT_ARM, LIP.RIGHT_ARM, LIP.UPPER_CLOTHES)
    assert limb_hits >= 0.9 * limb_total


def test_openpose_json_is_body25(synthetic_world):
    stem = _stems(synthetic_world, "train")[0]
    data = json.loads((synthetic_world / "train" / "openpose_json" / f"{stem}_keypoints.json").read_text())
    body25 = np.array(data["people"][0]["pose_keypoints_2d"]).reshape(25, 3)
    assert "version" in data and len(data["people"]) == 1
    np.testing.assert_allclose(body25[8, :2], (body25[9, :2] + body25[12, :2]) / 2, atol=0.01)


def test_true_warp_shows_the_product_pixels(synthetic_world):
    errors = []
    for split in ("train", "test"):
        for stem in _stems(synthetic_world, split):
            folder = synthetic_world / split
            warp = np.load(folder / "gt-warp" / f"{stem}.npy")
            parse = _gray(folder / "image-parse-v3" / f"{stem}.png")
            person, cloth = _rgb(folder / "image" / f"{stem}.jpg"), _rgb(folder / "cloth" / f"{stem}.jpg")
            worn = _gray(folder / "cloth-mask-worn" / f"{stem}.png") > 127
            on = warp[..., 0] >= 0
            # Every upper-clothes pixel is the pair's garment, and nothing else has a warp.
            np.testing.assert_array_equal(on, parse == LIP.UPPER_CLOTHES)
            assert (warp[~on] == -1).all()
            xs, ys = warp[on, 0], warp[on, 1]
            assert xs.max() <= 47 and ys.max() <= 63
            px, py = np.round(xs).astype(int), np.round(ys).astype(int)
            assert worn[py, px].mean() > 0.95
            # Away from the garment's outline, the person pixel has the product pixel's colour.
            inner = cv2.erode(on.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
            keep = inner[on]
            errors.append(np.abs(person[on][keep] - cloth[py, px][keep]).mean())
    assert np.mean(errors) < 14, errors


def test_true_warp_is_not_affine(labelled_world):
    """The worn garment is a non-trivial, non-affine deformation of the product photo."""
    for stem in _stems(labelled_world, "train"):
        warp = np.load(labelled_world / "train" / "gt-warp" / f"{stem}.npy")
        ys, xs = np.nonzero(warp[..., 0] >= 0)
        design = np.stack([xs, ys, np.ones_like(xs)], 1).astype(np.float64)
        target = warp[ys, xs].astype(np.float64)
        solution, *_ = np.linalg.lstsq(design, target, rcond=None)
        residual = np.sqrt(((design @ solution - target) ** 2).sum(1)).mean()
        assert residual > 1.0, stem


def test_neck_label_boxes_are_dark_and_on_the_garment(labelled_world):
    found = 0
    for split in ("train", "test"):
        for stem in _stems(labelled_world, split):
            folder = labelled_world / split
            label = json.loads((folder / "cloth-label" / f"{stem}.json").read_text())
            assert set(label) == {"has_label", "box"}
            if not label["has_label"]:
                assert label["box"] is None
                continue
            found += 1
            x0, y0, x1, y1 = label["box"]
            assert 0 <= x0 < x1 <= 192 and 0 <= y0 < y1 <= 256
            mask = _gray(folder / "cloth-mask" / f"{stem}.jpg") > 127
            worn = _gray(folder / "cloth-mask-worn" / f"{stem}.png") > 127
            assert mask[y0:y1, x0:x1].all() and not worn[y0:y1, x0:x1].any()
            gray = _gray(folder / "cloth" / f"{stem}.jpg").astype(np.float32)
            box = np.zeros_like(mask)
            box[y0:y1, x0:x1] = True
            ring = (cv2.dilate(box.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0) & ~box & mask
            assert gray[box].mean() + 15 < gray[ring].mean(), stem
    assert found >= 3


def test_worn_mask_drops_the_inner_back_collar(synthetic_world, labelled_world):
    for root in (synthetic_world, labelled_world):
        for split in ("train", "test"):
            for stem in _stems(root, split):
                mask = _gray(root / split / "cloth-mask" / f"{stem}.jpg") > 127
                worn = _gray(root / split / "cloth-mask-worn" / f"{stem}.png")
                assert set(np.unique(worn).tolist()) <= {0, 255}
                worn = worn > 127
                assert (worn & ~mask).sum() <= 2
                assert worn.sum() < mask.sum() - 2, stem
                # The product photo is white exactly off the mask.
                cloth = _gray(root / split / "cloth" / f"{stem}.jpg")
                assert cloth[~cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)].min() > 240


def test_unpaired_ground_truth_keeps_the_person(synthetic_world):
    for line in (synthetic_world / "test_pairs.txt").read_text().splitlines():
        person, cloth = (name[:-4] for name in line.split())
        folder = synthetic_world / "test"
        paired_parse = _gray(folder / "image-parse-v3" / f"{person}.png")
        unpaired_parse = _gray(folder / "unpaired-parse" / f"{person}__{cloth}.png")
        head = np.isin(paired_parse, (LIP.HAIR, LIP.FACE))
        np.testing.assert_array_equal(head, np.isin(unpaired_parse, (LIP.HAIR, LIP.FACE)))
        paired = _rgb(folder / "image" / f"{person}.jpg")
        unpaired = _rgb(folder / "unpaired-image" / f"{person}__{cloth}.jpg")
        # JPEG blocks straddle head and garment at 64x48; the rendered pixels are compared exactly below.
        assert np.abs(paired[head] - unpaired[head]).mean() < 8
        garment = (paired_parse == LIP.UPPER_CLOTHES) | (unpaired_parse == LIP.UPPER_CLOTHES)
        assert np.abs(paired[garment] - unpaired[garment]).mean() > 10


def test_unpaired_render_keeps_head_pixels_exactly():
    config = SynthConfig(pairs=2, height=64, width=48, seed=2)
    grid = _Grid.of(64, 48)
    body, own = _world_item(config, 0, "upper", grid)
    _, other = _world_item(config, 1, "upper", grid)
    image, parse, _ = _render(body, own, grid)
    image2, parse2, warp2 = _render(body, other, grid)
    head = np.isin(parse, (LIP.HAIR, LIP.FACE))
    assert head.sum() > 50
    np.testing.assert_array_equal(parse2[head], parse[head])
    np.testing.assert_array_equal(image2[head], image[head])
    assert (image2 != image).any() and (warp2[..., 0] >= 0).sum() > 100


@pytest.mark.parametrize("category, labels", [("lower", {LIP.PANTS, LIP.SKIRT}), ("dress", {LIP.DRESS})])
def test_other_categories(tmp_path, category, labels):
    write_world(tmp_path, SynthConfig(pairs=4, height=64, width=48, seed=1, test_fraction=0.5,
                                      categories=(category,)), progress=False)
    for split in ("train", "test"):
        for stem in _stems(tmp_path, split):
            parse = _gray(tmp_path / split / "image-parse-v3" / f"{stem}.png")
            warp = np.load(tmp_path / split / "gt-warp" / f"{stem}.npy")
            on = warp[..., 0] >= 0
            assert on.sum() > 50 and set(np.unique(parse[on]).tolist()) <= labels
            if category == "dress":
                assert LIP.UPPER_CLOTHES not in parse
    assert json.loads((tmp_path / "meta.json").read_text())["categories"] == [category]


def test_mixed_categories_swap_within_a_category(tmp_path):
    write_world(tmp_path, SynthConfig(pairs=8, height=64, width=48, seed=2, test_fraction=0.5,
                                      categories=("upper", "lower", "dress")), progress=False)

    def worn_labels(stem: str) -> set:
        warp = np.load(tmp_path / "test" / "gt-warp" / f"{stem}.npy")
        parse = _gray(tmp_path / "test" / "image-parse-v3" / f"{stem}.png")
        return set(np.unique(parse[warp[..., 0] >= 0]).tolist())

    kinds = set()
    for line in (tmp_path / "test_pairs.txt").read_text().splitlines():
        person, cloth = (name[:-4] for name in line.split())
        assert person != cloth
        person_kind = LIP.UPPER_CLOTHES in worn_labels(person), LIP.DRESS in worn_labels(person)
        assert person_kind == (LIP.UPPER_CLOTHES in worn_labels(cloth), LIP.DRESS in worn_labels(cloth))
        kinds.add(person_kind)
    assert len(kinds) == 2  # four test pairs: two tops, then two lower garments


def test_bad_values_raise_user_errors(tmp_path):
    existing = tmp_path / "file.txt"
    existing.write_text("x")
    with pytest.raises(UserError, match="existing file"):
        write_world(existing, SynthConfig(pairs=2, height=64, width=48), progress=False)
    with pytest.raises(UserError, match="categories"):
        write_world(tmp_path / "w", SynthConfig(pairs=2, height=64, width=48, categories=("hats",)), progress=False)
    with pytest.raises(UserError, match="height"):
        write_world(tmp_path / "w", SynthConfig(pairs=2, height=60, width=48), progress=False)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        write_world(tmp_path / "busy", SynthConfig(pairs=2, height=64, width=48), progress=False)
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "viton_tf.cli", *args], capture_output=True, text=True,
                          timeout=120)


def test_cli_synth(tmp_path):
    shown = _cli("synth", "--help")
    assert shown.returncode == 0 and "--categories" in shown.stdout
    existing = tmp_path / "file.txt"
    existing.write_text("x")
    failed = _cli("synth", "--out", str(existing), "--pairs", "2", "--height", "64", "--width", "48")
    assert failed.returncode == 2
    assert len(failed.stderr.strip().splitlines()) == 1 and "file.txt" in failed.stderr
    done = _cli("synth", "--out", str(tmp_path / "w"), "--pairs", "2", "--height", "64", "--width", "48",
                "--quiet")
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "w" / "train" / "image").glob("*.jpg"))) == 2


def test_synthetic_world_never_imports_tensorflow():
    code = "import sys, viton_tf.cli, viton_tf.data.synthetic; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr
