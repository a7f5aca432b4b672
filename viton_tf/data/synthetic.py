"""The synthetic try-on world: persons, product garments and the ground truth no real dataset has.

Persons are articulated 2D figures; garments are flat product photos on white. A worn garment is
its product photo pulled onto the body by a body-driven, piecewise warp (a torso frame whose width
follows the body, sleeves and trouser legs that follow their limb segments, a sinusoidal fit
term), rendered by backward mapping, so the true warp of every visible garment pixel is known.
That warp is deliberately not a thin-plate spline. Only numpy and OpenCV are used.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from viton_tf.config import BODY25_TO_COCO18, CATEGORY_LABELS, LIP, SynthConfig
from viton_tf.errors import UserError

VERSION = 1
# Every synthetic figure is designed in a 256x192 frame, then scaled to the requested size.
CANON_H, CANON_W = 256.0, 192.0
EASE = 1.1  # garments are 10% wider than the body they are worn on
BACK_NECKLINE_DEPTH = 0.045  # back neckline depth in garment units (the front one is deeper)
FOLDERS = ("image", "cloth", "cloth-mask", "image-parse-v3", "openpose_json",
           "gt-warp", "cloth-label", "cloth-mask-worn")
SKIN = ((236, 200, 172), (224, 172, 140), (198, 140, 105), (160, 110, 80), (112, 76, 56), (245, 215, 195))
HAIR = ((30, 24, 20), (70, 45, 30), (120, 80, 45), (200, 160, 90), (150, 60, 30), (160, 160, 160))


# --- geometry helpers ---------------------------------------------------------------

def _rot(vector: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([vector[0] * c - vector[1] * s, vector[0] * s + vector[1] * c])


@dataclass
class _Grid:
    x: np.ndarray
    y: np.ndarray

    @classmethod
    def of(cls, height: int, width: int) -> "_Grid":
        y, x = np.mgrid[0:height, 0:width].astype(np.float32)
        return cls(x, y)


def _segment_coords(grid: _Grid, start: np.ndarray, end: np.ndarray):
    """(t, s, dist): position along start->end in [0, 1] units, signed offset, distance to the segment."""
    d = end - start
    length = float(np.hypot(*d))
    e = d / length
    px, py = grid.x - start[0], grid.y - start[1]
    along = px * e[0] + py * e[1]
    # perp = e rotated by +90 degrees in image coordinates, as for the sleeves of the product.
    side = px * -e[1] + py * e[0]
    t = along / length
    closest = np.clip(along, 0.0, length)
    dist = np.hypot(along - closest, side)
    return t, side, dist


# --- persons ------------------------------------------------------------------------

@dataclass
class _Arm:
    shoulder: np.ndarray
    elbow: np.ndarray
    wrist: np.ndarray
    radius_upper: float
    radius_fore: float
    in_front: bool
    label: int


@dataclass
class _Body:
    scale: float           # pixels per canonical unit times the figure's own size
    neck: np.ndarray       # origin of the torso frame: the middle of the top of the torso
    axis_a: np.ndarray     # unit vector across the torso (towards image right)
    axis_b: np.ndarray     # unit vector down the torso
    torso_length: float
    shoulder_half: float
    waist_half: float
    hip_half: float
    arms: tuple
    hips: tuple            # (right, left) joints
    ankles: tuple
    knees: tuple
    leg_length: float
    leg_radius: tuple      # (at hip, at ankle)
    leg_spread: tuple      # (right, left) outward angles
    head_center: np.ndarray
    head_angle: float
    head_rx: float
    head_ry: float
    neck_half: float
    neck_length: float
    fringe: float
    long_hair: float       # length of side hair below the head centre, in head radii; 0 = short
    skin: np.ndarray
    hair: np.ndarray
    background: np.ndarray
    fit: dict = field(default_factory=dict)  # sinusoidal fit of the garments on this body
    confidence: np.ndarray | None = None
    top: "_Garment | None" = None     # the person's own garments, worn when the pair's garment is
    bottom: "_Garment | None" = None  # of another category


def _sample_body(rng: np.random.Generator, height: int, width: int) -> _Body:
    unit = min(height / CANON_H, width / CANON_W)
    ox, oy = (width - CANON_W * unit) / 2, (height - CANON_H * unit) / 2
    k = rng.uniform(0.82, 1.0)
    s = unit * k
    tilt = np.deg2rad(rng.uniform(-7, 7))
    neck = np.array([ox + (96 + rng.uniform(-10, 10)) * unit, oy + rng.uniform(62, 76) * unit])
    axis_b = _rot(np.array([0.0, 1.0]), tilt)
    axis_a = np.array([axis_b[1], -axis_b[0]])
    torso_length = 84 * s * rng.uniform(0.95, 1.05)
    shoulder_half = 33 * s * rng.uniform(0.9, 1.1)
    radius_upper = 7.5 * s * rng.uniform(0.9, 1.1)

    arms = []
    front_side = rng.integers(0, 2) if rng.random() < 0.35 else -1
    for index, (sign, label) in enumerate(((-1, LIP.RIGHT_ARM), (1, LIP.LEFT_ARM))):
        shoulder = neck + axis_a * sign * (shoulder_half - 0.7 * radius_upper) + axis_b * 0.04 * torso_length
        in_front = index == front_side
        if in_front:
            raise_, bend = rng.uniform(5, 25), rng.uniform(85, 125)
        elif rng.random() < 0.35:
            raise_, bend = rng.uniform(30, 60), rng.uniform(-20, 30)
        else:
            raise_, bend = rng.uniform(6, 30), rng.uniform(-10, 35)
        # Positive angles turn the image-left (person's right) arm outwards; mirror for the other.
        upper = _rot(axis_b, -sign * np.deg2rad(raise_))
        fore = _rot(upper, sign * np.deg2rad(bend))
        elbow = shoulder + upper * 46 * s * rng.uniform(0.95, 1.05)
        wrist = elbow + fore * 42 * s * rng.uniform(0.95, 1.05)
        arms.append(_Arm(shoulder, elbow, wrist, radius_upper, 0.85 * radius_upper, in_front, label))
    arms.sort(key=lambda arm: arm.in_front)  # the arm in front of the torso is drawn last

    hip_line = neck + axis_b * torso_length
    hip_half = shoulder_half * rng.uniform(0.78, 0.92)
    leg_length = 100 * s * rng.uniform(0.95, 1.05)
    spread = tuple(np.deg2rad(rng.uniform(2, 9, size=2)))
    hips, knees, ankles = [], [], []
    for sign, angle in zip((-1, 1), spread):
        hip = hip_line + axis_a * sign * 0.55 * hip_half
        direction = _rot(axis_b, -sign * angle)
        hips.append(hip)
        knees.append(hip + direction * 0.5 * leg_length)
        ankles.append(hip + direction * leg_length)

    head_rx = 15.5 * s * rng.uniform(0.92, 1.08)
    head_ry = head_rx * rng.uniform(1.15, 1.3)
    neck_length = 9 * s * rng.uniform(0.8, 1.2)
    head_angle = tilt + np.deg2rad(rng.uniform(-8, 8))
    head_center = neck - axis_b * (neck_length + 0.85 * head_ry)
    skin = np.array(SKIN[rng.integers(len(SKIN))], float) + rng.uniform(-8, 8, 3)
    hair = np.array(HAIR[rng.integers(len(HAIR))], float) + rng.uniform(-10, 10, 3)
    background = rng.uniform(218, 250) + rng.uniform(-6, 6, 3)
    fit = {
        "amp_u": rng.uniform(0.01, 0.035), "freq_u": rng.uniform(0.6, 1.6), "phase_u": rng.uniform(0, 2 * np.pi),
        "amp_v": rng.uniform(0.005, 0.02), "freq_v": rng.uniform(0.5, 1.5), "phase_v": rng.uniform(0, 2 * np.pi),
        "curve": rng.uniform(-0.04, 0.06),
        "fold_freq": rng.uniform(1.0, 2.0), "fold_phase": rng.uniform(0, 2 * np.pi),
        "fold_amp": rng.uniform(0.004, 0.01),
    }
    body = _Body(
        scale=s, neck=neck, axis_a=axis_a, axis_b=axis_b, torso_length=torso_length,
        shoulder_half=shoulder_half, waist_half=shoulder_half * rng.uniform(0.75, 0.88), hip_half=hip_half,
        arms=tuple(arms), hips=tuple(hips), knees=tuple(knees), ankles=tuple(ankles), leg_length=leg_length,
        leg_radius=(11 * s, 7 * s), leg_spread=spread, head_center=head_center, head_angle=head_angle,
        head_rx=head_rx, head_ry=head_ry, neck_half=0.45 * head_rx, neck_length=neck_length,
        fringe=rng.uniform(-0.65, -0.3), long_hair=rng.uniform(0.8, 2.6) if rng.random() < 0.45 else 0.0,
        skin=np.clip(skin, 0, 255), hair=np.clip(hair, 0, 255), background=np.clip(background, 0, 255), fit=fit,
    )
    body.confidence = np.round(rng.uniform(0.55, 0.95, 25), 3)
    return body


def _head_local(body: _Body, x: float | np.ndarray, y: float | np.ndarray):
    """Image coordinates -> the head's own frame (x across, y down), both in pixels."""
    dx, dy = x - body.head_center[0], y - body.head_center[1]
    c, s = np.cos(body.head_angle), np.sin(body.head_angle)
    return dx * c + dy * s, -dx * s + dy * c


