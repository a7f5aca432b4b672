"""A LIP-labelled human parsing built from what runs offline: person mask, pose landmarks, face mesh.

No human-parsing model ships offline, so the labels come from geometry and colour:
face = the face mesh's hull and the face-coloured pixels just beside it; skin = pixels whose colour is
close to the face's; hair = the head region around and above the face that is neither face nor skin,
grown along hair-coloured pixels and cut out by GrabCut on this photo's colours; arms = skin near the
shoulder-elbow-wrist-hand chains, below the shoulder line; neck = the other skin above the garment, bare
shoulders included; upper clothes vs pants = non-skin body pixels split by colour models seeded on the
chest and below the hips. Good on studio photos (plain background, frontal pose); see the README for
where it fails.
"""
from __future__ import annotations

import cv2
import numpy as np

from viton_tf.config import LIP

# BlazePose landmark ids.
NOSE, L_EYE, R_EYE, L_EAR, R_EAR = 0, 2, 5, 7, 8
L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST = 11, 12, 13, 14, 15, 16
L_PINKY, R_PINKY, L_INDEX, R_INDEX = 17, 18, 19, 20
L_HIP, R_HIP, L_KNEE, R_KNEE = 23, 24, 25, 26
# Bare skin above the shoulder line, out to SHOULDER_REACH shoulder widths beyond the shoulders, is neck;
# the face takes in face-coloured pixels up to FACE_REACH face widths from the mesh.
SHOULDER_REACH = 0.15
FACE_REACH = 0.12
SURE_FACE = 1.5  # colour distance to the face's model under which a pixel by the face is face, not hair
JAW_SHARE = 0.25
HEM_REACH = 0.25  # of the torso's height: how far below the hem line the upper garment may still reach
UNLIKE_CHEST = 4.0  # colour distance to the chest's model beyond which a pixel below the hips is another garment


def _largest_component(mask: np.ndarray) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return mask.astype(bool)
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill the background regions not connected to the border."""
    padded = np.pad(mask.astype(np.uint8), 1)
    flood = padded.copy()
    cv2.floodFill(flood, None, (0, 0), 1)
    return (padded | (1 - flood)).astype(bool)[1:-1, 1:-1]


def _components_touching(mask: np.ndarray, seed: np.ndarray) -> np.ndarray:
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    keep = np.unique(labels[seed & mask])
    return np.isin(labels, keep[keep > 0])


def _segment_distance(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Distance of [..., 2] points to the segment start-end."""
    direction = end - start
    length2 = max(float(direction @ direction), 1e-6)
    t = np.clip(((points - start) @ direction) / length2, 0.0, 1.0)
    return np.linalg.norm(points - (start + t[..., None] * direction), axis=-1)


