"""The synthetic world's shared geometry: its 256x192 design frame, palettes, and pixel grids."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Every synthetic figure is designed in a 256x192 frame, then scaled to the requested size.
CANON_H, CANON_W = 256.0, 192.0
EASE = 1.1  # garments are 10% wider than the body they are worn on
BACK_NECKLINE_DEPTH = 0.045  # back neckline depth in garment units (the front one is deeper)
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