def _head_point(body: _Body, hx: float, hy: float) -> np.ndarray:
    return body.head_center + _rot(np.array([hx, hy]), body.head_angle)


def _keypoints(body: _Body, height: int, width: int) -> np.ndarray:
    """BODY_25 keypoints [25, 3]; joints outside the image are (0, 0, 0)."""
    rx, ry = body.head_rx, body.head_ry
    right_arm, left_arm = sorted(body.arms, key=lambda arm: arm.label != LIP.RIGHT_ARM)
    coco = [
        _head_point(body, 0, 0.2 * ry), (right_arm.shoulder + left_arm.shoulder) / 2,
        right_arm.shoulder, right_arm.elbow, right_arm.wrist,
        left_arm.shoulder, left_arm.elbow, left_arm.wrist,
        body.hips[0], body.knees[0], body.ankles[0], body.hips[1], body.knees[1], body.ankles[1],
        _head_point(body, -0.36 * rx, -0.05 * ry), _head_point(body, 0.36 * rx, -0.05 * ry),
        _head_point(body, -0.98 * rx, 0.05 * ry), _head_point(body, 0.98 * rx, 0.05 * ry),
    ]
    points = np.zeros((25, 2))
    for coco_index, body25_index in enumerate(BODY25_TO_COCO18):
        points[body25_index] = coco[coco_index]
    points[8] = (body.hips[0] + body.hips[1]) / 2
    s = body.scale
    # Feet (19-21 left big toe, small toe, heel; 22-24 right), from the ankles.
    for base, ankle, sign in ((19, body.ankles[1], 1), (22, body.ankles[0], -1)):
        points[base] = ankle + (-2 * s * sign, 9 * s)
        points[base + 1] = ankle + (4 * s * sign, 8 * s)
        points[base + 2] = ankle + (0, 3 * s)
    inside = (points[:, 0] >= 0) & (points[:, 0] <= width - 1) & (points[:, 1] >= 0) & (points[:, 1] <= height - 1)
    keypoints = np.zeros((25, 3))
    keypoints[inside, :2] = points[inside]
    keypoints[inside, 2] = body.confidence[inside]
    return keypoints


