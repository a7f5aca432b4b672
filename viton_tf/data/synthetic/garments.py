"""Synthetic product garments: flat photos on white of tops, dresses, trousers and skirts, with
neck labels and the masks of their parts."""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from viton_tf.config import LIP
from viton_tf.data.synthetic.geometry import BACK_NECKLINE_DEPTH, CANON_H, CANON_W, EASE, _Grid

@dataclass
class _Garment:
    kind: str              # "top", "dress", "pants" or "skirt"
    label: int
    image: np.ndarray      # uint8 [H, W, 3] product photo
    mask: np.ndarray       # uint8 product mask, 0/255
    worn_mask: np.ndarray  # the product mask without the inner back collar
    parts: dict            # name -> uint8 mask of the product pixels that part can show
    cx: float              # garment frame: product pixel = (cx + u * gw, y0 + v * gl)
    y0: float
    gw: float
    gl: float
    sleeves: dict = field(default_factory=dict)  # "right"/"left" -> (origin, direction, perp, length)
    label_box: list | None = None  # [x0, y0, x1, y1], x1 and y1 exclusive
    image_float: np.ndarray = field(init=False, repr=False)  # what the person is rendered from

    def __post_init__(self):
        self.image_float = self.image.astype(np.float32)


def _texture(rng: np.random.Generator, grid: _Grid, base: np.ndarray, unit: float) -> np.ndarray:
    """A fabric pattern over the whole product image: plain, stripes, checks or dots."""
    height, width = grid.x.shape
    image = np.broadcast_to(base.astype(np.float32), (height, width, 3)).copy()
    second = np.clip(base + rng.choice([-1, 1]) * rng.uniform(60, 140, 3), 20, 235).astype(np.float32)
    pattern = rng.choice(["plain", "stripes", "checks", "dots"], p=[0.3, 0.35, 0.2, 0.15])
    period = rng.uniform(8, 22) * unit
    if pattern == "stripes":
        angle = rng.choice([0.0, np.pi / 2, np.pi / 4, -np.pi / 4])
        coord = grid.x * np.cos(angle) + grid.y * np.sin(angle)
        on = (coord / period) % 1.0 < rng.uniform(0.3, 0.6)
        image[on] = second
    elif pattern == "checks":
        on = ((grid.x / period) % 1.0 < 0.5) ^ ((grid.y / period) % 1.0 < 0.5)
        image[on] = 0.5 * image[on] + 0.5 * second
    elif pattern == "dots":
        fx, fy = (grid.x / period) % 1.0 - 0.5, (grid.y / period) % 1.0 - 0.5
        image[fx ** 2 + fy ** 2 < rng.uniform(0.04, 0.09)] = second
    return np.round(image).astype(np.uint8)


def _textured(rng: np.random.Generator, grid: _Grid, mask: np.ndarray, base: np.ndarray, unit: float) -> np.ndarray:
    """A white product image with the fabric texture inside the bounding box of `mask`."""
    image = np.full(grid.x.shape + (3,), 255, np.uint8)
    x, y, w, h = cv2.boundingRect(mask.astype(np.uint8))
    key = (slice(y, y + h), slice(x, x + w))
    image[key] = _texture(rng, _Grid(grid.x[key], grid.y[key]), base, unit)
    return image


def _print(rng: np.random.Generator, image: np.ndarray, center: tuple, size: float) -> None:
    """Printed text and/or a logo on the chest, in place."""
    colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
    cx, cy = center
    if rng.random() < 0.5:
        text = "".join(rng.choice(list("ABCDEFGHKLMNPRSTUVWXYZ0123456789"), size=rng.integers(2, 6)))
        font = cv2.FONT_HERSHEY_SIMPLEX
        thickness = max(1, int(round(size / 12)))
        (tw, th), _ = cv2.getTextSize(text, font, 1.0, thickness)
        font_scale = max(0.2, 1.6 * size / max(tw, 1))
        tw, th = tw * font_scale, th * font_scale
        cv2.putText(image, text, (int(round(cx - tw / 2)), int(round(cy + th / 2 + 0.4 * size))),
                    font, font_scale, colour, thickness, cv2.LINE_8)
    if rng.random() < 0.6:
        shape = rng.choice(["circle", "square", "triangle", "star"])
        r = size * rng.uniform(0.3, 0.55)
        cy -= 0.3 * size
        if shape == "circle":
            cv2.circle(image, (int(round(cx)), int(round(cy))), max(1, int(round(r))), colour, -1)
        else:
            count = {"square": 4, "triangle": 3, "star": 10}[shape]
            angles = -np.pi / 2 + np.arange(count) * 2 * np.pi / count + (np.pi / 4 if shape == "square" else 0)
            radii = np.where(np.arange(count) % 2, 0.45 * r, r) if shape == "star" else np.full(count, r)
            points = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1)
            cv2.fillPoly(image, [np.round(points * 16).astype(np.int32)], colour, cv2.LINE_8, 4)


