"""Dataset readers: three on-disk layouts into one tf.data pipeline of dict examples.

- "vitonhd": VITON-HD (and the synthetic world): {split}/image, cloth, cloth-mask, image-parse-v3,
  openpose_json (BODY_25), {split}_pairs.txt.
- "cpvton": CP-VTON's VITON: {split}/image, cloth, cloth-mask, image-parse, pose (COCO-18 JSON),
  {split}_pairs.txt.
- "original": the official VITON code's: women_top/<id>_0.jpg person, <id>_1.jpg product,
  segment/<id>_0.jpg.mat, pose/<id>_0.mat, viton_{split}_pairs.txt; no cloth mask is shipped,
  so it is derived from the product photo (viton_tf.data.cloth_mask, the official rule on white).
- "dresscode": DressCode's, as aimagelab/dress-code's data/dataset.py reads it: one folder per category
  (upper_body, lower_body, dresses) holding images/<id>_0.jpg persons and <id>_1.jpg products,
  label_maps/<id>_4.png (ATR labels: config.DRESSCODE_TO_LIP), keypoints/<id>_2.json (COCO-18 in a
  384 x 512 frame) and its own train_pairs.txt, test_pairs_paired.txt, test_pairs_unpaired.txt; the
  category of a pair is its folder's, and the cloth mask comes from the product photo as for "original".

The pipeline is TF ops end to end (tf.io.read_file, the exported model's decoders and resize, the cloth
mask and the representation): no Python per example. What TF cannot read is converted once up front
(`pair_table`: the keypoint files into one array, VITON's segment .mat files into PNGs), and every file
is checked there, so an error names the file and the pair line. The single-file readers below (OpenCV,
scipy.io) serve those conversions and `viton-tf prepare`/`evaluate`.
"""
from __future__ import annotations

import json
import os
import re
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from viton_tf.config import (BODY25_TO_COCO18, CATEGORIES, CATEGORY_NAMES, DRESSCODE_FOLDERS,
                             DRESSCODE_KEYPOINT_FRAME, DRESSCODE_TO_LIP, HEIGHT, LIP, WIDTH, DataConfig)
from viton_tf.errors import UserError

LAYOUTS = ("vitonhd", "cpvton", "original", "dresscode")
# Keys of every example, with their dtypes (names and the category are tf.string).
FEATURES = ("person", "cloth", "cloth_mask", "parsing", "keypoints", "person_name", "cloth_name", "category")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Pair:
    """One line of a pairs file and the files it needs (role -> path)."""

    person: str
    cloth: str
    line: str  # "line 3 of DIR/train_pairs.txt: '000001_0.jpg 000001_1.jpg'"
    files: dict
    category: str = "upper"  # the garment's (config.CATEGORIES)
    layout: str = "vitonhd"  # how its parsing and keypoints are read (LAYOUTS)


# --- layouts ----------------------------------------------------------------------------

def detect_layout(root: Path) -> str:
    """The layout of a dataset folder, from the folders it holds."""
    root = Path(root)
    if any((root / folder / "images").is_dir() for folder in DRESSCODE_FOLDERS.values()):
        return "dresscode"
    if (root / "women_top").is_dir() or any(root.glob("viton_*_pairs.txt")):
        return "original"
    for split in ("train", "test"):
        if (root / split / "image-parse-v3").is_dir() or (root / split / "openpose_json").is_dir():
            return "vitonhd"
        if (root / split / "image-parse").is_dir() or (root / split / "pose").is_dir():
            return "cpvton"
    raise UserError(f"{root}: not a dataset folder (expected VITON-HD's train/ or test/ with "
                    "image-parse-v3/ and openpose_json/, CP-VTON's with image-parse/ and pose/, "
                    "VITON's women_top/ with segment/ and pose/, or DressCode's upper_body/, lower_body/ or "
                    "dresses/ with images/)")


# The parse labels of the worn upper garment in each layout: upper clothes, dress and coat, as VITON-HD's
# and CP-VTON's data loaders count them (LIP ids; VITON's segment maps use the same). The synthetic world
# paints its tops as upper clothes (and its other categories with their own labels: config.CATEGORIES).
UPPER_WEAR = (LIP.UPPER_CLOTHES, LIP.DRESS, LIP.COAT)