# --- garments -----------------------------------------------------------------------

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


# --- rendering ----------------------------------------------------------------------

class _Canvas:
    """Person image, parsing and true warp, painted back to front, one window at a time."""

    def __init__(self, grid: _Grid, background: np.ndarray):
        height, width = grid.x.shape
        self.grid = grid
        self.image = np.broadcast_to(background.astype(np.float32), (height, width, 3)).copy()
        self.parse = np.zeros((height, width), np.uint8)
        self.warp = np.full((height, width, 2), -1.0, np.float32)

    def window(self, points, margin: float):
        """The sub-grid and slices of the box around `points` widened by `margin`, or None if off-image."""
        points = np.asarray(points, float).reshape(-1, 2)
        height, width = self.parse.shape
        x0, y0 = np.floor(points.min(0) - margin).astype(int)
        x1, y1 = np.ceil(points.max(0) + margin).astype(int) + 1
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        if x0 >= x1 or y0 >= y1:
            return None, None
        key = (slice(y0, y1), slice(x0, x1))
        return _Grid(self.grid.x[key], self.grid.y[key]), key

    def paint(self, key, mask, colour, label, warp=None) -> None:
        np.copyto(self.image[key], colour, where=mask[..., None])
        np.copyto(self.parse[key], label, where=mask)
        np.copyto(self.warp[key], warp if warp is not None else -1.0, where=mask[..., None])


