"""The README's real-photo figure: every real person with four garments through the layout try-on.

    viton-tf prepare --persons ../shared/data/real/person --cloths ../shared/data/real/cloth --out /tmp/real
    .venv/bin/python tools/real_photos_figure.py --prepared /tmp/real --out docs/real_photos.jpg

Each row: the person photo, then per garment the product photo, the predicted layout and the result
(computed at 1024x768 and shown small).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
GARMENTS = ("00470_00", "00126_00", "09236_00", "02015_00")  # long sleeves, short, short, sleeveless crop


def main() -> int:
    import tensorflow as tf

    from export.tryon import request_from_files
    from viton_tf.layout import load_layout_nets
    from viton_tf.tryon import TryOnModule

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepared", type=Path, required=True, help="`viton-tf prepare --out` of the real photos")
    parser.add_argument("--real", type=Path, default=REPO.parent / "shared" / "data" / "real")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    split = args.prepared / "test"
    module = TryOnModule(256, 192, method="layout", layout_nets=load_layout_nets())
    tile = lambda image: cv2.resize(image, (96, 128), interpolation=cv2.INTER_AREA)
    rows = []
    for person in sorted(p.stem for p in (args.real / "person").glob("*.jpg")):
        photo = args.real / "person" / f"{person}.jpg"
        small, full = cv2.imread(str(split / "image" / f"{person}.jpg")), cv2.imread(str(photo))
        tiles = [tile(full)]
        for garment in GARMENTS:
            product = args.real / "cloth" / f"{garment}.jpg"
            inputs = request_from_files(photo, product, split / "image-parse-v3" / f"{person}.png",
                                        split / "openpose_json" / f"{person}_keypoints.json")
            scale = np.array([full.shape[1] / small.shape[1], full.shape[0] / small.shape[0], 1.0], np.float32)
            inputs["keypoints"] = (inputs["keypoints"] * scale).astype(np.float32)
            outputs = module.serving_default(**{name: tf.constant(value) for name, value in inputs.items()})
            result = tf.io.decode_png(outputs["tryon_png_bytes"][0]).numpy()[..., ::-1]
            layout = np.repeat((outputs["garment_mask"][0].numpy() * 255).astype(np.uint8), 3, axis=-1)
            tiles += [tile(cv2.imread(str(product))), tile(layout), tile(np.ascontiguousarray(result))]
        rows.append(np.concatenate(tiles, axis=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), np.concatenate(rows, axis=0), [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
