"""Dataset readers: three on-disk layouts into one tf.data pipeline of dict examples.

- "vitonhd": VITON-HD (and the synthetic world): {split}/image, cloth, cloth-mask, image-parse-v3,
  openpose_json (BODY_25), {split}_pairs.txt.
- "cpvton": CP-VTON's VITON: {split}/image, cloth, cloth-mask, image-parse, pose (COCO-18 JSON),
  {split}_pairs.txt.
- "original": the official VITON code's: women_top/<id>_0.jpg person, <id>_1.jpg product,
  segment/<id>_0.jpg.mat, pose/<id>_0.mat, viton_{split}_pairs.txt; no cloth mask is shipped,
  so it is derived from the product photo (viton_tf.data.cloth_mask, the official rule on white).

Decoding runs in Python (OpenCV, scipy.io) inside `tf.numpy_function`, so every error can name the
file and the pair line it came from.
"""
from __future__ import annotations

import json
import re
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from viton_tf.config import BODY25_TO_COCO18, HEIGHT, WIDTH, DataConfig
from viton_tf.data.codecs import from_uint8
from viton_tf.errors import UserError

LAYOUTS = ("vitonhd", "cpvton", "original")
# Keys of every example, with their dtypes (names are tf.string).
FEATURES = ("person", "cloth", "cloth_mask", "parsing", "keypoints", "person_name", "cloth_name")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Pair:
    """One line of a pairs file and the files it needs (role -> path)."""

    person: str
    cloth: str
    line: str  # "line 3 of DIR/train_pairs.txt: '000001_0.jpg 000001_1.jpg'"
    files: dict


# --- layouts ----------------------------------------------------------------------------

def detect_layout(root: Path) -> str:
    """The layout of a dataset folder, from the folders it holds."""
    root = Path(root)
    if (root / "women_top").is_dir() or any(root.glob("viton_*_pairs.txt")):
        return "original"
    for split in ("train", "test"):
        if (root / split / "image-parse-v3").is_dir() or (root / split / "openpose_json").is_dir():
            return "vitonhd"
        if (root / split / "image-parse").is_dir() or (root / split / "pose").is_dir():
            return "cpvton"
    raise UserError(f"{root}: not a dataset folder (expected VITON-HD's train/ or test/ with "
                    "image-parse-v3/ and openpose_json/, CP-VTON's with image-parse/ and pose/, "
                    "or VITON's women_top/ with segment/ and pose/)")


def pairs_path(root: Path, layout: str, split: str) -> Path:
    """Where a layout keeps the pairs file of a split."""
    name = f"viton_{split}_pairs.txt" if layout == "original" else f"{split}_pairs.txt"
    return Path(root) / name


def layout_files(root: Path, layout: str, split: str, person: str, cloth: str) -> dict:
    """The files one pair needs, by role; "original" has no cloth mask file."""
    root, stem = Path(root), Path(person).stem
    if layout == "original":
        return {"person": root / "women_top" / person, "cloth": root / "women_top" / cloth,
                "parsing": root / "segment" / f"{person}.mat", "keypoints": root / "pose" / f"{stem}.mat"}
    folder = root / split
    parse, pose = ("image-parse-v3", "openpose_json") if layout == "vitonhd" else ("image-parse", "pose")
    return {"person": folder / "image" / person, "cloth": folder / "cloth" / cloth,
            "cloth_mask": folder / "cloth-mask" / cloth, "parsing": folder / parse / f"{stem}.png",
            "keypoints": folder / pose / f"{stem}_keypoints.json"}


def _own_cloth(layout: str, person: str) -> str:
    """The product photo of the garment a person wears (VITON names it <id>_1, VITON-HD alike)."""
    if layout == "vitonhd":
        return person
    stem = Path(person).stem
    return (stem[:-2] + "_1" if stem.endswith("_0") else stem) + Path(person).suffix


def pair_lines(path: Path):
    """Each non-empty line of a pairs file as (where, person name, cloth name); `where` names the
    line for error messages. A line without exactly two names is an error naming it."""
    for number, text in enumerate(Path(path).read_text().splitlines(), start=1):
        if not text.strip():
            continue
        names = text.split()
        where = f"line {number} of {path}: '{text.strip()}'"
        if len(names) != 2:
            raise UserError(f"{where}: expected two file names, 'person.jpg cloth.jpg'")
        yield where, names[0], names[1]