def _frame_corners(origin, axis_a, axis_b, a_range, b_range) -> np.ndarray:
    return np.array([origin + axis_a * a + axis_b * b for a in a_range for b in b_range])


def _torso_uv(body: _Body, grid: _Grid):
    """Person pixels -> garment units: u across (body edge at 1/EASE), v down (shoulders 0, hips 1)."""
    px, py = grid.x - body.neck[0], grid.y - body.neck[1]
    a = px * body.axis_a[0] + py * body.axis_a[1]
    b = (px * body.axis_b[0] + py * body.axis_b[1]) / body.torso_length
    half = np.interp(b, [0.0, 0.55, 1.0], [body.shoulder_half, body.waist_half, body.hip_half]).astype(np.float32)
    return _fit(body, a / (half * EASE), b), a, b, half


def _fit(body: _Body, u, v):
    """The smooth, non-spline part of how a garment sits: sinusoids and a hem curving round the body."""
    f = body.fit
    settle = np.clip((v - 0.1) / 0.2, 0, 1)  # keep the collar where it is
    u2 = u + f["amp_u"] * settle * np.sin(2 * np.pi * f["freq_u"] * v + f["phase_u"])
    v2 = v + settle * (f["amp_v"] * np.sin(2 * np.pi * f["freq_v"] * u + f["phase_v"]) + f["curve"] * u ** 2
                       + f["fold_amp"] * np.sin(2 * np.pi * f["fold_freq"] * u + f["fold_phase"]))
    return u2, v2


def _hip_line(body: _Body) -> np.ndarray:
    return body.neck + body.axis_b * body.torso_length


def _hip_uv(body: _Body, grid: _Grid, garment: _Garment):
    """Person pixels -> lower-garment units; trouser legs follow each leg (piecewise)."""
    hip_line = _hip_line(body)
    px, py = grid.x - hip_line[0], grid.y - hip_line[1]
    a = px * body.axis_a[0] + py * body.axis_a[1]
    b = (px * body.axis_b[0] + py * body.axis_b[1]) / body.leg_length
    width = body.hip_half * EASE
    u = a / width
    if garment.kind == "pants":
        centres = [sign * (0.55 * body.hip_half + b * body.leg_length * np.tan(angle))
                   for sign, angle in zip((-1, 1), body.leg_spread)]
        side = np.where(a < (centres[0] + centres[1]) / 2, -1.0, 1.0)
        per_leg = side * 0.54 + (a - np.where(side < 0, centres[0], centres[1])) / width
        blend = np.clip(b / 0.3, 0, 1)
        u = u + blend * (per_leg - u)
    return _fit(body, u, b)


def _sample(garment: _Garment, mask_name: str, mx, my):
    covered = cv2.remap(garment.parts[mask_name], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                        borderValue=0) > 127
    colour = cv2.remap(garment.image_float, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                       borderValue=(255, 255, 255))
    return covered, colour


def _true_warp(garment: _Garment, mx, my) -> np.ndarray:
    # Bilinear coverage reaches half a pixel past the border; keep the recorded pixel inside the photo.
    height, width = garment.mask.shape
    return np.stack([np.clip(mx, 0, width - 1), np.clip(my, 0, height - 1)], -1)


