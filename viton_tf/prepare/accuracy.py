"""How close `prepare` comes to a shipped LIP parsing and OpenPose keypoints: per-label IoU, pixel accuracy,
keypoint distance (tools/prepare_accuracy.py prints them; tests/test_prepare.py holds the floors)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from viton_tf.config import BODY25_TO_COCO18, LIP
from viton_tf.data.readers import read_image, read_keypoints_json
from viton_tf.prepare.folder import prepare_person

# The labels the try-on builds on, each scored on its own (the arms per side, as LIP has them).
SCORED_LABELS = {"face": LIP.FACE, "hair": LIP.HAIR, "neck": LIP.NECK, "upper clothes": LIP.UPPER_CLOTHES,
                 "pants": LIP.PANTS, "left arm": LIP.LEFT_ARM, "right arm": LIP.RIGHT_ARM}


@dataclass
class Agreement:
    """Pixel counts pooled over photos, and per-photo pixel accuracy and keypoint distances."""

    inter: dict[str, int] = field(default_factory=dict)
    union: dict[str, int] = field(default_factory=dict)
    pixel_accuracy: dict[str, float] = field(default_factory=dict)
    keypoint_distances: dict[str, np.ndarray] = field(default_factory=dict)

    def add_parsing(self, name: str, ours: np.ndarray, theirs: np.ndarray) -> None:
        if ours.shape != theirs.shape:
            raise ValueError(f"{name}: parsing {ours.shape} against shipped {theirs.shape}")
        self.pixel_accuracy[name] = float((ours == theirs).mean())
        for key, label in SCORED_LABELS.items():
            self.inter[key] = self.inter.get(key, 0) + int(((ours == label) & (theirs == label)).sum())
            self.union[key] = self.union.get(key, 0) + int(((ours == label) | (theirs == label)).sum())

    def add_keypoints(self, name: str, ours: np.ndarray, theirs: np.ndarray) -> None:
        """COCO-18 [18, 3] each; joints both sides found are compared."""
        both = (ours[:, 2] > 0) & (theirs[:, 2] > 0)
        self.keypoint_distances[name] = np.linalg.norm(ours[both, :2] - theirs[both, :2], axis=1)

    def iou(self) -> dict[str, float]:
        return {key: self.inter[key] / max(self.union[key], 1) for key in self.inter}

    def mean_keypoint_distance(self) -> float:
        return float(np.concatenate(list(self.keypoint_distances.values())).mean())


def measure_shipped(folder: Path, height: int = 256, width: int = 192) -> tuple[Agreement, dict[str, float]]:
    """`prepare`'s person path on a CP-VTON folder (`image/`, `image-parse/`, `pose/`): the agreement and the
    seconds each photo took."""
    agreement, seconds = Agreement(), {}
    for path in sorted((Path(folder) / "image").glob("*.jpg")):
        start = time.perf_counter()
        _, parsing, body25 = prepare_person(read_image(path), height, width)
        seconds[path.stem] = time.perf_counter() - start
        theirs = cv2.imread(str(Path(folder) / "image-parse" / f"{path.stem}.png"), cv2.IMREAD_UNCHANGED)
        agreement.add_parsing(path.stem, parsing, theirs.astype(np.int32))
        agreement.add_keypoints(path.stem, body25[list(BODY25_TO_COCO18)],
                                read_keypoints_json(Path(folder) / "pose" / f"{path.stem}_keypoints.json"))
    return agreement, seconds