def layout_garment_labels(root: Path) -> tuple[int, ...]:
    """The labels of the upper garment in a dataset folder (DataConfig.garment_labels): its layout's, or the
    synthetic world's."""
    if (Path(root) / "meta.json").is_file():
        synthetic_categories(root)
        return (LIP.UPPER_CLOTHES,)
    # DressCode has a category of its own for dresses, and ATR no coat label: its upper garment is upper clothes.
    return CATEGORIES["upper"].garment_labels if detect_layout(root) == "dresscode" else UPPER_WEAR


def synthetic_categories(root: Path) -> dict[str, str]:
    """A synthetic world's category of each person (stem -> name), from its meta.json; {} for a world written
    before categories were recorded (all upper)."""
    meta = Path(root) / "meta.json"
    try:
        content = json.loads(meta.read_text())
        category_of = content.get("category_of", {})
        unknown = sorted({name for name in list(category_of.values()) + content["categories"]} - set(CATEGORIES))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise UserError(f"{meta}: not a synthetic world's meta.json with known 'categories' ({error})") from None
    if unknown:
        raise UserError(f"{meta}: unknown categories {unknown} (known: {', '.join(CATEGORY_NAMES)})")
    return category_of


def pairs_path(root: Path, layout: str, split: str, paired=None) -> Path:
    """Where a layout keeps the pairs file of a split (DressCode: each category folder keeps its own, this name;
    its test split has a paired and an unpaired file)."""
    if layout == "dresscode":
        return Path(root) / ("train_pairs.txt" if split == "train" else
                             f"test_pairs_{'paired' if paired else 'unpaired'}.txt")
    name = f"viton_{split}_pairs.txt" if layout == "original" else f"{split}_pairs.txt"
    return Path(root) / name


def _pair_sources(root: Path, layout: str, split: str, pairs_file, paired) -> list[tuple[Path, str | None]]:
    """The pairs files to read, each with the category of its pairs (None: the dataset's own record of it)."""
    if pairs_file:
        return [(Path(pairs_file), None)]
    if layout != "dresscode":
        return [(pairs_path(root, layout, split), None)]
    name = pairs_path(Path(), layout, split, paired)
    return [(Path(root) / folder / name, category) for category, folder in DRESSCODE_FOLDERS.items()
            if (Path(root) / folder).is_dir()]


def dresscode_category(root: Path, person: str) -> str:
    """The category of a DressCode person: the one whose folder holds the photo."""
    for category, folder in DRESSCODE_FOLDERS.items():
        if (Path(root) / folder / "images" / person).is_file():
            return category
    raise UserError(f"{person}: not in any of {', '.join(f'{root}/{f}/images' for f in DRESSCODE_FOLDERS.values())}")


def layout_files(root: Path, layout: str, split: str, person: str, cloth: str, category: str | None = None) -> dict:
    """The files one pair needs, by role; "original" and "dresscode" have no cloth mask file. A DressCode pair's
    files are in its category's folder (found from the person photo when `category` is None)."""
    root, stem = Path(root), Path(person).stem
    if layout == "dresscode":
        folder = root / DRESSCODE_FOLDERS[category or dresscode_category(root, person)]
        key = stem[:-2] if stem.endswith("_0") else stem
        return {"person": folder / "images" / person, "cloth": folder / "images" / cloth,
                "parsing": folder / "label_maps" / f"{key}_4.png", "keypoints": folder / "keypoints" / f"{key}_2.json"}
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
    pairs, bad = _read_pairs(root, layout, split, pairs_file, paired, skip_bad)
    if bad:
        warnings.warn(f"skipped {len(bad)} of {len(bad) + len(pairs)} pairs with missing files; "
                      f"first: {bad[0]}", stacklevel=2)
    if not pairs:
        raise UserError(f"{pairs_file or pairs_path(root, layout, split, paired)}: no usable pairs")
    return pairs


def _read_pairs(root: Path, layout: str, split: str, pairs_file, paired, skip_bad: bool):
    """(pairs whose files exist, messages of the pairs skipped for a missing file)."""
    synthetic = (Path(root) / "meta.json").is_file() and layout != "dresscode"
    category_of = synthetic_categories(root) if synthetic else {}
    pairs, bad = [], []
    for path, folder_category in _pair_sources(root, layout, split, pairs_file, paired):
        if not path.is_file():
            raise UserError(f"{path}: pairs file not found (lines 'person.jpg cloth.jpg')")
        for line, person, cloth in pair_lines(path):
            cloth = _own_cloth(layout, person) if paired else cloth
            try:
                category = folder_category or (dresscode_category(root, person) if layout == "dresscode"
                                               else category_of.get(Path(person).stem, "upper"))
                files = layout_files(root, layout, split, person, cloth, category)
                missing = [f for f in files.values() if not f.is_file()]
                if missing:
                    raise UserError(f"{missing[0]}: file not found")
            except UserError as error:
                if not skip_bad:
                    raise UserError(f"{error} (needed by {line})") from None
                bad.append(f"{error} (needed by {line})")
                continue
            pairs.append(Pair(person, cloth, line, files, category, layout))
    return pairs, bad


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