def _shade(body: _Body, u, v):
    f = body.fit
    folds = 0.03 * np.cos(2 * np.pi * f["fold_freq"] * u + f["fold_phase"])  # shading of the same folds
    return (1 - 0.06 * np.minimum(u ** 2, 1) + folds)[..., None]


def _wear(canvas: _Canvas, key, body: _Body, garment: _Garment, uv, tracked: bool) -> None:
    u, v = uv
    mx = (garment.cx + u * garment.gw).astype(np.float32)
    my = (garment.y0 + v * garment.gl).astype(np.float32)
    covered, colour = _sample(garment, "body", mx, my)
    canvas.paint(key, covered, colour * _shade(body, u, v), garment.label,
                 _true_warp(garment, mx, my) if tracked else None)


def _draw_arm(canvas: _Canvas, body: _Body, arm: _Arm, garment: _Garment | None, tracked: bool):
    name = "right" if arm.label == LIP.RIGHT_ARM else "left"
    sleeve = garment.sleeves.get(name) if garment is not None else None
    to_product = garment.gw / (EASE * body.shoulder_half) if garment is not None else 1.0  # product px per person px
    reach = max(arm.radius_upper, 0.16 * garment.gl / to_product) if sleeve else arm.radius_upper
    hand = arm.wrist + (arm.wrist - arm.elbow) / np.hypot(*(arm.wrist - arm.elbow)) * 0.8 * arm.radius_fore
    grid, key = canvas.window([arm.shoulder, arm.elbow, hand], reach + 1)
    if grid is None:
        return
    t1, s1, d1 = _segment_coords(grid, arm.shoulder, arm.elbow)
    t2, s2, d2 = _segment_coords(grid, arm.elbow, hand)
    upper_length = np.hypot(*(arm.elbow - arm.shoulder))
    fore_length = np.hypot(*(hand - arm.elbow))
    fore = d2 < d1
    t = np.where(fore, 1 + t2 * fore_length / upper_length, t1)
    s = np.where(fore, s2, s1)
    dist = np.minimum(d1, d2)
    radius = np.where(fore, arm.radius_fore, arm.radius_upper)
    # Near the shoulder the arm stays under the garment it comes out of.
    skin = (dist <= radius) & ~((t < 0.2) & np.isin(canvas.parse[key], (LIP.UPPER_CLOTHES, LIP.DRESS)))
    canvas.paint(key, skin, body.skin * (1 - 0.12 * (s / radius) ** 2)[..., None], arm.label)
    if sleeve is None:
        return
    origin, direction, perp, ref_arm = sleeve
    mx = (origin[0] + t * ref_arm * direction[0] + s * to_product * perp[0]).astype(np.float32)
    my = (origin[1] + t * ref_arm * direction[1] + s * to_product * perp[1]).astype(np.float32)
    covered, colour = _sample(garment, name, mx, my)
    covered &= (dist <= reach) & (t >= -0.1)
    shade = 1 - 0.08 * np.minimum((s / reach) ** 2, 1)
    canvas.paint(key, covered, colour * shade[..., None], garment.label,
                 _true_warp(garment, mx, my) if tracked else None)


