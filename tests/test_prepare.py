"""`viton-tf prepare` on the real samples: keypoints, parsing, cloth masks, bad input, OpenPose agreement."""
from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from viton_tf.config import LIP
from viton_tf.prepare.folder import blazepose_to_body25, cloth_mask, pad_to_aspect
from viton_tf.prepare.pose import ssd_anchors

H, W = 256, 192
CORE_JOINTS = (0, 1, 2, 5, 8, 11)  # nose, neck, shoulders, hips (COCO-18)


@pytest.fixture(scope="module")
def models():
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed (setup.py installs it)")
    from viton_tf.assets import ensure_assets
    from viton_tf.errors import UserError

    try:
        return ensure_assets(quiet=True)
    except UserError as error:
        pytest.skip(f"the MediaPipe models cannot be obtained: {error}")


@pytest.fixture(scope="module")
def prepared(models, shared_data, tmp_path_factory):
    """The CLI on the real persons plus three bad photos, and on the real garments."""
    from viton_tf.cli import main

    real = shared_data / "real"
    persons = tmp_path_factory.mktemp("persons")
    for path in sorted((real / "person").glob("*.jpg")):
        shutil.copy(path, persons / path.name)
    first = sorted((real / "person").glob("*.jpg"))[0].read_bytes()
    (persons / "corrupt.jpg").write_bytes(first[: len(first) // 3])
    shutil.copy(sorted((real / "cloth").glob("*.jpg"))[0], persons / "a_cloth.jpg")
    two = [cv2.imread(str(p)) for p in sorted((real / "person").glob("*.jpg"))[:2]]
    cv2.imwrite(str(persons / "two_people.jpg"), np.concatenate(two, axis=1))
    out = tmp_path_factory.mktemp("prepared")
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code = main(["prepare", "--persons", str(persons), "--cloths", str(real / "cloth"), "--out", str(out)])
    return {"out": out, "code": code, "stderr": stderr.getvalue(), "persons": persons,
            "real_persons": sorted(p.stem for p in (real / "person").glob("*.jpg")),
            "real_cloths": sorted(p.stem for p in (real / "cloth").glob("*.jpg"))}


def _keypoints(out: Path, stem: str) -> np.ndarray:
    from viton_tf.data.readers import read_keypoints_json

    return read_keypoints_json(out / "test" / "openpose_json" / f"{stem}_keypoints.json")


def test_bad_photos_are_named_and_the_others_prepared(prepared):
    assert prepared["code"] == 1
    report = json.loads((prepared["out"] / "prepare_report.json").read_text())
    assert sorted(report["errors"]) == ["person:a_cloth", "person:corrupt", "person:two_people"]
    assert "corrupt" in report["errors"]["person:corrupt"]
    assert "no person" in report["errors"]["person:a_cloth"]
    assert "2 persons" in report["errors"]["person:two_people"]
    for name in ("corrupt.jpg", "a_cloth.jpg", "two_people.jpg"):
        lines = [line for line in prepared["stderr"].splitlines() if name in line]
        assert len(lines) == 1, prepared["stderr"]
    prepared_persons = sorted(p.stem for p in (prepared["out"] / "test" / "image").glob("*.jpg"))
    assert prepared_persons == prepared["real_persons"]
    pairs = (prepared["out"] / "test_pairs.txt").read_text().splitlines()
    assert len(pairs) == len(prepared["real_persons"]) * len(prepared["real_cloths"])
    assert pairs[0] == f"{prepared['real_persons'][0]}.jpg {prepared['real_cloths'][0]}.jpg"


def test_every_real_person_has_plausible_confident_keypoints(prepared):
    for stem in prepared["real_persons"]:
        raw = json.loads((prepared["out"] / "test" / "openpose_json" / f"{stem}_keypoints.json").read_text())
        assert len(raw["people"]) == 1 and len(raw["people"][0]["pose_keypoints_2d"]) == 75
        k = _keypoints(prepared["out"], stem)
        assert np.all(k[list(CORE_JOINTS), 2] > 0.5), (stem, k[:, 2])
        assert k[0, 1] < k[1, 1] < k[8, 1] and k[1, 1] < k[11, 1], stem  # nose above neck above hips
        assert max(k[2, 1], k[5, 1]) < min(k[8, 1], k[11, 1]), stem  # shoulders above hips
        assert k[2, 0] < k[1, 0] < k[5, 0], stem  # facing the camera: right shoulder on the image's left
        np.testing.assert_allclose(k[1, :2], (k[2, :2] + k[5, :2]) / 2, atol=0.01)
        inside = k[k[:, 2] > 0]
        assert np.all((inside[:, 0] >= 0) & (inside[:, 0] < W) & (inside[:, 1] >= 0) & (inside[:, 1] < H))


def test_every_real_person_has_face_hair_and_upper_clothes_in_place(prepared):
    for stem in prepared["real_persons"]:
        parsing = cv2.imread(str(prepared["out"] / "test" / "image-parse-v3" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        assert parsing.shape == (H, W) and parsing.dtype == np.uint8
        k = _keypoints(prepared["out"], stem)
        area = {label: int((parsing == label).sum()) for label in (LIP.FACE, LIP.HAIR, LIP.UPPER_CLOTHES)}
        assert area[LIP.FACE] > 0.005 * H * W, (stem, area)
        assert area[LIP.HAIR] > 0.002 * H * W, (stem, area)
        assert area[LIP.UPPER_CLOTHES] > 0.05 * H * W, (stem, area)  # the smallest, a camisole: 0.079
        face_y, face_x = np.nonzero(parsing == LIP.FACE)
        assert abs(face_x.mean() - k[0, 0]) < 12 and abs(face_y.mean() - k[0, 1]) < 15, stem  # face on the nose
        upper_y, _ = np.nonzero(parsing == LIP.UPPER_CLOTHES)
        assert face_y.mean() < k[1, 1] < upper_y.mean() < k[8, 1] + 10, stem
        assert parsing[int(k[1, 1]) + 20, int(k[1, 0])] in (LIP.UPPER_CLOTHES, LIP.NECK), stem  # chest
        assert set(np.unique(parsing)) <= set(range(20))


def test_every_real_garment_mask_covers_a_plausible_share(prepared):
    for stem in prepared["real_cloths"]:
        mask = cv2.imread(str(prepared["out"] / "test" / "cloth-mask" / f"{stem}.jpg"), cv2.IMREAD_GRAYSCALE) > 127
        cloth = cv2.imread(str(prepared["out"] / "test" / "cloth" / f"{stem}.jpg"))
        assert mask.shape == cloth.shape[:2] == (H, W)
        assert 0.1 < mask.mean() < 0.9, (stem, mask.mean())
        assert not mask[0].any() and not mask[:, 0].any(), stem  # the background reaches the border


def test_cloth_masks_match_the_shipped_viton_masks(shared_data):
    folder = shared_data / "viton_cpvton" / "test"
    for path in sorted((folder / "cloth").glob("*.jpg")):
        ours = cloth_mask(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))
        shipped = cv2.imread(str(folder / "cloth-mask" / path.name), cv2.IMREAD_GRAYSCALE) > 127
        iou = (ours & shipped).sum() / (ours | shipped).sum()
        assert iou > 0.85, (path.name, iou)  # measured 0.87-0.94


@pytest.fixture(scope="module")
def prepared_viton(models, shared_data, tmp_path_factory):
    """The CP-VTON samples: the same 256x192 photos with OpenPose keypoints and a LIP parsing."""
    from viton_tf.prepare import prepare_folder

    folder = shared_data / "viton_cpvton" / "test"
    out = tmp_path_factory.mktemp("prepared_viton")
    report = prepare_folder(folder / "image", folder / "cloth", out, H, W, progress=False)
    assert not report.errors
    return folder, out


def _agreement(folder, out):
    from viton_tf.data.readers import read_keypoints_json
    from viton_tf.prepare.accuracy import Agreement

    agreement = Agreement()
    for path in sorted((folder / "image").glob("*.jpg")):
        agreement.add_keypoints(path.stem, _keypoints(out, path.stem),
                                read_keypoints_json(folder / "pose" / f"{path.stem}_keypoints.json"))
        theirs = cv2.imread(str(folder / "image-parse" / f"{path.stem}.png"), cv2.IMREAD_UNCHANGED)
        ours = cv2.imread(str(out / "test" / "image-parse-v3" / f"{path.stem}.png"), cv2.IMREAD_UNCHANGED)
        agreement.add_parsing(path.stem, ours.astype(np.int32), theirs.astype(np.int32))
    return agreement


def test_keypoints_agree_with_openpose_on_viton(prepared_viton):
    from viton_tf.data.readers import read_keypoints_json

    folder, out = prepared_viton
    for path in sorted((folder / "image").glob("*.jpg")):
        ours = _keypoints(out, path.stem)
        theirs = read_keypoints_json(folder / "pose" / f"{path.stem}_keypoints.json")
        both = (ours[:, 2] > 0) & (theirs[:, 2] > 0)
        assert both[list(CORE_JOINTS)].all(), path.name
    agreement = _agreement(folder, out)
    per_photo = {name: float(d.mean()) for name, d in agreement.keypoint_distances.items()}
    assert max(per_photo.values()) < 7.0, per_photo  # measured 3.2-6.3 (tools/prepare_accuracy.py)
    assert agreement.mean_keypoint_distance() <= 5.0, per_photo  # measured 4.89 px


# Per-label IoU floors against the shipped LIP parsings, pooled over the 4 photos, a little under what
# tools/prepare_accuracy.py measures (face 0.889, hair 0.780, neck 0.835, upper clothes 0.909,
# pants 0.830, left arm 0.773, right arm 0.831; the parsing is deterministic). Issue 18's targets:
# arms 0.75, hair 0.80, neck 0.70, face 0.88, upper clothes 0.90, pixel accuracy 0.95.
IOU_FLOORS = {"face": 0.88, "hair": 0.77, "neck": 0.82, "upper clothes": 0.90, "pants": 0.82,
              "left arm": 0.76, "right arm": 0.82}


def test_parsing_agrees_with_the_shipped_viton_parsing(prepared_viton):
    agreement = _agreement(*prepared_viton)
    iou = agreement.iou()
    assert all(iou[key] >= floor for key, floor in IOU_FLOORS.items()), iou
    accuracy = agreement.pixel_accuracy
    assert min(accuracy.values()) > 0.935 and np.mean(list(accuracy.values())) > 0.955, accuracy  # 0.940-0.971


def test_prepared_folder_reads_as_a_dataset(prepared):
    readers = pytest.importorskip("viton_tf.data.readers")
    example = readers.load_example(prepared["out"], f"{prepared['real_persons'][0]}.jpg",
                                   f"{prepared['real_cloths'][0]}.jpg", layout="vitonhd", split="test",
                                   height=H, width=W)
    assert example["person"].shape == (H, W, 3) and example["parsing"].shape == (H, W)
    assert LIP.UPPER_CLOTHES in np.unique(example["parsing"])
    np.testing.assert_allclose(example["keypoints"], _keypoints(prepared["out"], prepared["real_persons"][0]))
    dataset = readers.make_dataset(prepared["out"], split="test", height=H, width=W, batch_size=4)
    batch = next(iter(dataset))
    assert tuple(batch["person"].shape) == (4, H, W, 3) and tuple(batch["keypoints"].shape) == (4, 18, 3)
    assert 0.1 < float(batch["cloth_mask"].numpy().mean()) < 0.9


def test_ssd_anchors_match_mediapipe_counts():
    assert ssd_anchors(224, (8, 16, 32, 32, 32)).shape == (2254, 2)  # pose_detection_cpu.pbtxt: num_boxes
    anchors = ssd_anchors(128, (8, 16, 16, 16))
    assert anchors.shape == (896, 2)  # face_detection_short_range: num_boxes
    np.testing.assert_allclose(anchors[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(anchors[1], anchors[0])  # two anchors per cell


def test_body25_mapping_takes_midpoints_and_drops_unseen_joints():
    landmarks = np.zeros((33, 3), np.float32)
    landmarks[:, 2] = 0.9
    landmarks[:, :2] = 50.0
    landmarks[11] = [120, 80, 0.8]  # left shoulder
    landmarks[12] = [60, 84, 0.95]  # right shoulder
    landmarks[25] = [100, 300, 0.9]  # left knee below the photo
    landmarks[26] = [70, 200, 0.1]  # right knee unsure
    body = blazepose_to_body25(landmarks, H, W)
    np.testing.assert_allclose(body[1], [90, 82, 0.8])  # neck
    np.testing.assert_allclose(body[2], [60, 84, 0.95])
    np.testing.assert_allclose(body[5], [120, 80, 0.8])
    assert np.all(body[13] == 0) and np.all(body[10] == 0)


def test_pad_to_aspect_keeps_the_photo_centred():
    image = np.zeros((100, 100, 3), np.uint8)
    padded, left, top = pad_to_aspect(image, H, W)
    assert padded.shape == (133, 100, 3) and (left, top) == (0, 16)
    padded, left, top = pad_to_aspect(np.zeros((400, 100, 3), np.uint8), H, W)
    assert padded.shape == (400, 300, 3) and (left, top) == (100, 0)


def test_cloth_mask_fills_holes_and_drops_specks():
    cloth = np.full((128, 96, 3), 246, np.uint8)
    cloth[20:110, 20:76] = (200, 30, 30)
    cloth[50:70, 40:56] = 246  # a background-coloured print inside the garment
    cloth[5:7, 85:87] = 0  # dust
    mask = cloth_mask(cloth)
    assert mask[60, 48] and not mask[6, 86] and not mask[10, 10]
    assert abs(int(mask.sum()) - 90 * 56) < 120


def test_lower_garment_kind_tells_trousers_shorts_skirts_and_dresses_apart():
    from viton_tf.prepare.parsing import lower_garment_kind

    height, width, hip_y, torso, centre, scale = 256, 192, 150.0, 90.0, 96.0, 60.0
    upper = np.zeros((height, width), bool)
    upper[60:150, 66:126] = True
    trousers = np.zeros_like(upper)
    trousers[150:, 70:122] = True  # to the frame's bottom: the legs run out of the photo
    shorts = np.zeros_like(upper)
    shorts[150:200, 70:122] = True
    shorts[185:200, 90:102] = False  # the gap between the legs above the hem
    skirt = np.zeros_like(upper)
    skirt[150:210, 64:128] = True
    dress = upper.copy()
    dress[150:230, 60:132] = True
    kind = lambda up, low: lower_garment_kind(up, low, hip_y, torso, centre, scale)
    assert kind(upper, trousers) == "trousers" and kind(upper, shorts) == "trousers"
    assert kind(upper, skirt) == "skirt" and kind(dress, np.zeros_like(upper)) == "dress"
    assert kind(upper, np.zeros_like(upper)) == "none"