def read_keypoints_dresscode(path) -> np.ndarray:
    """DressCode's keypoint JSON ({"keypoints": 18 x [x, y, score, id]}, COCO-18 in its 384 x 512 frame) as
    float32 [18, 3] in that frame; a joint at x <= 1 and y <= 1 is missing, as dataset.py reads it."""
    try:
        values = np.asarray(json.loads(_read_bytes(Path(path)))["keypoints"], np.float32)
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{path}: not a DressCode keypoint file (a JSON object with 'keypoints')") from None
    if values.shape != (18, 4) and values.shape != (18, 3):
        raise UserError(f"{path}: keypoints are {list(values.shape)}, expected 18 x [x, y, score, id]")
    keypoints = values[:, :3].copy()
    present = (keypoints[:, 0] > 1) & (keypoints[:, 1] > 1)
    keypoints[:, 2] = np.where(keypoints[:, 2] > 0, keypoints[:, 2], 1.0)
    keypoints[~present] = 0.0
    return keypoints


def _clean_keypoints(keypoints: np.ndarray) -> np.ndarray:
    keypoints = np.asarray(keypoints, np.float32).copy()
    keypoints[keypoints[:, 2] <= 0] = 0.0
    return keypoints


# --- checking the pairs up front, converting what TF cannot read --------------------------

def _header_problem(path: Path) -> str | None:
    """What is wrong with an image file, from its first and last bytes (cheap: no decoding); None if
    nothing. The in-graph decoders see only what passes this."""
    try:
        with open(path, "rb") as f:
            head = f.read(32)
            size = f.seek(0, 2)
            f.seek(max(0, size - 64))
            tail = f.read()
    except OSError as error:
        return f"{path}: cannot read ({error.strerror})"
    if head[:2] == b"\xff\xd8":
        # A truncated JPEG decodes to grey in some decoders, with only a warning.
        return None if b"\xff\xd9" in tail else f"{path}: truncated or corrupt JPEG (no end-of-image marker)"
    if head[:8] == _PNG_SIGNATURE:
        return None if b"IEND" in tail else f"{path}: truncated or corrupt PNG (no IEND chunk)"
    return f"{path}: corrupt or not an image (expected a JPEG or PNG)"


def _segment_png(segment: Path, person: Path) -> Path:
    """VITON's segment .mat as a grayscale PNG of label ids at the person's size, converted once into a
    folder of the system's temporary space (kept while newer than the .mat)."""
    import hashlib
    import tempfile

    key = hashlib.sha1(str(segment.resolve().parent).encode()).hexdigest()[:12]
    png = Path(tempfile.gettempdir()) / f"viton-tf-segments-{key}" / f"{segment.name}.png"
    if png.is_file() and png.stat().st_mtime >= segment.stat().st_mtime:
        return png
    size = _jpeg_or_png_size(person)
    if size is None:
        raise UserError(f"{person}: corrupt or not an image")
    labels = read_parsing(segment, size).astype(np.uint8)
    png.parent.mkdir(parents=True, exist_ok=True)
    partial = png.with_suffix(f".{os.getpid()}.png")
    cv2.imwrite(str(partial), labels)
    partial.replace(png)
    return png


def _jpeg_or_png_size(path: Path) -> tuple[int, int] | None:
    """(height, width) of a JPEG or PNG from its header (a full decode only where the header is unusual)."""
    data = _read_bytes(path)
    if data[:8] == _PNG_SIGNATURE:
        width, height = struct.unpack(">II", data[16:24])
        return height, width
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    return None if image is None else image.shape[:2]