def _render(body: _Body, garment: _Garment, grid: _Grid):
    """The person wearing `garment` (and their own other pieces): image uint8, parse uint8, warp."""
    canvas = _Canvas(grid, body.background)
    top = garment if garment.kind in ("top", "dress") else body.top
    bottom = garment if garment.kind in ("pants", "skirt") else (None if garment.kind == "dress" else body.bottom)

    for hip, ankle, label in zip(body.hips, body.ankles, (LIP.RIGHT_LEG, LIP.LEFT_LEG)):
        sub, key = canvas.window([hip, ankle], body.leg_radius[0] + 1)
        if sub is not None:
            t, s, dist = _segment_coords(sub, hip, ankle)
            radius = np.interp(t, [0, 1], body.leg_radius)
            canvas.paint(key, dist <= radius, body.skin * (1 - 0.1 * (s / radius) ** 2)[..., None], label)
    if bottom is not None:
        reach = 1.8 * EASE * body.hip_half + 0.2 * body.leg_length
        corners = _frame_corners(_hip_line(body), body.axis_a, body.axis_b, (-reach, reach),
                                 (-0.2 * body.leg_length, 1.1 * body.leg_length))
        sub, key = canvas.window(corners, 2)
        if sub is not None:
            _wear(canvas, key, body, bottom, _hip_uv(body, sub, bottom), bottom is garment)

    # Torso skin, rising around the neck so any neck opening shows skin, the neck, then the top.
    length = body.torso_length
    reach = (1.8 if top is not None and top.kind == "dress" else 1.3) * EASE * body.shoulder_half
    corners = _frame_corners(body.neck, body.axis_a, body.axis_b, (-reach, reach),
                             (-(body.neck_length + body.head_ry) - 2, (2.1 if reach > 1.5 else 1.25) * length))
    sub, key = canvas.window(corners, 2)
    (u, v), a, b, half = _torso_uv(body, sub)
    rise = np.interp(np.abs(a) / body.shoulder_half, [0.48, 0.75], [-0.15, 0.0])
    torso = (b >= rise) & (b <= 1.02) & (np.abs(a) <= half)
    neck = (np.abs(a) <= body.neck_half) & (b * length >= -(body.neck_length + body.head_ry)) & (b <= 0.05)
    canvas.paint(key, torso | neck, body.skin * 0.93, LIP.NECK)
    if top is not None:
        _wear(canvas, key, body, top, (u, v), top is garment)
    for arm in body.arms:
        _draw_arm(canvas, body, arm, top, top is garment)
    _draw_head(canvas, body)
    image = np.clip(np.round(canvas.image), 0, 255).astype(np.uint8)
    return image, canvas.parse, canvas.warp


def _draw_head(canvas: _Canvas, body: _Body) -> None:
    rx, ry = body.head_rx, body.head_ry
    corners = [_head_point(body, x, y) for x in (-1.35 * rx, 1.35 * rx)
               for y in (-1.25 * ry, max(1.0, body.long_hair) * ry)]
    grid, key = canvas.window(corners, 2)
    if grid is None:
        return
    hx, hy = _head_local(body, grid.x, grid.y)
    face = (hx / rx) ** 2 + (hy / ry) ** 2 <= 1
    ears = ((np.abs(hx) - 0.95 * rx) / (0.22 * rx)) ** 2 + ((hy - 0.05 * ry) / (0.28 * ry)) ** 2 <= 1
    hair = ((hx / (1.1 * rx)) ** 2 + ((hy + 0.12 * ry) / (1.08 * ry)) ** 2 <= 1) & (
        hy < body.fringe * ry + 0.25 * ry * (hx / rx) ** 2)
    if body.long_hair > 0:
        sides = (np.abs(hx) >= 0.78 * rx) & (np.abs(hx) <= 1.3 * rx) & (hy >= -0.3 * ry)
        sides &= hy <= body.long_hair * ry - 0.5 * ry * ((np.abs(hx) - 1.04 * rx) / (0.26 * rx)) ** 2
        hair |= sides
    canvas.paint(key, (face | ears) & ~hair, body.skin * (1 - 0.08 * np.minimum((hx / rx) ** 2, 1))[..., None],
                 LIP.FACE)
    for side in (-1, 1):
        centre = _head_point(body, side * 0.36 * rx, -0.05 * ry)
        cv2.circle(canvas.image, (int(round(centre[0])), int(round(centre[1]))), max(1, int(round(0.1 * rx))),
                   (40, 30, 30), -1)
    mouth = [_head_point(body, x * rx, 0.58 * ry) for x in (-0.25, 0.25)]
    cv2.line(canvas.image, tuple(int(round(c)) for c in mouth[0]), tuple(int(round(c)) for c in mouth[1]),
             tuple(float(c) for c in body.skin * 0.6), max(1, int(round(0.07 * rx))))
    canvas.paint(key, hair, body.hair * (1 - 0.15 * np.minimum((hx / (1.3 * rx)) ** 2, 1))[..., None], LIP.HAIR)


