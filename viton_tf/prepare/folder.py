"""Own photos -> the VITON-HD layout (pose, parsing, cloth masks), offline; `viton-tf prepare` runs it.

Person photos get BlazePose keypoints written as OpenPose BODY_25 JSON and a LIP parsing built
from the person mask, the face mesh and the keypoints (pose.py, parsing.py);
product photos on a white or near-white background get a mask. Everything lands in
OUT/test/{image,cloth,cloth-mask,image-parse-v3,openpose_json}/ with OUT/test_pairs.txt.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from viton_tf.assets import model_path
from viton_tf.data.cloth_mask import cloth_mask_from_uint8
from viton_tf.data.codecs import from_uint8, to_uint8
from viton_tf.data.readers import pair_lines, read_image
from viton_tf.errors import UserError
from viton_tf.prepare.parsing import parse_person
from viton_tf.prepare.pose import NoPerson, analyse_person

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
REQUIRED_MODELS = ("pose_detection.tflite", "pose_landmark_full.tflite", "selfie_segmentation.tflite",
                   "face_landmark.tflite", "hand_landmark_full.tflite")
# A joint is written when BlazePose sees it this surely and it lies inside the photo; OpenPose
# leaves joints out of the frame at (0, 0, 0), so should we.
MIN_VISIBILITY = 0.3
# The parsing is built at least this tall, then resized to the output size.
MIN_PARSE_HEIGHT = 256
# BlazePose landmark index of each BODY_25 joint; neck (1) and mid-hip (8) are midpoints of two.
BODY25_FROM_BLAZEPOSE = (0, (11, 12), 12, 14, 16, 11, 13, 15, (23, 24), 24, 26, 28, 23, 25, 27,
                         5, 2, 8, 7, 31, 31, 29, 32, 32, 30)
MIN_CLOTH_FRACTION = 0.02
# Where OpenPose puts the joints that BlazePose places elsewhere, fitted (least squares) on the 4 VITON photos
# shipped with OpenPose keypoints (../shared/data/viton_cpvton): OpenPose's ears sit this many times farther
# from their midpoint (at the outer ear, BlazePose's at the ear canal), and its hips this far down the
# neck-to-mid-hip axis, in torso lengths (measured +0.01: on these 4 the two hips agree on average).
EAR_SPREAD = 1.36
HIP_DROP = 0.01


class PhotoError(Exception):
    """One photo could not be prepared; the message says why (the caller names the file)."""


@dataclass
class Report:
    """What happened to each photo: seconds per step, or the error."""

    timings: dict[str, dict[str, float]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


# --- geometry ---------------------------------------------------------------------------

def pad_to_aspect(image: np.ndarray, height: int, width: int) -> tuple[np.ndarray, int, int]:
    """Pad (repeating the border) to the aspect ratio height:width, centred; returns it and the offsets."""
    h, w = image.shape[:2]
    if h * width > w * height:  # too tall: widen
        new_w, new_h = int(round(h * width / height)), h
    else:
        new_w, new_h = w, int(round(w * height / width))
    left, top = (new_w - w) // 2, (new_h - h) // 2
    padded = cv2.copyMakeBorder(image, top, new_h - h - top, left, new_w - w - left, cv2.BORDER_REPLICATE)
    return padded, left, top


def blazepose_to_body25(landmarks: np.ndarray, height: int, width: int) -> np.ndarray:
    """[33, 3] BlazePose (x, y, visibility) -> [25, 3] OpenPose BODY_25; unseen joints are (0, 0, 0)."""
    body = np.zeros((25, 3), np.float32)
    for index, source in enumerate(BODY25_FROM_BLAZEPOSE):
        if isinstance(source, tuple):
            a, b = landmarks[source[0]], landmarks[source[1]]
            body[index] = [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2, min(a[2], b[2])]
        else:
            body[index] = landmarks[source]
    ears, hips = [17, 18], [9, 12]
    ear_middle = body[ears, :2].mean(0)
    body[ears, :2] = ear_middle + EAR_SPREAD * (body[ears, :2] - ear_middle)
    body[hips + [8], :2] += HIP_DROP * (body[8, :2] - body[1, :2])
    inside = (body[:, 0] >= 0) & (body[:, 0] <= width - 1) & (body[:, 1] >= 0) & (body[:, 1] <= height - 1)
    body[~inside | (body[:, 2] < MIN_VISIBILITY)] = 0.0
    return body


def openpose_json(body25: np.ndarray) -> dict:
    return {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d":
                                        [round(float(v), 3) for v in body25.reshape(-1)]}]}


# --- persons ----------------------------------------------------------------------------

def prepare_person(image: np.ndarray, height: int, width: int, timing: dict | None = None):
    """An RGB photo -> (person [H, W, 3] uint8, parsing [H, W] int32, BODY_25 keypoints [25, 3]) at H x W."""
    timing = {} if timing is None else timing
    start = time.perf_counter()
    framed, _, _ = pad_to_aspect(image, height, width)
    try:
        analysis = analyse_person(framed)
    except NoPerson as error:
        raise PhotoError(str(error)) from None
    timing["pose"] = time.perf_counter() - start

    start = time.perf_counter()
    parse_h = max(height, MIN_PARSE_HEIGHT)
    parse_w = int(round(parse_h * width / height))
    scale = parse_h / framed.shape[0]
    small = cv2.resize(framed, (parse_w, parse_h), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(analysis.person_mask, (parse_w, parse_h), interpolation=cv2.INTER_AREA)
    landmarks = analysis.landmarks.copy()
    landmarks[:, :2] *= scale
    parsing = parse_person(small, mask, landmarks, analysis.face_mesh * scale, analysis.hands * scale)
    parsing = cv2.resize(parsing.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
    timing["parsing"] = time.perf_counter() - start

    out_scale = height / framed.shape[0]
    landmarks = analysis.landmarks.copy()
    landmarks[:, :2] *= out_scale
    body25 = blazepose_to_body25(landmarks, height, width)
    person = cv2.resize(framed, (width, height), interpolation=cv2.INTER_AREA)
    return person, parsing.astype(np.int32), body25


# --- product photos ---------------------------------------------------------------------

def cloth_mask(cloth: np.ndarray) -> np.ndarray:
    """Garment mask of a product photo (viton_tf.data.cloth_mask), keeping only its largest
    component: real photos carry tags, shadows and dust beside the garment."""
    mask = cloth_mask_from_uint8(cloth).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return np.zeros(mask.shape, bool)
    # An 8-connected component of a hole-filled mask encloses no background, so none is left to fill.
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def _cloth_fixes():
    """The neck-label and collar fixes as one traced function:
    (cloth [1,H,W,3], mask [1,H,W,1]) -> (cloth without the neck label, mask without the inner collar)."""
    import tensorflow as tf

    from viton_tf.warp.cloth_fixes import fix_cloth

    return tf.function(lambda cloth, mask: fix_cloth(cloth, mask, True, True))


def prepare_cloth(image: np.ndarray, height: int, width: int, fixes=None):
    """A product photo -> (cloth [H, W, 3] uint8, mask [H, W] bool, worn mask [H, W] bool or None)."""
    framed, _, _ = pad_to_aspect(image, height, width)
    cloth = cv2.resize(framed, (width, height), interpolation=cv2.INTER_AREA)
    mask = cloth_mask(cloth)
    fraction = float(mask.mean())
    if fraction < MIN_CLOTH_FRACTION:
        raise PhotoError(f"no garment found on a plain light background (mask covers {fraction:.1%})")
    worn = None
    if fixes is not None:
        cleaned, worn = fixes(from_uint8(cloth[None]), mask[None, :, :, None].astype(np.float32))
        cloth = to_uint8(np.asarray(cleaned)[0])
        worn = np.asarray(worn)[0, :, :, 0] > 0.5
    return cloth, mask, worn


# --- the command ------------------------------------------------------------------------

def _photos(folder: Path, role: str) -> dict[str, Path]:
    """stem -> path of the image files in a folder."""
    photos: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        if path.stem in photos:
            raise UserError(f"{folder}: two {role} photos named {path.stem} "
                            f"({photos[path.stem].name}, {path.name}); rename one")
        photos[path.stem] = path
    if not photos:
        raise UserError(f"{folder}: no {role} photos ({', '.join(IMAGE_SUFFIXES)})")
    return photos


def _pairs(pairs_file: Path | None, persons: dict, cloths: dict) -> list[tuple[str, str]]:
    if pairs_file is None:
        return [(p, c) for p in persons for c in cloths]
    pairs = []
    for line, person_name, cloth_name in pair_lines(pairs_file):
        person, cloth = Path(person_name).stem, Path(cloth_name).stem
        if person not in persons:
            raise UserError(f"{line}: no person photo {person_name} in the persons folder")
        if cloth not in cloths:
            raise UserError(f"{line}: no product photo {cloth_name} in the cloths folder")
        pairs.append((person, cloth))
    return pairs


def _write_image(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]):
        raise UserError(f"{path}: cannot write")


def _write_gray(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image.astype(np.uint8)):
        raise UserError(f"{path}: cannot write")


def prepare_folder(persons_dir: Path, cloths_dir: Path, out: Path, height: int, width: int,
                   pairs_file: Path | None = None, progress: bool = True, overwrite: bool = False) -> Report:
    """Prepare every photo of two folders into OUT (VITON-HD layout, split "test"). A dataset already in OUT
    is an error (old and new files would mix) unless `overwrite`, which removes it first."""
    from tqdm import tqdm

    existing = [Path(out) / name for name in ("test", "test_pairs.txt") if (Path(out) / name).exists()]
    if existing and not overwrite:
        raise UserError(f"--out {out}: already holds a dataset ({existing[0].name}); choose an empty folder "
                        "or pass --overwrite to replace it")
    for path in existing:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    for name in REQUIRED_MODELS:
        model_path(name)  # a missing model stops everything, with how to get it
    persons, cloths = _photos(Path(persons_dir), "person"), _photos(Path(cloths_dir), "product")
    pairs = _pairs(pairs_file, persons, cloths)
    split = Path(out) / "test"
    fixes = _cloth_fixes()
    report = Report()
    jobs = [("person", stem, path) for stem, path in persons.items()]
    jobs += [("cloth", stem, path) for stem, path in cloths.items()]
    for role, stem, path in tqdm(jobs, desc="prepare", unit="photo", disable=not progress):
        key = f"{role}:{stem}"
        timing: dict[str, float] = {}
        start = time.perf_counter()
        try:
            image = read_image(path)
            if role == "person":
                person, parsing, body25 = prepare_person(image, height, width, timing)
                _write_image(split / "image" / f"{stem}.jpg", person)
                _write_gray(split / "image-parse-v3" / f"{stem}.png", parsing)
                (split / "openpose_json").mkdir(parents=True, exist_ok=True)
                (split / "openpose_json" / f"{stem}_keypoints.json").write_text(json.dumps(openpose_json(body25)))
            else:
                cloth, mask, worn = prepare_cloth(image, height, width, fixes)
                _write_image(split / "cloth" / f"{stem}.jpg", cloth)
                _write_gray(split / "cloth-mask" / f"{stem}.jpg", mask * 255)
                if worn is not None:
                    _write_gray(split / "cloth-mask-worn" / f"{stem}.png", worn * 255)
        except (PhotoError, UserError) as error:
            message = str(error)
            report.errors[key] = message if str(path) in message else f"{path}: {message}"
            tqdm.write(f"viton-tf prepare: {report.errors[key]}", file=sys.stderr)
            continue
        timing["total"] = time.perf_counter() - start
        report.timings[key] = timing
    good = [(p, c) for p, c in pairs if f"person:{p}" in report.timings and f"cloth:{c}" in report.timings]
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "test_pairs.txt").write_text("".join(f"{p}.jpg {c}.jpg\n" for p, c in good))
    (Path(out) / "prepare_report.json").write_text(json.dumps(
        {"height": height, "width": width, "timings": report.timings, "errors": report.errors,
         "pairs": len(good), "pairs_dropped": len(pairs) - len(good)}, indent=2))
    return report


def summary(report: Report) -> str:
    """Per-photo timings and failures, a few lines."""
    lines = []
    for role in ("person", "cloth"):
        totals = {k.split(":", 1)[1]: t for k, t in report.timings.items() if k.startswith(role + ":")}
        if not totals:
            continue
        seconds = np.array([t["total"] for t in totals.values()])
        slowest = max(totals, key=lambda k: totals[k]["total"])
        steps = ""
        if role == "person":
            steps = (f" (pose {np.mean([t['pose'] for t in totals.values()]):.2f} s, "
                     f"parsing {np.mean([t['parsing'] for t in totals.values()]):.2f} s)")
        lines.append(f"{len(totals)} {role} photos: {seconds.mean():.2f} s per photo{steps}, "
                     f"slowest {slowest} {seconds.max():.2f} s")
    if report.errors:
        lines.append(f"{len(report.errors)} failed: " + ", ".join(k.split(':', 1)[1] for k in report.errors))
    return "\n".join(lines)
