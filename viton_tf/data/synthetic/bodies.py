"""Synthetic persons: articulated 2D figures (torso, arms, legs, head) and their COCO-18 keypoints."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from viton_tf.config import BODY25_TO_COCO18, LIP
from viton_tf.data.synthetic.garments import _Garment
from viton_tf.data.synthetic.geometry import CANON_H, CANON_W, HAIR, SKIN, _rot

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