# --- the world on disk --------------------------------------------------------------

def _validate(out: Path, config: SynthConfig) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is an existing file; expected a folder (new or a previous synthetic world)")
    if out.is_dir() and any(out.iterdir()) and not (out / "meta.json").is_file():
        raise UserError(f"--out {out}: folder is not empty and holds no synthetic world (meta.json); "
                        "choose a new or empty folder")
    if not isinstance(config.pairs, int) or config.pairs < 1:
        raise UserError(f"SynthConfig.pairs: expected a positive integer, got {config.pairs!r}")
    for name in ("height", "width"):
        value = getattr(config, name)
        if not isinstance(value, int) or value < 32 or value % 16:
            raise UserError(f"SynthConfig.{name}: expected a multiple of 16 of at least 32, got {value!r}")
    if not isinstance(config.seed, int) or config.seed < 0:
        raise UserError(f"SynthConfig.seed: expected a non-negative integer, got {config.seed!r}")
    if not 0.0 <= config.test_fraction < 1.0:
        raise UserError(f"SynthConfig.test_fraction: expected a value in [0, 1), got {config.test_fraction!r}")
    if not 0.0 <= config.neck_label_probability <= 1.0:
        raise UserError(f"SynthConfig.neck_label_probability: expected a value in [0, 1], "
                        f"got {config.neck_label_probability!r}")
    if not 1 <= config.jpeg_quality <= 100:
        raise UserError(f"SynthConfig.jpeg_quality: expected 1..100, got {config.jpeg_quality!r}")
    categories = tuple(config.categories) if not isinstance(config.categories, str) else (config.categories,)
    unknown = [c for c in categories if c not in CATEGORY_LABELS]
    if unknown or not categories:
        raise UserError(f"SynthConfig.categories: unknown {unknown or 'empty'}; choose from {sorted(CATEGORY_LABELS)}")


def count_test_pairs(config: SynthConfig) -> int:
    """How many of the pairs go to the test split: none, or 2 to pairs - 1 (unpaired needs two)."""
    if config.test_fraction <= 0 or config.pairs < 3:
        return 0
    return min(max(int(round(config.pairs * config.test_fraction)), 2), config.pairs - 1)


def _categories_of(categories: tuple, n_train: int, n_test: int) -> list[str]:
    """Train pairs cycle through the categories; test pairs take them two by two, so that every
    test garment has another test garment of its category to be swapped with."""
    train = [categories[index % len(categories)] for index in range(n_train)]
    test = [categories[(position // 2) % len(categories)] for position in range(n_test)]
    if n_test % 2 and n_test > 1 and test.count(test[-1]) == 1:
        test[-1] = test[-2]
    return train + test


def _world_item(config: SynthConfig, index: int, category: str, grid: _Grid):
    """Person and garment of pair `index`, each from its own seeded stream."""
    height, width = config.height, config.width
    body = _sample_body(np.random.default_rng([config.seed, index, 0]), height, width)
    # The person's own top or bottom, worn with a garment of the other kind, from streams 2 and 3.
    if category == "lower":
        body.top = _sample_upper(np.random.default_rng([config.seed, index, 2]), grid, "top", 0.0)
    if category == "upper":
        body.bottom = _sample_lower(np.random.default_rng([config.seed, index, 3]), grid)
    rng = np.random.default_rng([config.seed, index, 1])
    if category == "upper":
        garment = _sample_upper(rng, grid, "top", config.neck_label_probability)
    elif category == "full":
        garment = _sample_upper(rng, grid, "dress", config.neck_label_probability)
    else:
        garment = _sample_lower(rng, grid)
    return body, garment


def _write_jpeg(path: Path, image: np.ndarray, quality: int) -> None:
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_OPTIMIZE, 0])


def _write_png(path: Path, image: np.ndarray) -> None:
    cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, 3])


def _write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, sort_keys=True) + "\n")


