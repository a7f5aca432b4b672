"""`viton-tf demo`: the main job, end to end on a synthetic world.

For now: synthesise a small world, read a few examples and draw what the try-on network is given
(person, cloth, parsing, keypoints and the 22-channel person representation).
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

# OpenPose COCO-18 limbs, as joint index pairs (see config.COCO18).
SKELETON = ((1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
            (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17))
TILE = (256, 192)  # every panel is shown at this size, whatever the data's


def run_demo(out, work, quick: bool = False) -> int:
    """Synthesise a world into `work`/data and write `out`/representation.png."""
    from viton_tf.config import SynthConfig
    from viton_tf.data.readers import make_dataset
    from viton_tf.data.synthetic import write_world
    from viton_tf.representation import person_representation

    out, data = Path(out), Path(work) / "data"
    out.mkdir(parents=True, exist_ok=True)
    config = SynthConfig(pairs=8, height=64, width=48) if quick else SynthConfig(pairs=16)
    meta = data / "meta.json"
    same = meta.is_file() and all(json.loads(meta.read_text()).get(key) == getattr(config, key)
                                  for key in ("pairs", "height", "width", "seed"))
    if not same:
        write_world(data, config, progress=True)

    batch = next(iter(make_dataset(data, split="train", height=config.height, width=config.width,
                                   batch_size=4)))
    representation = person_representation(batch["person"], batch["parsing"], batch["keypoints"])
    figure = representation_figure({k: v.numpy() for k, v in batch.items()}, representation.numpy())
    path = out / "representation.png"
    cv2.imwrite(str(path), figure)
    print(f"demo: wrote {path} ({len(representation)} examples from {data})")
    return 0


def representation_figure(batch: dict, representation: np.ndarray) -> np.ndarray:
    """A BGR image: one row per example; person, cloth, parsing, keypoints, and the
    representation's pose boxes, body shape and face+hair."""
    titles = ("person", "cloth", "parsing", "keypoints", "pose (18 ch)", "body shape", "face + hair")
    rows = [_header(titles)]
    for i in range(len(batch["person"])):
        person = _to_uint8(batch["person"][i])
        pose = np.clip(representation[i, ..., :18].sum(-1), 0, 1)
        panels = (person, _to_uint8(batch["cloth"][i]), colourise_parsing(batch["parsing"][i]),
                  draw_keypoints(person, batch["keypoints"][i]), _gray(pose),
                  _gray(representation[i, ..., 18]), _to_uint8(representation[i, ..., 19:22]))
        rows.append(np.concatenate([_tile(p) for p in panels], axis=1))
    return cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR)


def colourise_parsing(parsing: np.ndarray) -> np.ndarray:
    """LIP label ids -> RGB, one fixed colour per label, background white."""
    hues = (np.arange(20) * 37) % 180
    palette = cv2.cvtColor(np.stack([hues, np.full(20, 200), np.full(20, 230)], -1)[None].astype(np.uint8),
                           cv2.COLOR_HSV2RGB)[0]
    palette[0] = 255
    return palette[np.clip(parsing, 0, 19)]


def draw_keypoints(person: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """The skeleton over the person, drawn at display size; missing joints are left out."""
    scale = np.array([TILE[1] / person.shape[1], TILE[0] / person.shape[0]])
    canvas = _tile(person).copy()
    points = [tuple(int(v) for v in (k[:2] + 0.5) * scale) if k[2] > 0 else None for k in keypoints]
    for a, b in SKELETON:
        if points[a] and points[b]:
            cv2.line(canvas, points[a], points[b], (255, 200, 0), 2, cv2.LINE_AA)
    for point in filter(None, points):
        cv2.circle(canvas, point, 3, (255, 0, 0), -1, cv2.LINE_AA)
    return canvas


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip((image + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def _gray(values: np.ndarray) -> np.ndarray:
    return np.repeat((np.clip(values, 0, 1)[..., None] * 255).astype(np.uint8), 3, axis=-1)


def _tile(image: np.ndarray) -> np.ndarray:
    if image.shape[:2] == TILE:
        return image
    small = image.shape[0] < TILE[0]
    return cv2.resize(image, TILE[::-1], interpolation=cv2.INTER_NEAREST if small else cv2.INTER_AREA)


def _header(titles) -> np.ndarray:
    header = np.full((28, TILE[1] * len(titles), 3), 255, np.uint8)
    for i, title in enumerate(titles):
        cv2.putText(header, title, (i * TILE[1] + 8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return header