@dataclass(frozen=True)
class PairTable:
    """The checked pairs of a split as the columns a tf.data pipeline indexes: file names, the pair
    lines (for error messages) and the keypoints, parsed once up front (float32 [N, 18, 3], in pixels
    of the person photo or of the layout's keypoint frame: 0.8 MB for VITON-HD's 11,647 pairs)."""

    pairs: tuple
    columns: dict  # name -> numpy array [N, ...]

    @property
    def labels(self) -> str:
        """The parsing's label set: "dresscode" (ATR, mapped to LIP in decode_row) or "lip"."""
        return "dresscode" if self.pairs and self.pairs[0].layout == "dresscode" else "lip"

    def __len__(self) -> int:
        return len(self.pairs)

    def subset(self, start: int, stop: int) -> "PairTable":
        """Pairs start..stop-1 (e.g. a held-out tail for validation)."""
        return PairTable(self.pairs[start:stop], {name: values[start:stop] for name, values in self.columns.items()})

    def row(self, index):
        """The columns of pair `index` (a scalar tensor) as tensors."""
        import tensorflow as tf

        return {name: tf.gather(tf.constant(values), index) for name, values in self.columns.items()}


def pair_table(root, layout: str = "auto", split: str = "train", skip_bad: bool = False,
               pairs_file=None, paired=None) -> PairTable:
    """The pairs of a split whose files exist and look sound (image headers, keypoint files; VITON's
    segment .mat converted to PNG). A bad pair is a UserError naming the file and the pair line or,
    with `skip_bad`, left out: one warning counts them."""
    root = _check_root(root)
    layout = detect_layout(root) if layout == "auto" else _check_layout(layout)
    if split not in ("train", "test"):
        raise UserError(f"split {split!r}: expected 'train' or 'test'")
    found, bad = _read_pairs(root, layout, split, pairs_file, paired, skip_bad)
    pairs, converted = [], []
    for pair in found:
        try:
            converted.append(_converted(pair))
        except UserError as error:
            if not skip_bad:
                raise
            bad.append(str(error))
            continue
        pairs.append(pair)
    if bad:
        warnings.warn(f"skipped {len(bad)} of {len(bad) + len(pairs)} pairs with missing or corrupt files; "
                      f"first: {bad[0]}", stacklevel=2)
    if not pairs:
        raise UserError(f"{pairs_file or pairs_path(root, layout, split)}: no usable pairs")
    return _table(pairs, converted)


# --- one example, in TF ops -------------------------------------------------------------------

MAX_IMAGE_SIDE = 1 << 14  # the decoders' bound on a photo's side (VITON-HD's largest is 1024)


def decode_row(row: dict, height: int, width: int, with_mask_files: bool,
               cloth_threshold: float = DataConfig.cloth_foreground_threshold, labels: str = "lip") -> dict:
    """One pair (a `PairTable.row`) decoded in TF ops at height x width: the person and product photos
    (the exported model's decoder and resize), the cloth mask (its file, or from the product photo as
    the exported model does), the parsing (the exported model's palette-aware decoder; DressCode's ATR
    labels mapped to LIP), the keypoints scaled to the new size."""
    import tensorflow as tf

    from viton_tf.data.cloth_mask import cloth_mask_from_photo
    from viton_tf.data.codecs import decode_parsing, decode_photo, resize_photo

    person = decode_photo(tf.io.read_file(row["person_file"]), "person", MAX_IMAGE_SIDE)
    photo = decode_photo(tf.io.read_file(row["cloth_file"]), "cloth", MAX_IMAGE_SIDE)
    cloth = resize_photo(photo, height, width)
    if with_mask_files:
        mask = tf.io.decode_image(tf.io.read_file(row["cloth_mask_file"]), channels=1, expand_animations=False)
        same = tf.reduce_all(tf.equal(tf.shape(mask)[:2], tf.shape(photo)[:2]))
        check = tf.debugging.Assert(same, [tf.strings.join([
            "UserError: ", row["cloth_mask_file"], ": mask is ", tf.strings.as_string(tf.shape(mask)[0]), "x",
            tf.strings.as_string(tf.shape(mask)[1]), ", its cloth photo ", tf.strings.as_string(tf.shape(photo)[0]),
            "x", tf.strings.as_string(tf.shape(photo)[1]), " (in ", row["line"], ")"])])
        with tf.control_dependencies([check]):
            mask = tf.cast(mask > 127, tf.float32)  # a JPEG mask, thresholded before and after resizing
        mask = tf.image.resize(mask, [height, width], method="bilinear", antialias=True)
        cloth_mask = tf.cast(mask > 0.5, tf.float32)
    else:
        cloth_mask = cloth_mask_from_photo(cloth[None], cloth_threshold)[0]
    parsing = tf.cast(decode_parsing(tf.io.read_file(row["parsing_file"]), height, width), tf.int32)
    photo_size = tf.cast(tf.stack([tf.shape(person)[1], tf.shape(person)[0]]), tf.float32)  # (width, height)
    frame = tf.where(row["keypoint_frame"] > 0, row["keypoint_frame"], photo_size)
    keypoints = row["keypoints"] * tf.stack([width / frame[0], height / frame[1], 1.0])
    if labels == "dresscode":
        parsing = dresscode_parsing(parsing, keypoints, row["parsing_file"])
    return {
        "person": tf.ensure_shape(resize_photo(person, height, width), [height, width, 3]),
        "cloth": tf.ensure_shape(cloth, [height, width, 3]),
        "cloth_mask": tf.ensure_shape(cloth_mask, [height, width, 1]),
        "parsing": tf.ensure_shape(parsing, [height, width]),
        "keypoints": tf.ensure_shape(keypoints, [18, 3]),
        "person_name": row["person_name"],
        "cloth_name": row["cloth_name"],
        "category": row["category"],
    }