def _openpose(keypoints: np.ndarray) -> dict:
    flat = [round(float(value), 3) for value in keypoints.reshape(-1)]
    person = {"person_id": [-1], "pose_keypoints_2d": flat, "face_keypoints_2d": [],
              "hand_left_keypoints_2d": [], "hand_right_keypoints_2d": [], "pose_keypoints_3d": [],
              "face_keypoints_3d": [], "hand_left_keypoints_3d": [], "hand_right_keypoints_3d": []}
    return {"version": 1.3, "people": [person]}


def write_world(out: Path | str, config: SynthConfig, progress: bool = True) -> None:
    """Write `config.pairs` person/garment pairs in the VITON-HD layout plus the synthetic ground truth."""
    from tqdm import tqdm

    out = Path(out)
    _validate(out, config)
    categories = (config.categories,) if isinstance(config.categories, str) else tuple(config.categories)
    for stale in ("train", "test", "train_pairs.txt", "test_pairs.txt", "meta.json"):
        path = out / stale
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    n_test = count_test_pairs(config)
    n_train = config.pairs - n_test
    for split in ("train", "test"):
        for folder in FOLDERS:
            (out / split / folder).mkdir(parents=True, exist_ok=True)
    for folder in ("unpaired-image", "unpaired-parse"):
        (out / "test" / folder).mkdir(parents=True, exist_ok=True)

    height, width, quality = config.height, config.width, config.jpeg_quality
    grid = _Grid.of(height, width)
    stems = [f"{index:05d}_00" for index in range(config.pairs)]
    category_of = _categories_of(categories, n_train, n_test)
    items = {}
    bar = tqdm(total=config.pairs + n_test, desc="synth", unit="image", disable=not progress)
    for index, stem in enumerate(stems):
        split = "train" if index < n_train else "test"
        body, garment = _world_item(config, index, category_of[index], grid)
        if split == "test":
            items[index] = (body, garment)
        image, parse, warp = _render(body, garment, grid)
        folder = out / split
        _write_jpeg(folder / "image" / f"{stem}.jpg", image, quality)
        _write_png(folder / "image-parse-v3" / f"{stem}.png", parse)
        _write_json(folder / "openpose_json" / f"{stem}_keypoints.json", _openpose(_keypoints(body, height, width)))
        _write_jpeg(folder / "cloth" / f"{stem}.jpg", garment.image, quality)
        _write_jpeg(folder / "cloth-mask" / f"{stem}.jpg", garment.mask, quality)
        _write_png(folder / "cloth-mask-worn" / f"{stem}.png", garment.worn_mask)
        np.save(folder / "gt-warp" / f"{stem}.npy", warp)
        _write_json(folder / "cloth-label" / f"{stem}.json",
                    {"has_label": garment.label_box is not None, "box": garment.label_box})
        bar.update()

    # Unpaired test pairs: each test person with the next test garment of the same category.
    test_pairs = []
    test_indices = list(range(n_train, config.pairs))
    for category in categories:
        group = [index for index in test_indices if category_of[index] == category]
        for position, index in enumerate(group):
            test_pairs.append((index, group[(position + 1) % len(group)]))
    test_pairs.sort()
    for person_index, cloth_index in test_pairs:
        body, _ = items[person_index]
        _, garment = items[cloth_index]
        image, parse, _ = _render(body, garment, grid)
        name = f"{stems[person_index]}__{stems[cloth_index]}"
        _write_jpeg(out / "test" / "unpaired-image" / f"{name}.jpg", image, quality)
        _write_png(out / "test" / "unpaired-parse" / f"{name}.png", parse)
        bar.update()
    bar.close()

    (out / "train_pairs.txt").write_text("".join(f"{s}.jpg {s}.jpg\n" for s in stems[:n_train]))
    (out / "test_pairs.txt").write_text(
        "".join(f"{stems[p]}.jpg {stems[c]}.jpg\n" for p, c in test_pairs))
    _write_json(out / "meta.json", {"height": height, "width": width, "seed": config.seed,
                                    "categories": list(categories), "pairs": config.pairs, "version": VERSION})