class _ColourModel:
    """k Gaussian blobs (k-means in Lab) fitted to sample pixels; distance = min Mahalanobis-like."""

    def __init__(self, samples: np.ndarray, clusters: int = 3, spread_floor: float = 4.0):
        samples = samples.astype(np.float32)
        clusters = max(1, min(clusters, len(samples) // 20))
        if clusters > 1:
            criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
            _, labels, centres = cv2.kmeans(samples, clusters, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
            labels = labels[:, 0]
        else:
            labels, centres = np.zeros(len(samples), int), samples.mean(0, keepdims=True)
        self.centres = centres
        self.spreads = np.stack([samples[labels == k].std(0) if np.any(labels == k) else np.ones(3)
                                 for k in range(len(centres))]) + spread_floor

    def distance(self, pixels: np.ndarray) -> np.ndarray:
        d = (pixels[..., None, :] - self.centres) / self.spreads
        return np.sqrt((d ** 2).sum(-1)).min(-1)


def _skin_mask(lab: np.ndarray, face: np.ndarray) -> np.ndarray:
    """Pixels coloured like the face's skin (cheeks and forehead, eyes and brows left out)."""
    samples_mask = cv2.erode(face.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    samples = lab[samples_mask] if samples_mask.sum() >= 20 else lab[face]
    if len(samples) < 10:
        return np.zeros(lab.shape[:2], bool)
    lightness = samples[:, 0]
    lo, hi = np.percentile(lightness, [30, 95])
    samples = samples[(lightness >= lo) & (lightness <= hi)]
    chroma_centre = np.median(samples[:, 1:], axis=0)
    chroma_spread = np.maximum(samples[:, 1:].std(0), 2.5)
    chroma = np.sqrt((((lab[..., 1:] - chroma_centre) / chroma_spread) ** 2).sum(-1))
    light_centre = float(np.median(samples[:, 0]))
    # shading on arms and neck darkens skin more than it changes its hue
    return (chroma < 3.0) & (lab[..., 0] > light_centre - 45) & (lab[..., 0] < light_centre + 30)


def _hem_line(upper_distance, lower_distance, clothes, start: float) -> float:
    """The row splitting the upper garment from the lower body: the best single cut of the rows
    below `start`, each row voting by its pixels' nearer colour model (robust to patterns)."""
    height = clothes.shape[0]
    rows = np.arange(height)
    band = clothes & (rows[:, None] >= start)
    vote = np.where(band, np.where(upper_distance < lower_distance, 1.0, -1.0), 0.0)
    row_vote = vote.sum(1)  # > 0: an upper-garment row
    first = int(np.clip(np.ceil(start), 0, height))
    # cut at b: rows [first, b) upper, [b, height) lower; maximise the agreeing votes
    above = np.concatenate([[0.0], np.cumsum(row_vote[first:])])
    score = above - (above[-1] - above)
    cut = first + int(np.argmax(score))
    below = band[cut:]
    # below a real hem most pixels look like the lower seed (0.55-0.99 on the real samples); a top
    # running past the frame leaves both seeds on one garment and the votes split evenly
    agreement = -vote[cut:][below].mean() if below.any() else 0.0
    return float(cut) if agreement > 0.3 else float(height)


def _grabcut_hair(image, hair, sure_hair, may_be_hair, not_hair) -> np.ndarray:
    """GrabCut (OpenCV) in the box around `may_be_hair`: hair seeded by `sure_hair`, probably where `hair` says;
    never outside `may_be_hair` nor on `not_hair`."""
    ys, xs = np.nonzero(may_be_hair)
    pad = 4
    y0, y1 = max(ys.min() - pad, 0), min(ys.max() + pad + 1, image.shape[0])
    x0, x1 = max(xs.min() - pad, 0), min(xs.max() + pad + 1, image.shape[1])
    crop = lambda m: m[y0:y1, x0:x1]
    mask = np.full((y1 - y0, x1 - x0), cv2.GC_BGD, np.uint8)
    mask[crop(may_be_hair)] = cv2.GC_PR_BGD
    mask[crop(may_be_hair & hair)] = cv2.GC_PR_FGD
    mask[crop(sure_hair)] = cv2.GC_FGD
    mask[crop(not_hair)] = cv2.GC_BGD
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(np.ascontiguousarray(image[y0:y1, x0:x1]), mask, None, background, foreground, 3,
                cv2.GC_INIT_WITH_MASK)
    out = np.zeros(hair.shape, bool)
    out[y0:y1, x0:x1] = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
    return out & may_be_hair


# MediaPipe hand landmarks: the palm's outline and the four chains of each finger from its base.
PALM = (0, 1, 2, 5, 9, 13, 17)
FINGERS = ((1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16), (17, 18, 19, 20))


def hand_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The pixels of one hand drawn from its 21 landmarks: the palm filled, the fingers as thick lines."""
    mask = np.zeros(shape, np.uint8)
    if np.isnan(points).any():
        return mask.astype(bool)
    palm_width = float(np.linalg.norm(points[5] - points[17]))
    thickness = max(1, int(round(0.3 * palm_width)))
    cv2.fillPoly(mask, [np.round(points[list(PALM)]).astype(np.int32)], 1)
    for finger in FINGERS:
        cv2.polylines(mask, [np.round(points[[0] + list(finger)]).astype(np.int32)], False, 1, thickness)
    return mask.astype(bool)


def parse_person(image: np.ndarray, person_mask: np.ndarray, landmarks: np.ndarray,
                 face_mesh: np.ndarray | None, hands: np.ndarray | None = None) -> np.ndarray:
    """LIP label map [H, W] int32 of an RGB uint8 image; landmarks [33, 3], face_mesh [468, 2] and hands
    [2, 21, 2] (left, right; NaN where unseen) in its pixels."""
    cv2.setRNGSeed(0)  # k-means and GrabCut draw from OpenCV's global generator: the same photo, the same parsing
    height, width = image.shape[:2]
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    lab[..., 0] *= 100.0 / 255.0
    ys, xs = np.mgrid[0:height, 0:width]
    grid = np.stack([xs, ys], -1).astype(np.float32)
    point = lambda i: landmarks[i, :2].astype(np.float32)

    body = person_mask > 0.5
    body = fill_holes(_largest_component(cv2.morphologyEx(body.astype(np.uint8), cv2.MORPH_OPEN,
                                                         np.ones((3, 3), np.uint8))))
    shoulder_width = float(np.linalg.norm(point(L_SHOULDER) - point(R_SHOULDER)))
    scale = max(shoulder_width, 8.0)
    shoulder_y = float(min(point(L_SHOULDER)[1], point(R_SHOULDER)[1]))
    hip_y = float((point(L_HIP)[1] + point(R_HIP)[1]) / 2)
    torso_height = max(hip_y - shoulder_y, scale)

    # Face: the face mesh's convex hull (the pose's face landmarks as an ellipse when it is missing).
    face = np.zeros((height, width), np.uint8)
    if face_mesh is not None:
        cv2.fillConvexPoly(face, cv2.convexHull(np.round(face_mesh).astype(np.int32)), 1)
    else:
        centre = landmarks[:11, :2].mean(0)
        ear_distance = float(np.linalg.norm(point(L_EAR) - point(R_EAR)))
        axes = (int(ear_distance * 0.5), int(ear_distance * 0.7))
        cv2.ellipse(face, (int(centre[0]), int(centre[1])), axes, 0, 0, 360, 1, -1)
    face = face.astype(bool) & body
    face_ys, face_xs = np.nonzero(face) if face.any() else (np.array([shoulder_y * 0.5]), np.array([width / 2]))
    face_top, chin = float(face_ys.min()), float(face_ys.max())
    face_centre = np.array([face_xs.mean(), face_ys.mean()], np.float32)
    face_width = float(face_xs.max() - face_xs.min() + 1)

    skin = _skin_mask(lab, face) & body & ~face
    # skin-coloured specks of patterned clothes are not skin: keep skin near solid skin areas
    window = max(3, int(round(0.06 * scale)) | 1)
    density = cv2.blur(skin.astype(np.float32), (window, window))
    solid = cv2.dilate((density > 0.9).astype(np.uint8), np.ones((window, window), np.uint8))
    skin &= solid.astype(bool)

    # Arms: skin within reach of the shoulder-elbow-wrist-hand chain of each side.
    arm_radius = 0.2 * scale
    arms = {}
    for label, (shoulder, elbow, wrist, pinky, index) in {
            LIP.LEFT_ARM: (L_SHOULDER, L_ELBOW, L_WRIST, L_PINKY, L_INDEX),
            LIP.RIGHT_ARM: (R_SHOULDER, R_ELBOW, R_WRIST, R_PINKY, R_INDEX)}.items():
        hand = point(wrist) + 1.6 * ((point(pinky) + point(index)) / 2 - point(wrist))
        distance = np.minimum.reduce([
            _segment_distance(grid, point(shoulder), point(elbow)),
            _segment_distance(grid, point(elbow), point(wrist)),
            _segment_distance(grid, point(wrist), hand)])
        arms[label] = distance
    arm_distance = np.minimum(arms[LIP.LEFT_ARM], arms[LIP.RIGHT_ARM])
    arm_side = np.where(arms[LIP.LEFT_ARM] <= arms[LIP.RIGHT_ARM], LIP.LEFT_ARM, LIP.RIGHT_ARM)

    # Torso: the shoulders-hips quadrilateral, a little narrowed; its skin is neck/chest skin, not arm.
    centre_x = (point(L_SHOULDER)[0] + point(R_SHOULDER)[0] + point(L_HIP)[0] + point(R_HIP)[0]) / 4
    torso = np.zeros((height, width), np.uint8)
    quad = np.array([point(R_SHOULDER), point(L_SHOULDER), point(L_HIP), point(R_HIP)])
    quad = (quad - [centre_x, 0]) * [0.85, 1.0] + [centre_x, 0]
    cv2.fillConvexPoly(torso, np.round(quad).astype(np.int32), 1)
    torso = torso.astype(bool)
    arm_skin = skin & (arm_distance < arm_radius * 1.6) & ~(torso & (arm_distance > arm_radius * 0.7))
    arm_skin &= ys > face_top + 0.5 * (chin - face_top)
    # bare skin above the line through the shoulders is neck and chest (an off-shoulder top), not arm
    r_shoulder, l_shoulder = point(R_SHOULDER), point(L_SHOULDER)
    across = (xs - r_shoulder[0]) / max(l_shoulder[0] - r_shoulder[0], 1.0)
    shoulder_line = r_shoulder[1] + np.clip(across, 0, 1) * (l_shoulder[1] - r_shoulder[1])
    above_shoulders = ((ys < shoulder_line)
                       & (across > -SHOULDER_REACH) & (across < 1 + SHOULDER_REACH))
    arm_skin &= ~above_shoulders
    # the arm's outline blends with the background and fails the skin test: take it back
    outline = body & ~cv2.erode(body.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    arm_skin |= (cv2.dilate(arm_skin.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
                 & outline & (arm_distance < arm_radius * 1.6) & ~face)

    # Hair: body pixels of the head region that are not face, grown along hair-coloured pixels, then cut
    # out by GrabCut, whose colour models learn this photo's hair against its face, skin and garment.
    head_radius = 1.1 * max(face_width, chin - face_top)
    cheeks = cv2.erode(face.astype(np.uint8), np.ones((3, 3), np.uint8),
                       iterations=max(1, int(0.15 * face_width))).astype(bool)
    face_colour_distance = _ColourModel(lab[cheeks if cheeks.sum() >= 20 else face], clusters=1,
                                        spread_floor=1.5).distance(lab)
    from_face = np.linalg.norm(grid - face_centre, axis=-1)
    head = (from_face < head_radius) & (ys < chin + 0.1 * head_radius)
    hair_seed = body & head & ~face & ~(skin & (ys > face_top + 0.3 * (chin - face_top)))
    # long hair falls beside the neck onto the shoulders, not into the chest or the sleeves
    beside_neck = (np.abs(xs - face_centre[0]) < 1.3 * face_width) & (ys < shoulder_y + 0.35 * torso_height)
    may_be_hair = body & ~face & (beside_neck | (from_face < 1.3 * head_radius))
    centre_band = (np.abs(xs - centre_x) < 0.3 * scale) & (ys > chin)
    may_be_hair &= ~centre_band
    hair = hair_seed.copy()
    top = body & (ys < face_top) & head & ~face
    unlike_face = face_colour_distance > 2.5  # blond hair passes the (loose) skin test, not this one
    if (top & unlike_face).sum() >= 20:
        hair_colour = _ColourModel(lab[top & unlike_face], clusters=2, spread_floor=2.0)
        like_hair = (hair_colour.distance(lab) < 2.0) & may_be_hair & unlike_face
        hair |= _components_touching(like_hair, hair_seed)
        near_face = cv2.dilate(face.astype(np.uint8), np.ones((3, 3), np.uint8),
                               iterations=max(1, int(0.04 * face_width))).astype(bool)
        beside_face = head & ~near_face & (ys < chin) & (np.abs(xs - face_centre[0]) > 0.4 * face_width)
        inner = cv2.erode(body.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)  # no background halo
        sure_hair = inner & unlike_face & ((top & (ys < face_top - 0.05 * (chin - face_top))) | beside_face)
        if sure_hair.sum() >= 20:
            hair = _grabcut_hair(image, hair, sure_hair, may_be_hair, face)
            # long hair runs on below the head: pixels nearer this photo's hair colours than its face's,
            # touching the hair
            if (hair & inner).sum() >= 20:
                hair_distance = _ColourModel(lab[hair & inner], clusters=3, spread_floor=2.0).distance(lab)
                garment = body & torso & ~skin & ~hair & (ys > shoulder_y + 0.15 * torso_height) & (ys < hip_y)
                garment_distance = (_ColourModel(lab[garment]).distance(lab) if garment.sum() >= 20
                                    else np.full(hair.shape, np.inf, np.float32))
                # blond strands over a shoulder pass the loose skin test: there, hair when far from the face's colour
                not_arm = ~arm_skin | (unlike_face & (hair_distance + 1.0 < face_colour_distance))
                # hair falling onto the chest beside the neck, only where it is far from the garment's colours
                onto_chest = (centre_band & beside_neck & body & ~face & unlike_face
                              & (hair_distance + 2.0 < garment_distance))
                strands = ((may_be_hair | onto_chest) & not_arm & (hair_distance < 3.0)
                           & (hair_distance < face_colour_distance) & (hair_distance + 1.0 < garment_distance))
                hair |= _components_touching(strands | hair, hair) & strands
                arm_skin &= ~hair
                # the person mask's halo around the hair: edge pixels nearer the backdrop's colours than the hair's
                outside = ~cv2.dilate(body.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
                if outside.sum() >= 100:
                    edge = hair & ~cv2.erode(body.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
                    backdrop = _ColourModel(lab[outside], clusters=2, spread_floor=2.0).distance(lab)
                    halo = edge & (backdrop < hair_distance)
                    hair &= ~halo
                    body &= ~halo
    # The face mesh stops short of the hairline and the ears: take in the face-coloured pixels beside it.
    near_face = cv2.dilate(face.astype(np.uint8), np.ones((3, 3), np.uint8),
                           iterations=max(1, int(FACE_REACH * face_width))).astype(bool)
    # Skin-coloured beyond doubt, it is face even where the hair model took it (temples, the hairline); below the
    # jaw's corners (the lowest quarter of the face) the rim is neck, not face.
    face_rim = (near_face & body & (~hair | (face_colour_distance < SURE_FACE)) & (face_colour_distance < 3.0)
                & (ys < chin - JAW_SHARE * (chin - face_top)))
    face |= _components_touching(face_rim | face, face) & face_rim
    hair &= ~face

    # Neck: the rest of the skin above the hips, near the body's middle.
    neck = skin & ~hair & ~arm_skin & (ys > chin - 0.15 * (chin - face_top)) & (ys < hip_y)
    neck &= np.abs(xs - centre_x) < 0.75 * scale
    neck = _components_touching(neck, neck & (ys < shoulder_y + 0.25 * torso_height))

    # Clothes: the non-skin body pixels left; upper garment above one hem line, lower body below it.
    clothes = body & ~face & ~hair & ~arm_skin & ~neck & ~(skin & (ys > hip_y))
    chest = clothes & torso & (ys > shoulder_y + 0.15 * torso_height) & (ys < shoulder_y + 0.55 * torso_height)
    lower_seed = clothes & (ys > hip_y + 0.15 * torso_height) & (np.abs(xs - centre_x) < 0.5 * scale)
    upper_distance = lower_distance = np.zeros(clothes.shape, np.float32)
    hem = 0.0 if chest.sum() < 20 else float(height)
    if chest.sum() >= 20:
        upper_distance = _ColourModel(lab[chest]).distance(lab)
        # a long top covering the body's middle below the hips makes the seed mostly the top's: the lower
        # garment's colours are then the seed's pixels unlike the chest (else all clothes below the hips unlike it)
        unlike_chest = clothes & (ys > hip_y) & (upper_distance > UNLIKE_CHEST)
        if not lower_seed.any() or (upper_distance[lower_seed] < 3.0).mean() > 0.5:  # the seed is mostly the top
            if (lower_seed & (upper_distance > UNLIKE_CHEST)).sum() >= 20:
                lower_seed &= upper_distance > UNLIKE_CHEST
            elif unlike_chest.sum() >= 20:
                lower_seed = unlike_chest
        if lower_seed.sum() >= 20:
            lower_distance = _ColourModel(lab[lower_seed]).distance(lab)
            hem = _hem_line(upper_distance, lower_distance, clothes, start=shoulder_y + 0.55 * torso_height)
        # skin in highlight or shadow fails the skin test: unlike the garment and enclosed by neck, it is neck
        gap_window = 2 * window + 1
        closed_neck = cv2.morphologyEx(neck.astype(np.uint8), cv2.MORPH_CLOSE,
                                       np.ones((gap_window, gap_window), np.uint8)).astype(bool)
        gaps = clothes & closed_neck & (upper_distance > 3.0)
        neck |= gaps
        clothes &= ~gaps
        # beside the arms, pixels neither skin nor garment-coloured are mostly the person mask's halo of
        # background (on the 4 shipped parsings: 73% background, 17% garment, 10% arm): background
        strays = clothes & (upper_distance > 3.0) & (arm_distance < 1.3 * arm_radius) & ~torso & (ys < hem)
        strays = _components_touching(strays | arm_skin, arm_skin) & strays
        clothes &= ~strays
    upper = clothes & (ys < hem)
    lower = clothes & (ys >= hem)
    kind = lower_garment_kind(upper, lower, hip_y, torso_height, centre_x, scale)  # on the hem line alone
    # long sleeves reaching below the hem stay with the upper garment
    upper |= (lower & (arm_distance < arm_radius) & (np.abs(xs - centre_x) > 0.5 * scale)
              & (upper_distance < 3.0) & (upper_distance < lower_distance))
    # below the hem, what has the upper garment's colour and joins it is still the upper garment (a slanted hem,
    # a cuff over the hip)
    like_upper = (lower & (upper_distance < 3.0) & (upper_distance + 1.0 < lower_distance)
                  & (ys < hem + HEM_REACH * torso_height))
    upper |= _components_touching(like_upper | upper, upper) & like_upper
    lower &= ~upper

    # Hands, where the hand landmark model found them: every body pixel they cover is arm.
    for label, points in zip((LIP.LEFT_ARM, LIP.RIGHT_ARM), hands if hands is not None else []):
        hand = hand_mask(points, (height, width)) & body & ~face
        arm_skin |= hand
        arm_side[hand] = label
        upper &= ~hand
        lower &= ~hand
    legs = skin & body & (ys > hip_y) & ~arm_skin & ~neck & (arm_distance > 2.5 * arm_radius)
    parsing = np.full((height, width), LIP.BACKGROUND, np.int32)
    if kind == "dress":  # one garment from the chest to below the hips: no hem line between two colours
        parsing[upper | lower] = LIP.DRESS
    else:
        parsing[upper] = LIP.UPPER_CLOTHES
        parsing[lower] = LIP.SKIRT if kind == "skirt" else LIP.PANTS
    parsing[legs] = np.where(xs[legs] >= centre_x, LIP.LEFT_LEG, LIP.RIGHT_LEG)
    parsing[neck] = LIP.NECK
    parsing[arm_skin] = arm_side[arm_skin]
    parsing[hair] = LIP.HAIR
    parsing[face] = LIP.FACE
    return cv2.medianBlur(parsing.astype(np.uint8), 3).astype(np.int32)


# A dress: the upper garment (no hem line found) reaches this share of the torso's height below the hips.
DRESS_REACH = 0.3
# A lower garment that reaches the frame's bottom (VITON-HD's photos end at the thighs) is trousers (a long
# skirt would be taken for trousers); one whose hem shows is shorts when the body's middle (this share of the
# shoulder scale on each side) is mostly not garment in its lowest rows (the gap between the legs), else a skirt.
MIDDLE_STRIP, LEG_GAP_ROWS, LEG_GAP_SHARE = 0.08, 0.3, 0.5
FRAME_BOTTOM_ROWS, FRAME_BOTTOM_SHARE = 2, 0.3  # garment in the last rows over this share of the hips' width


def lower_garment_kind(upper: np.ndarray, lower: np.ndarray, hip_y: float, torso_height: float, centre_x: float,
                       scale: float) -> str:
    """"dress", "skirt", "trousers" (shorts too) or "none" from the upper and lower garment masks [H, W]."""
    height, width = upper.shape
    ys = np.arange(height)
    below = int(np.clip(hip_y + DRESS_REACH * torso_height, 0, height - 1))
    if lower.sum() < 0.02 * upper.sum() and upper[below:].sum() > 0.1 * upper.sum():
        return "dress"
    rows = ys[lower.any(axis=1)]
    if rows.size < 4:
        return "none"
    bottom = lower[-FRAME_BOTTOM_ROWS:]
    if bottom.sum(axis=1).max() >= FRAME_BOTTOM_SHARE * scale:
        return "trousers"
    start = int(rows.max() - LEG_GAP_ROWS * (rows.max() - rows.min()))
    strip = slice(int(np.clip(centre_x - MIDDLE_STRIP * scale, 0, width - 1)),
                  int(np.clip(centre_x + MIDDLE_STRIP * scale, 1, width)))
    middle = lower[start:rows.max() + 1, strip]
    return "trousers" if middle.size and (1.0 - middle.mean()) >= LEG_GAP_SHARE else "skirt"
