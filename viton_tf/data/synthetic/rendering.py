"""Wearing: a product garment pulled onto a body by a body-driven piecewise warp, rendered by backward
mapping, so the true warp of every visible garment pixel is known."""
from __future__ import annotations

import cv2
import numpy as np

from viton_tf.config import LIP
from viton_tf.data.synthetic.bodies import _Arm, _Body, _head_local, _head_point
from viton_tf.data.synthetic.garments import _Garment
from viton_tf.data.synthetic.geometry import EASE, _Grid, _segment_coords

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