# DressCode's label ids (0..17) -> LIP ids, as a lookup table over every uint8 value (-1: not a DressCode label).
_DRESSCODE_LOOKUP = tuple(DRESSCODE_TO_LIP.get(value, -1) for value in range(256))


def dresscode_parsing(labels, keypoints, name):
    """DressCode's ATR label map [H, W] (int32) as LIP ids. ATR's head holds the neck: below the line through the
    shoulders, raised by 20 rows at 512 high, it is neck, as dataset.py's "delete neck" step draws it. A label
    outside DressCode's 0..17 is an error naming the file."""
    import tensorflow as tf

    height, width = labels.shape[0], labels.shape[1]
    lip = tf.gather(tf.constant(_DRESSCODE_LOOKUP, tf.int32), tf.clip_by_value(labels, 0, 255))
    check = tf.debugging.Assert(tf.reduce_all(lip >= 0), [tf.strings.join([
        "UserError: ", name, ": label ", tf.strings.as_string(tf.reduce_max(labels)),
        " is not a DressCode label (0..17)"])])
    right, left = keypoints[2], keypoints[5]
    run = left[0] - right[0]
    usable = (right[2] > 0) & (left[2] > 0) & (tf.abs(run) >= 1.0)
    line = (right[1] + tf.math.divide_no_nan(left[1] - right[1], run) * (tf.range(width, dtype=tf.float32) - right[0])
            - 20.0 * height / 512.0)
    below = tf.range(height, dtype=tf.float32)[:, None] >= tf.floor(line)[None, :]
    with tf.control_dependencies([check]):
        return tf.where(usable & below & (lip == LIP.FACE), LIP.NECK, lip)


_decode_row_traced = None


def decode_pair(pair: Pair, height: int, width: int,
                cloth_threshold: float = DataConfig.cloth_foreground_threshold) -> dict:
    """One pair (see `read_pairs`) as numpy arrays at height x width (the pipeline's decoding)."""
    return _decode_one(pair, height, width, cloth_threshold)


def _decode_one(pair: Pair, height: int, width: int, cloth_threshold: float) -> dict:
    import tensorflow as tf

    global _decode_row_traced
    if _decode_row_traced is None:  # traced once per size: the readers' single examples (evaluate, warp-eval)
        _decode_row_traced = tf.function(decode_row)

    for path in pair.files.values():
        if not Path(path).is_file():
            raise UserError(f"{path}: file not found (needed by {pair.line})")
    table = _table([pair], [_converted(pair)])
    row = {name: tf.constant(values[0]) for name, values in table.columns.items()}
    example = _decode_row_traced(row, height, width, "cloth_mask" in pair.files, cloth_threshold, table.labels)
    return {key: value.numpy() for key, value in example.items()}


def _converted(pair: Pair) -> tuple[np.ndarray, str]:
    """(keypoints [18, 3] in the pair's keypoint frame, the parsing file TF reads) of a pair whose files exist, after checking its image
    headers; a UserError naming the file and the pair line otherwise."""
    try:
        for role in ("person", "cloth", "cloth_mask", "parsing"):
            path = Path(pair.files[role]) if role in pair.files else None
            problem = _header_problem(path) if path is not None and path.suffix != ".mat" else None
            if problem:
                raise UserError(problem)
        parsing = Path(pair.files["parsing"])
        if parsing.suffix == ".mat":
            parsing = _segment_png(parsing, Path(pair.files["person"]))
        keypoints_file = Path(pair.files["keypoints"])
        if pair.layout == "dresscode":
            keypoints = read_keypoints_dresscode(keypoints_file)
        elif keypoints_file.suffix == ".mat":
            keypoints = read_keypoints_mat(keypoints_file)
        else:
            keypoints = read_keypoints_json(keypoints_file)
    except UserError as error:
        raise UserError(f"{error} (in {pair.line})") from None
    return keypoints, str(parsing)


