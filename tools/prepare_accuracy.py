"""The README's parsing and keypoint numbers: `prepare` against the LIP parsings and OpenPose keypoints shipped
with the 4 VITON photos, and a contact sheet of the parsings of the 10 real persons to look at.

    .venv/bin/python tools/prepare_accuracy.py [--sheet /tmp/parsing_sheet.png]

Prints per-label IoU (pooled over the 4 photos), pixel accuracy per photo, the mean keypoint distance
(px at 256x192) and seconds per photo; with --sheet, times every real 1024x768 person too.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# One colour per LIP id (0 background ... 19), for the overlays.
PALETTE = np.array([[0, 0, 0], [128, 0, 0], [254, 0, 0], [0, 85, 0], [169, 0, 51], [254, 85, 0], [0, 0, 85],
                    [0, 119, 220], [85, 85, 0], [0, 85, 85], [85, 51, 0], [52, 86, 128], [0, 128, 0],
                    [0, 0, 254], [51, 169, 220], [0, 254, 254], [85, 254, 169], [169, 254, 85],
                    [254, 254, 0], [254, 169, 0]], np.uint8)


def overlay(image: np.ndarray, parsing: np.ndarray) -> np.ndarray:
    colours = PALETTE[np.clip(parsing, 0, 19)]
    blend = (0.45 * image + 0.55 * colours).astype(np.uint8)
    return np.where(parsing[..., None] > 0, blend, image // 2)


def contact_sheet(persons: Path, out: Path) -> list[float]:
    """Each real person: the photo and its parsing (made at 256x192, as `prepare` does) shown at 512x384;
    returns seconds per photo."""
    from viton_tf.data.readers import read_image
    from viton_tf.prepare.folder import prepare_person

    tiles, seconds = [], []
    for path in sorted(persons.glob("*.jpg")):
        image = read_image(path)
        start = time.perf_counter()
        _, parsing, _ = prepare_person(image, 256, 192)  # `prepare`'s default size
        seconds.append(time.perf_counter() - start)
        small = cv2.resize(image, (384, 512), interpolation=cv2.INTER_AREA)
        labels = cv2.resize(parsing.astype(np.uint8), (384, 512), interpolation=cv2.INTER_NEAREST)
        tile = np.concatenate([small, overlay(small, labels)], 1)
        cv2.putText(tile, path.stem, (6, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2)
        tiles.append(tile)
    rows = [np.concatenate(tiles[i:i + 3] + [np.zeros_like(tiles[0])] * (3 - len(tiles[i:i + 3])), 1)
            for i in range(0, len(tiles), 3)]
    cv2.imwrite(str(out), cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR))
    return seconds


def main() -> int:
    from viton_tf.prepare.accuracy import measure_shipped

    shared = REPO.parent / "shared" / "data"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viton", type=Path, default=shared / "viton_cpvton" / "test")
    parser.add_argument("--real", type=Path, default=shared / "real" / "person")
    parser.add_argument("--sheet", type=Path, default=None, help="write the real persons' parsings here (PNG or JPEG)")
    args = parser.parse_args()
    agreement, seconds = measure_shipped(args.viton)
    print("IoU (pooled over %d photos): " % len(seconds)
          + ", ".join(f"{key} {value:.3f}" for key, value in agreement.iou().items()))
    print("pixel accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in agreement.pixel_accuracy.items()))
    print("keypoints: mean %.2f px; per photo " % agreement.mean_keypoint_distance()
          + ", ".join(f"{k} {v.mean():.2f}" for k, v in agreement.keypoint_distances.items()))
    print("seconds per 256x192 photo (the first loads the models): "
          + ", ".join(f"{v:.2f}" for v in seconds.values()))
    if args.sheet is not None:
        real = contact_sheet(args.real, args.sheet)
        print(f"seconds per real photo: mean {np.mean(real[1:] or real):.2f}, max {max(real):.2f} -> {args.sheet}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