def read_pairs(root: Path, layout: str, split: str, pairs_file=None, paired=None,
               skip_bad: bool = False) -> list[Pair]:
    """The pairs of a split whose files all exist; a missing file is a UserError or, with
    `skip_bad`, a warning with the count of skipped pairs. `paired=True` gives every person
    their own garment instead of the file's cloth."""
    path = Path(pairs_file) if pairs_file else pairs_path(root, layout, split)
    if not path.is_file():
        raise UserError(f"{path}: pairs file not found (lines 'person.jpg cloth.jpg')")
    pairs, bad = [], []
    for line, person, cloth in pair_lines(path):
        cloth = _own_cloth(layout, person) if paired else cloth
        files = layout_files(root, layout, split, person, cloth)
        missing = [f for f in files.values() if not f.is_file()]
        if missing:
            message = f"{missing[0]}: file not found (needed by {line})"
            if not skip_bad:
                raise UserError(message)
            bad.append(message)
            continue
        pairs.append(Pair(person, cloth, line, files))
    if bad:
        warnings.warn(f"skipped {len(bad)} of {len(bad) + len(pairs)} pairs with missing files; "
                      f"first: {bad[0]}", stacklevel=3)
    if not pairs:
        raise UserError(f"{path}: no usable pairs")
    return pairs


# --- decoding ---------------------------------------------------------------------------

def _read_bytes(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise UserError(f"{path}: cannot read ({error.strerror})") from None


def _decode(path: Path, flags: int) -> np.ndarray:
    data = _read_bytes(path)
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-64:]:
        # OpenCV fills a truncated JPEG with grey and only prints a warning.
        raise UserError(f"{path}: truncated or corrupt JPEG (no end-of-image marker)")
    bit_depth = 8
    if data[:8] == _PNG_SIGNATURE and flags == cv2.IMREAD_UNCHANGED:
        data, bit_depth = _palette_as_grayscale(data)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None or image.size == 0:
        raise UserError(f"{path}: corrupt or not an image")
    if bit_depth < 8:  # decoders stretch 1/2/4-bit grey to 0..255
        image = image // (255 // (2 ** bit_depth - 1))
    return image