def _fill(shape: tuple, polygon_px: np.ndarray) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(polygon_px * 16).astype(np.int32)], 255, cv2.LINE_8, 4)
    return mask


def _mirror(right_half: list) -> np.ndarray:
    """A symmetric outline from its image-right half listed top to bottom."""
    right = np.array(right_half, float)
    left = right[::-1] * (-1, 1)
    return np.concatenate([right, left])


def _sample_upper(rng: np.random.Generator, grid: _Grid, kind: str, neck_label_probability: float) -> _Garment:
    """A top (label 5) or a dress (label 6): collar, inner back collar, optional sleeves and neck label."""
    height, width = grid.x.shape
    unit = min(height / CANON_H, width / CANON_W)
    ox, oy = (width - CANON_W * unit) / 2, (height - CANON_H * unit) / 2
    if kind == "top":
        gw, gl, y0 = 0.26 * CANON_W * unit, 0.46 * CANON_H * unit, oy + 0.2 * CANON_H * unit
    else:
        gw, gl, y0 = 0.2 * CANON_W * unit, 0.354 * CANON_H * unit, oy + 0.13 * CANON_H * unit
    cx = ox + CANON_W * unit / 2
    u, v = (grid.x - cx) / gw, (grid.y - y0) / gl

    v_top = -0.13
    v_neck = rng.random() < 0.35
    neck_u = rng.uniform(0.2, 0.3) if v_neck else rng.uniform(0.22, 0.36)
    neck_depth = rng.uniform(0.2, 0.32) if v_neck else rng.uniform(0.11, 0.18)
    shoulders = [(neck_u, v_top), (0.55, v_top + 0.01), (1.0, -0.02), (0.98, 0.28)]
    if kind == "top":
        outline = shoulders + [(rng.uniform(0.93, 1.0), 0.6), (rng.uniform(0.95, 1.12), rng.uniform(0.92, 1.08))]
    else:
        hem_u, hem_v = rng.uniform(1.3, 1.7), rng.uniform(1.5, 1.9)
        outline = shoulders + [(0.95, 0.55), (1.02, 1.0), (hem_u, hem_v)]
    polygon = _mirror(outline) * (gw, gl) + (cx, y0)
    torso = _fill((height, width), polygon) > 0

    below_top = v >= v_top
    if v_neck:
        hole = below_top & (v - v_top < neck_depth * (1 - np.abs(u) / neck_u))
    else:
        hole = below_top & ((u / neck_u) ** 2 + ((v - v_top) / neck_depth) ** 2 < 1)
    back_line = v_top + BACK_NECKLINE_DEPTH * np.sqrt(np.clip(1 - (u / neck_u) ** 2, 0, None))
    band = hole & (v >= back_line)          # the inside of the back, seen through the neck opening
    torso &= ~hole

    sleeves, sleeve_masks = {}, {}
    length = rng.choice([0.0, rng.uniform(0.3, 0.5), rng.uniform(0.9, 1.2), rng.uniform(1.8, 2.0)],
                        p=[0.2, 0.35, 0.2, 0.25] if kind == "top" else [0.5, 0.5, 0.0, 0.0])
    if length > 0:
        angle = np.deg2rad(rng.uniform(60, 75) if length > 1.5 else rng.uniform(25, 50))
        ref_arm = 46 / (EASE * 33) * gw  # a nominal upper arm, in product pixels
        taper = 0.85 if length < 1.5 else 0.55
        room = cx - gw - 0.04 * width - 0.15 * gl * taper  # the whole sleeve stays in the photo
        angle = max(angle, np.arccos(min(1.0, room / (length * ref_arm))))
        for name, sign in (("right", -1), ("left", 1)):
            top_px = np.array([cx + sign * 1.0 * gw, y0 - 0.02 * gl])
            pit_px = np.array([cx + sign * 0.98 * gw, y0 + 0.28 * gl])
            origin = (top_px + pit_px) / 2
            direction = np.array([sign * np.cos(angle), np.sin(angle)])
            perp = np.array([-direction[1], direction[0]])
            half_end = np.hypot(*(top_px - pit_px)) / 2 * taper
            side = np.sign(np.dot(top_px - origin, perp))
            end = origin + length * ref_arm * direction
            polygon = np.array([top_px, end + side * half_end * perp, end - side * half_end * perp, pit_px])
            sleeve_masks[name] = _fill((height, width), polygon) > 0
            sleeves[name] = (origin, direction, perp, ref_arm)
    for sleeve in sleeve_masks.values():
        torso &= ~sleeve
        band &= ~sleeve

    garment_mask = torso | band
    for sleeve in sleeve_masks.values():
        garment_mask |= sleeve
    base = rng.uniform(40, 225, 3)
    base[rng.integers(3)] = rng.uniform(90, 230)  # never too dark for the neck label to show
    image = _textured(rng, grid, garment_mask, base, unit)
    if rng.random() < 0.55:
        _print(rng, image, (cx, y0 + 0.35 * gl), 0.45 * gw)
    trim_width = max(1, int(round(0.03 * gl)))
    trim = cv2.dilate(hole.astype(np.uint8), np.ones((2 * trim_width + 1,) * 2, np.uint8)) > 0
    trim_colour = base * 0.75 if rng.random() < 0.5 else rng.uniform(30, 230, 3)
    image[trim & torso] = trim_colour
    image[band] = base * 0.6

    label_box = None
    if rng.random() < neck_label_probability:
        label_box = _neck_label_box(band, cx, unit, rng)
        if label_box is not None:
            x0, y0_, x1, y1 = label_box
            image[y0_:y1, x0:x1] = base * 0.22

    image[~garment_mask] = 255
    worn = garment_mask & ~band
    parts = {"body": torso.astype(np.uint8) * 255}
    parts.update({name: m.astype(np.uint8) * 255 for name, m in sleeve_masks.items()})
    return _Garment(kind, LIP.UPPER_CLOTHES if kind == "top" else LIP.DRESS, image,
                    garment_mask.astype(np.uint8) * 255, worn.astype(np.uint8) * 255, parts,
                    cx, y0, gw, gl, sleeves, label_box)