def _table(pairs: list[Pair], converted: list[tuple[np.ndarray, str]]) -> PairTable:
    return PairTable(tuple(pairs), {
        "person_file": np.array([str(p.files["person"]) for p in pairs]),
        "cloth_file": np.array([str(p.files["cloth"]) for p in pairs]),
        "cloth_mask_file": np.array([str(p.files.get("cloth_mask", "")) for p in pairs]),
        "parsing_file": np.array([parsing for _, parsing in converted]),
        "keypoints": np.stack([keypoints for keypoints, _ in converted]).astype(np.float32),
        # (width, height) of the frame the keypoints are in; zeros: the person photo's pixels.
        "keypoint_frame": np.array([DRESSCODE_KEYPOINT_FRAME if p.layout == "dresscode" else (0.0, 0.0)
                                    for p in pairs], np.float32),
        "line": np.array([p.line for p in pairs]),
        "person_name": np.array([p.person for p in pairs]),
        "cloth_name": np.array([p.cloth for p in pairs]),
        "category": np.array([p.category for p in pairs])})


def load_example(root, person_name: str, cloth_name: str, layout: str = "auto", split: str = "train",
                 height: int = HEIGHT, width: int = WIDTH) -> dict:
    """One example as a dict of numpy arrays (the keys of `FEATURES`)."""
    root = _check_root(root)
    layout = detect_layout(root) if layout == "auto" else _check_layout(layout)
    if layout == "dresscode":
        category = dresscode_category(root, person_name)
    else:
        category_of = synthetic_categories(root) if (root / "meta.json").is_file() else {}
        category = category_of.get(Path(person_name).stem, "upper")
    files = layout_files(root, layout, split, person_name, cloth_name, category)
    pair = Pair(person_name, cloth_name, f"pair '{person_name} {cloth_name}'", files, category, layout)
    return _decode_one(pair, height, width, DataConfig.cloth_foreground_threshold)


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

def decoded(table: PairTable, indices, height: int, width: int, skip_bad: bool = False,
            cloth_threshold: float = DataConfig.cloth_foreground_threshold):
    """A dataset of pair indices (int64) -> the decoded examples (see `FEATURES`): parallel TF ops, in
    order. With `skip_bad` a pair whose decoding fails is dropped (TF logs each)."""
    import tensorflow as tf

    with_masks = "cloth_mask" in table.pairs[0].files
    dataset = indices.map(lambda index: decode_row(table.row(index), height, width, with_masks, cloth_threshold,
                                                   table.labels),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.ignore_errors(log_warning=True) if skip_bad else dataset


def make_dataset(root, layout: str = "auto", split: str = "train", height: int = HEIGHT,
                 width: int = WIDTH, batch_size: int | None = None, shuffle: bool = False,
                 seed: int = 0, skip_bad: bool = False, pairs_file=None, paired=None):
    """A tf.data.Dataset of dict examples (see `FEATURES`), decoded in parallel and prefetched;
    the order is the pairs file's, or a seeded shuffle of it. Missing and unsound files are found up
    front (`pair_table`): an error naming the file and the pair line, or with `skip_bad` a warning
    with the count of skipped pairs."""
    import tensorflow as tf

    table = pair_table(root, layout, split, skip_bad, pairs_file, paired)
    indices = tf.data.Dataset.range(len(table))
    if shuffle:
        indices = indices.shuffle(len(table), seed=seed, reshuffle_each_iteration=True)
    dataset = decoded(table, indices, height, width, skip_bad)
    if batch_size:
        dataset = dataset.batch(batch_size)
    return dataset.prefetch(tf.data.AUTOTUNE)


def as_user_error(error: Exception) -> UserError | None:
    """The UserError a reader raised while iterating, recovered from the tf.errors.OpError that
    tf.data wraps it in (so a job can print its one line); None for any other error."""
    if isinstance(error, UserError):
        return error
    match = re.search(r"UserError: ([^\n]+?)\]?(?:\n|$)", str(error))
    return UserError(match.group(1).replace("\\'", "'")) if match else None  # TF escapes the quotes