def _palette_as_grayscale(data: bytes) -> tuple[bytes, int]:
    """A palette PNG declared as grayscale instead, so a decoder returns the label ids (the
    palette indices) rather than their colours; other PNGs are returned unchanged."""
    bit_depth, colour_type = data[24], data[25]
    if colour_type != 3:
        return data, 8
    chunks, offset = [data[:8]], 8
    while offset + 8 <= len(data):
        length = struct.unpack(">I", data[offset:offset + 4])[0]
        kind, body = data[offset + 4:offset + 8], data[offset + 8:offset + 8 + length]
        offset += 12 + length
        if kind in (b"PLTE", b"tRNS"):
            continue
        if kind == b"IHDR":
            body = body[:9] + b"\x00" + body[10:]
        chunks.append(struct.pack(">I", len(body)) + kind + body
                      + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    return b"".join(chunks), bit_depth


def read_image(path: Path) -> np.ndarray:
    """An RGB photo as uint8 [h, w, 3]."""
    return cv2.cvtColor(_decode(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def read_mask(path: Path) -> np.ndarray:
    """A grayscale (JPEG) mask thresholded at 127, as bool [h, w]."""
    return _decode(path, cv2.IMREAD_GRAYSCALE) > 127


def read_parsing(path: Path, person_shape: tuple[int, int]) -> np.ndarray:
    """LIP label ids as int32 [h, w], from a grayscale or palette PNG or VITON's segment .mat."""
    path = Path(path)
    if path.suffix == ".mat":
        labels = _read_mat(path, "segment")
        labels = _orient_segment(labels, person_shape, path)
    else:
        labels = _decode(path, cv2.IMREAD_UNCHANGED)
        if labels.ndim != 2:
            raise UserError(f"{path}: expected a grayscale or palette PNG of label ids, "
                            f"got {labels.shape[-1]} colour channels")
    if labels.min() < 0 or labels.max() > 255:
        raise UserError(f"{path}: label ids outside 0..255")
    return labels.astype(np.int32)


def _read_mat(path: Path, *names: str) -> list | np.ndarray:
    from scipy.io import loadmat

    try:
        content = loadmat(str(path))
    except Exception as error:  # scipy raises several types for bad files
        raise UserError(f"{path}: corrupt MATLAB file ({error})") from None
    absent = [name for name in names if name not in content]
    if absent:
        raise UserError(f"{path}: no variable {absent[0]!r} in this MATLAB file")
    values = [np.asarray(content[name]) for name in names]
    return values[0] if len(names) == 1 else values


def _orient_segment(segment: np.ndarray, person_shape: tuple[int, int], path: Path) -> np.ndarray:
    """VITON's segment at the person's size: as stored, transposed, or (utils.py:92-101) a
    transposed square map that is resized to the longer side and cropped."""
    height, width = person_shape
    if segment.shape == (height, width):
        return segment
    if segment.T.shape == (height, width):
        return segment.T
    if segment.ndim == 2 and segment.shape[0] == segment.shape[1]:
        side = max(height, width)
        square = cv2.resize(segment.T.astype(np.uint8), (side, side), interpolation=cv2.INTER_NEAREST)
        return square[:height, :width]
    raise UserError(f"{path}: segment is {segment.shape}, expected the person's size {person_shape}")


def read_keypoints_json(path) -> np.ndarray:
    """OpenPose JSON (BODY_25 or COCO-18; "pose_keypoints_2d" or "pose_keypoints") as float32
    [18, 3] COCO-18; the most confident person if several; zeros if none."""
    try:
        content = json.loads(_read_bytes(Path(path)))
        people = content["people"]
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{path}: not an OpenPose JSON file with a 'people' list") from None
    candidates = []
    for person in people:
        values = person.get("pose_keypoints_2d", person.get("pose_keypoints"))
        if values is None:
            raise UserError(f"{path}: a person without 'pose_keypoints_2d' or 'pose_keypoints'")
        values = np.asarray(values, np.float32).reshape(-1)
        if values.size not in (25 * 3, 18 * 3):
            raise UserError(f"{path}: {values.size} pose values, expected 75 (BODY_25) or 54 (COCO-18)")
        values = values.reshape(-1, 3)
        candidates.append(values[list(BODY25_TO_COCO18)] if len(values) == 25 else values)
    if not candidates:
        return np.zeros((18, 3), np.float32)
    keypoints = max(candidates, key=lambda k: float(k[:, 2].sum()))
    return _clean_keypoints(keypoints)


def read_keypoints_mat(path) -> np.ndarray:
    """VITON's pose .mat (OpenPose `candidate` N x 4, `subset` 1 x 20) as float32 [18, 3]."""
    candidate, subset = _read_mat(Path(path), "candidate", "subset")
    if subset.ndim != 2 or subset.shape[1] < 18 or candidate.ndim != 2 or candidate.shape[1] < 3:
        raise UserError(f"{path}: expected subset 1 x 20 and candidate N x 4, "
                        f"got {subset.shape} and {candidate.shape}")
    keypoints = np.zeros((18, 3), np.float32)
    if subset.shape[0] == 0:
        return keypoints
    best = subset[int(np.argmax(subset[:, -2]))] if subset.shape[1] >= 20 else subset[0]
    for joint, index in enumerate(best[:18]):
        if index >= 0:  # utils.py:33 (-1 marks a missing joint)
            keypoints[joint] = candidate[int(index), :3]
    return _clean_keypoints(keypoints)


def _clean_keypoints(keypoints: np.ndarray) -> np.ndarray:
    keypoints = np.asarray(keypoints, np.float32).copy()
    keypoints[keypoints[:, 2] <= 0] = 0.0
    return keypoints


# --- one example ------------------------------------------------------------------------

def _resize(image: np.ndarray, height: int, width: int, nearest: bool = False) -> np.ndarray:
    if image.shape[:2] == (height, width):
        return image
    if nearest:
        interpolation = cv2.INTER_NEAREST
    elif image.shape[0] >= height and image.shape[1] >= width:
        interpolation = cv2.INTER_AREA
    else:
        interpolation = cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def decode_files(files: dict, height: int, width: int,
                 cloth_threshold: float = DataConfig.cloth_foreground_threshold) -> dict:
    """One pair's files (see `layout_files`) as numpy arrays at height x width."""
    person = read_image(files["person"])
    photo = read_image(files["cloth"])
    cloth = _resize(photo, height, width)
    if "cloth_mask" in files:
        cloth_mask = read_mask(files["cloth_mask"])
        if cloth_mask.shape != photo.shape[:2]:
            raise UserError(f"{files['cloth_mask']}: mask is {cloth_mask.shape}, "
                            f"its cloth photo {photo.shape[:2]}")
        cloth_mask = _resize(cloth_mask.astype(np.float32), height, width) > 0.5
    else:  # from the resized photo, as the exported model does
        from viton_tf.data.cloth_mask import cloth_mask_from_uint8

        cloth_mask = cloth_mask_from_uint8(cloth, cloth_threshold)
    parsing = read_parsing(files["parsing"], person.shape[:2])
    keypoints_file = Path(files["keypoints"])
    if keypoints_file.suffix == ".mat":
        keypoints = read_keypoints_mat(keypoints_file)
    else:
        keypoints = read_keypoints_json(keypoints_file)

    scale = np.array([width / person.shape[1], height / person.shape[0], 1.0], np.float32)
    return {
        "person": from_uint8(_resize(person, height, width)),
        "cloth": from_uint8(cloth),
        "cloth_mask": cloth_mask.astype(np.float32)[..., None],
        "parsing": _resize(parsing, height, width, nearest=True).astype(np.int32),
        "keypoints": (keypoints * scale).astype(np.float32),
    }


def load_example(root, person_name: str, cloth_name: str, layout: str = "auto", split: str = "train",
                 height: int = HEIGHT, width: int = WIDTH) -> dict:
    """One example as a dict of numpy arrays (the keys of `FEATURES`)."""
    root = _check_root(root)
    layout = detect_layout(root) if layout == "auto" else _check_layout(layout)
    files = layout_files(root, layout, split, person_name, cloth_name)
    for path in files.values():
        if not path.is_file():
            raise UserError(f"{path}: file not found (needed by pair '{person_name} {cloth_name}')")
    example = decode_files(files, height, width)
    example["person_name"] = np.array(person_name.encode())
    example["cloth_name"] = np.array(cloth_name.encode())
    return example


def _check_root(root) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: dataset folder not found")
    return root


def _check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise UserError(f"layout {layout!r}: expected 'auto' or one of {', '.join(LAYOUTS)}")
    return layout


# --- the pipeline -----------------------------------------------------------------------

def make_dataset(root, layout: str = "auto", split: str = "train", height: int = HEIGHT,
                 width: int = WIDTH, batch_size: int | None = None, shuffle: bool = False,
                 seed: int = 0, skip_bad: bool = False, pairs_file=None, paired=None):
    """A tf.data.Dataset of dict examples (see `FEATURES`), decoded in parallel and prefetched;
    the order is the pairs file's, or a seeded shuffle of it. Missing files are found up front,
    corrupt ones while iterating; either is an error naming the file and the pair line, or with
    `skip_bad` a warning with the count of skipped pairs."""
    import tensorflow as tf

    root = _check_root(root)
    layout = detect_layout(root) if layout == "auto" else _check_layout(layout)
    if split not in ("train", "test"):
        raise UserError(f"split {split!r}: expected 'train' or 'test'")
    pairs = read_pairs(root, layout, split, pairs_file, paired, skip_bad)
    skipped = []

    def load(index):
        pair = pairs[int(index)]
        try:
            example = decode_files(pair.files, height, width)
        except UserError as error:
            if not skip_bad:
                raise UserError(f"{error} (in {pair.line})") from None
            skipped.append(pair.line)
            warnings.warn(f"skipped {len(skipped)} pair(s) with corrupt files so far; "
                          f"this one: {error} (in {pair.line})", stacklevel=2)
            return _empty_example(height, width) + (False,)
        return tuple(example[key] for key in FEATURES[:5]) + (True,)

    person_names = tf.constant([p.person for p in pairs])
    cloth_names = tf.constant([p.cloth for p in pairs])

    def to_example(index):
        values = tf.numpy_function(
            load, [index], [tf.float32, tf.float32, tf.float32, tf.int32, tf.float32, tf.bool],
            stateful=False)
        shapes = ([height, width, 3], [height, width, 3], [height, width, 1], [height, width], [18, 3], [])
        for value, shape in zip(values, shapes):
            value.set_shape(shape)
        example = dict(zip(FEATURES[:5], values[:5]))
        example["person_name"] = tf.gather(person_names, index)
        example["cloth_name"] = tf.gather(cloth_names, index)
        return example, values[5]

    dataset = tf.data.Dataset.range(len(pairs))
    if shuffle:
        dataset = dataset.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(to_example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if skip_bad:
        dataset = dataset.filter(lambda example, ok: ok)
    dataset = dataset.map(lambda example, ok: example)
    if batch_size:
        dataset = dataset.batch(batch_size)
    return dataset.prefetch(tf.data.AUTOTUNE)


def as_user_error(error: Exception) -> UserError | None:
    """The UserError a reader raised while iterating, recovered from the tf.errors.OpError that
    tf.data wraps it in (so a job can print its one line); None for any other error."""
    match = re.search(r"UserError: ([^\n]+)", str(error))
    return UserError(match.group(1)) if match else None


def _empty_example(height: int, width: int) -> tuple:
    return (np.zeros((height, width, 3), np.float32), np.zeros((height, width, 3), np.float32),
            np.zeros((height, width, 1), np.float32), np.zeros((height, width), np.int32),
            np.zeros((18, 3), np.float32))