def _neck_label_box(band: np.ndarray, cx: float, unit: float, rng: np.random.Generator) -> list | None:
    """A small box just below the back neckline, kept only if it lies wholly on the band."""
    box_w = max(2, int(round(rng.uniform(8, 14) * unit)))
    box_h = max(2, int(round(rng.uniform(4, 6) * unit)))
    centre_row = np.nonzero(band[:, int(round(cx))])[0]
    if centre_row.size == 0:
        return None
    y0 = int(centre_row.min()) + (1 if centre_row.size > box_h + 1 else 0)
    for _ in range(3):
        x0 = int(round(cx - box_w / 2))
        if band[y0:y0 + box_h, x0:x0 + box_w].all() and y0 + box_h <= band.shape[0]:
            return [x0, y0, x0 + box_w, y0 + box_h]
        box_w, box_h = max(2, box_w - 2), max(2, box_h - 1)
    return None


def _sample_lower(rng: np.random.Generator, grid: _Grid, kind: str | None = None) -> _Garment:
    """Trousers (label 9) or a skirt (label 12), flat on white."""
    height, width = grid.x.shape
    unit = min(height / CANON_H, width / CANON_W)
    ox, oy = (width - CANON_W * unit) / 2, (height - CANON_H * unit) / 2
    gw, gl, y0 = 0.2 * CANON_W * unit, 0.49 * CANON_H * unit, oy + 0.2 * CANON_H * unit
    cx = ox + CANON_W * unit / 2
    kind = kind or ("pants" if rng.random() < 0.6 else "skirt")
    if kind == "pants":
        bottom = rng.uniform(0.9, 1.02) if rng.random() < 0.8 else rng.uniform(0.35, 0.45)
        crotch = min(0.3, bottom - 0.05)
        outline = [(1.0, -0.08), (1.08, 0.2), (0.95, bottom), (0.12, bottom), (0.0, crotch)]
        right = np.array(outline, float)
        polygon = np.concatenate([right, right[-2::-1] * (-1, 1)])
    else:
        hem_v = rng.uniform(0.35, 0.7)
        polygon = _mirror([(1.0, -0.08), (rng.uniform(1.2, 1.6), hem_v)])
    mask = _fill((height, width), polygon * (gw, gl) + (cx, y0)) > 0
    base = rng.uniform(30, 200, 3)
    image = _textured(rng, grid, mask, base, unit)
    band_rows = (grid.y - y0) / gl < 0.0  # waistband
    image[band_rows & mask] = base * 0.8
    image[~mask] = 255
    mask8 = mask.astype(np.uint8) * 255
    return _Garment(kind, LIP.PANTS if kind == "pants" else LIP.SKIRT, image, mask8, mask8.copy(),
                    {"body": mask8}, cx, y0, gw, gl)
