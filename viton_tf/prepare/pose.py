"""BlazePose, face mesh and selfie segmentation (MediaPipe's .tflite models) on one photo, in numpy.

The models run with ai-edge-litert; the pre- and post-processing follow MediaPipe's graphs
(mediapipe/modules/pose_detection/pose_detection_cpu.pbtxt, pose_landmark/*.pbtxt,
face_landmark/*.pbtxt): SSD anchors + weighted NMS for the detector, a rotated square region
of interest for the landmark models, heatmap refinement of the 33 body landmarks.
Points are (x, y) in pixels of the image given to `analyse_person`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from viton_tf.assets import model_path
from viton_tf.data.codecs import from_uint8


class NoPerson(Exception):
    """The detector found no person, or more than one."""


@dataclass(frozen=True)
class PoseSettings:
    """Thresholds of the BlazePose graphs (pose_detection_cpu.pbtxt, pose_landmark_cpu.pbtxt)."""

    detection_score: float = 0.5  # pose_landmark_cpu.pbtxt: min_detection_confidence default
    second_person_score: float = 0.6  # a second detection this sure means several persons
    nms_iou: float = 0.3  # pose_detection_cpu.pbtxt: min_suppression_threshold
    roi_scale: float = 1.25  # pose_detection_to_roi.pbtxt (full body): scale_x/scale_y
    presence: float = 0.5  # pose_landmark_by_roi: pose flag threshold
    heatmap_kernel: int = 7  # pose_landmark_by_roi: RefineLandmarksFromHeatmapCalculator
    heatmap_min_confidence: float = 0.5
    face_roi_scale: float = 1.9  # face-mesh square side / ear-to-ear distance of the pose landmarks
    face_presence: float = 0.5
    # hand ROI from the pose (holistic's hand_landmarks_from_pose_to_recrop_roi.pbtxt: box = twice the
    # wrist-to-middle-finger distance, scaled 2.7), then from the hand's own landmarks
    # (hand_landmark_landmarks_to_roi.pbtxt: scale 2.0, shift_y -0.1)
    hand_pose_scale: float = 2.7
    hand_landmark_scale: float = 2.0
    hand_shift: float = -0.1
    hand_presence: float = 0.5


@dataclass
class PersonAnalysis:
    """What the models see in a person photo."""

    landmarks: np.ndarray  # [33, 3] x, y, visibility (BlazePose order)
    person_mask: np.ndarray  # [H, W] float32 in [0, 1]
    face_mesh: np.ndarray  # [468, 2] x, y
    detection_score: float
    hands: np.ndarray | None = None  # [2, 21, 2] x, y of the left, right hand (MediaPipe hand order); NaN if unseen


@lru_cache(maxsize=None)
def _interpreter(name: str):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model_path(name)), num_threads=2)
    interpreter.allocate_tensors()
    return interpreter


def _run(name: str, tensor: np.ndarray) -> list[np.ndarray]:
    interpreter = _interpreter(name)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor[None].astype(np.float32))
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"])[0] for d in interpreter.get_output_details()]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, np.float64), -100.0, 100.0)))


@lru_cache(maxsize=None)
def ssd_anchors(input_size: int, strides: tuple[int, ...]) -> np.ndarray:
    """SsdAnchorsCalculator with fixed_anchor_size and aspect ratio 1: [N, 2] anchor centres.

    Layers sharing a stride share one feature map, two anchors per layer at each cell.
    """
    centres = []
    layer = 0
    while layer < len(strides):
        stride = strides[layer]
        repeats = 0
        while layer < len(strides) and strides[layer] == stride:
            repeats += 2
            layer += 1
        size = math.ceil(input_size / stride)
        ys, xs = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
        cells = np.stack([(xs + 0.5) / size, (ys + 0.5) / size], -1).reshape(-1, 1, 2)
        centres.append(np.repeat(cells, repeats, axis=1).reshape(-1, 2))
    return np.concatenate(centres).astype(np.float32)


def _decode(raw_boxes, raw_scores, anchors, input_size, num_keypoints):
    """TensorsToDetectionsCalculator (reverse_output_order): boxes [N, 4] x0 y0 x1 y1, keypoints [N, K, 2]."""
    scores = _sigmoid(raw_scores[:, 0])
    centre = raw_boxes[:, 0:2] / input_size + anchors
    size = raw_boxes[:, 2:4] / input_size
    boxes = np.concatenate([centre - size / 2, centre + size / 2], -1)
    keypoints = raw_boxes[:, 4:4 + 2 * num_keypoints].reshape(-1, num_keypoints, 2) / input_size
    return boxes, keypoints + anchors[:, None], scores


def _iou(box, boxes):
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-9)


def weighted_nms(boxes, keypoints, scores, min_score, iou_threshold):
    """NonMaxSuppressionCalculator, WEIGHTED: each cluster's coordinates averaged by score."""
    keep = scores >= min_score
    boxes, keypoints, scores = boxes[keep], keypoints[keep], scores[keep]
    order = np.argsort(-scores)
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    results = []
    remaining = np.ones(len(scores), bool)
    for i in range(len(scores)):
        if not remaining[i]:
            continue
        cluster = remaining & (_iou(boxes[i], boxes) > iou_threshold)
        cluster[i] = True
        weights = scores[cluster][:, None]
        box = (boxes[cluster] * weights).sum(0) / weights.sum()
        points = (keypoints[cluster] * weights[:, :, None]).sum(0) / weights.sum()
        results.append((box, points, float(scores[i])))
        remaining &= ~cluster
    return results


def _square(image: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Zero-pad to a centred square (MediaPipe letterboxes with BORDER_ZERO); returns it and the offsets."""
    height, width = image.shape[:2]
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    square = np.zeros((side, side, 3), image.dtype)
    square[top:top + height, left:left + width] = image
    return square, left, top


def _roi_matrix(centre, side, rotation, size):
    """2x3 affine map from crop pixel (u, v) of a size x size tensor to image pixel (x, y)."""
    cos, sin = math.cos(rotation), math.sin(rotation)
    scale = side / size
    # crop pixel centre (u + 0.5) / size - 0.5 in rect units, rotated, into image continuous
    # coordinates, then -0.5 back to pixel indices
    a, b = scale * cos, -scale * sin
    c, d = scale * sin, scale * cos
    offset = 0.5 * scale - side / 2
    tx = centre[0] - 0.5 + (cos - sin) * offset
    ty = centre[1] - 0.5 + (sin + cos) * offset
    return np.array([[a, b, tx], [c, d, ty]], np.float32)


def _crop(image, matrix, size):
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _to_image(points, matrix):
    """Crop coordinates (continuous, 0..size) -> image pixel coordinates."""
    return (points - 0.5) @ matrix[:, :2].T + matrix[:, 2]


def _normalize_radians(angle):
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def _detect_pose(square: np.ndarray, settings: PoseSettings):
    size = 224
    tensor = from_uint8(cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA))
    raw_boxes, raw_scores = _run("pose_detection.tflite", tensor)
    boxes, keypoints, scores = _decode(raw_boxes, raw_scores, ssd_anchors(size, (8, 16, 32, 32, 32)), size, 4)
    return weighted_nms(boxes, keypoints, scores, settings.detection_score, settings.nms_iou)


def _refine_from_heatmap(points, heatmap, settings):
    """RefineLandmarksFromHeatmapCalculator: score-weighted mean of the heatmap around each landmark."""
    cells = heatmap.shape[0]
    offset = settings.heatmap_kernel // 2
    refined = points.copy()
    for index in range(min(len(points), heatmap.shape[-1])):
        col = int(points[index, 0] / 256 * cells)
        row = int(points[index, 1] / 256 * cells)
        r0, r1 = max(0, row - offset), min(cells, row + offset + 1)
        c0, c1 = max(0, col - offset), min(cells, col + offset + 1)
        if r0 >= r1 or c0 >= c1:
            continue
        confidence = _sigmoid(heatmap[r0:r1, c0:c1, index])
        if confidence.max() < settings.heatmap_min_confidence or confidence.sum() <= 0:
            continue
        rows, cols = np.mgrid[r0:r1, c0:c1]
        refined[index, 0] = (cols * confidence).sum() / confidence.sum() / cells * 256
        refined[index, 1] = (rows * confidence).sum() / confidence.sum() / cells * 256
    return refined


def _pose_landmarks(square, detection, settings):
    side_px = square.shape[0]
    _, points, _ = detection
    hip, scale_point = points[0] * side_px, points[1] * side_px
    box = 2.0 * float(np.linalg.norm(scale_point - hip))
    rotation = _normalize_radians(math.pi / 2 - math.atan2(-(scale_point[1] - hip[1]), scale_point[0] - hip[0]))
    matrix = _roi_matrix(hip, box * settings.roi_scale, rotation, 256)
    crop = _crop(square, matrix, 256).astype(np.float32) / 255.0
    raw, flag, segmentation, heatmap, _ = _run("pose_landmark_full.tflite", crop)
    raw = raw.reshape(39, 5)
    presence = float(flag.reshape(-1)[0])
    crop_points = _refine_from_heatmap(raw[:33, :2], heatmap, settings)
    landmarks = np.concatenate([_to_image(crop_points, matrix), _sigmoid(raw[:33, 3:4])], 1)
    mask = cv2.warpAffine(_sigmoid(segmentation[..., 0]).astype(np.float32), matrix,
                          (side_px, side_px), flags=cv2.INTER_LINEAR, borderValue=0)
    return landmarks, presence, mask


def _face_mesh(square, landmarks, settings):
    """Face mesh on a square ROI from the pose's face landmarks (0-10), rotated by the eyes."""
    right_eye, left_eye = landmarks[5, :2], landmarks[2, :2]
    ears = np.linalg.norm(landmarks[7, :2] - landmarks[8, :2])
    eyes = np.linalg.norm(left_eye - right_eye)
    width = max(ears, 2.2 * eyes)
    centre = landmarks[:11, :2].mean(0)
    rotation = _normalize_radians(-math.atan2(-(left_eye[1] - right_eye[1]), left_eye[0] - right_eye[0]))
    matrix = _roi_matrix(centre, width * settings.face_roi_scale, rotation, 192)
    crop = _crop(square, matrix, 192).astype(np.float32) / 255.0
    raw, flag = _run("face_landmark.tflite", crop)
    if _sigmoid(float(flag.reshape(-1)[0])) < settings.face_presence:
        return None
    return _to_image(raw.reshape(468, 3)[:, :2], matrix)


# BlazePose (wrist, pinky, index) of each hand, the person's left first.
HAND_POSE_LANDMARKS = ((15, 17, 19), (16, 18, 20))
# Hand landmarks that bound the ROI (hand_landmark_landmarks_to_roi.pbtxt): wrist, thumb base, finger bases.
HAND_ROI_LANDMARKS = (0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18)


def _hand_roi(wrist, middle, size, scale, shift):
    """A square ROI (centre, side, rotation) with the wrist-to-middle direction pointing up, shifted along it."""
    rotation = _normalize_radians(math.pi / 2 - math.atan2(-(middle[1] - wrist[1]), middle[0] - wrist[0]))
    centre = np.array([middle[0] - size * shift * math.sin(rotation),
                       middle[1] + size * shift * math.cos(rotation)], np.float32)
    return centre, size * scale, rotation


def _hand_landmarks_in(square, centre, side, rotation, settings):
    matrix = _roi_matrix(centre, side, rotation, 224)
    crop = _crop(square, matrix, 224).astype(np.float32) / 255.0
    outputs = _run("hand_landmark_full.tflite", crop)
    points, flag = outputs[0].reshape(21, 3)[:, :2], float(outputs[1].reshape(-1)[0])
    if flag < settings.hand_presence:
        return None
    return _to_image(points, matrix)


def _hands(square, landmarks, settings):
    """[2, 21, 2] hand landmarks (NaN where no hand is found), two passes per hand: ROI from the pose, then
    from the first pass's landmarks."""
    hands = np.full((2, 21, 2), np.nan, np.float32)
    for side, (wrist_id, pinky_id, index_id) in enumerate(HAND_POSE_LANDMARKS):
        wrist = landmarks[wrist_id, :2]
        middle = (2.0 * landmarks[index_id, :2] + landmarks[pinky_id, :2]) / 3.0
        size = 2.0 * float(np.linalg.norm(middle - wrist))
        if size < 4:
            continue
        points = _hand_landmarks_in(square, *_hand_roi(wrist, middle, size, settings.hand_pose_scale, 0.0), settings)
        if points is None:
            continue
        centre, _, rotation = _hand_roi(points[0], points[9], 1.0, 1.0, 0.0)
        cos, sin = math.cos(rotation), math.sin(rotation)
        offsets = points[list(HAND_ROI_LANDMARKS)] - points[9]
        local = offsets @ np.array([[cos, -sin], [sin, cos]], np.float32)  # into the ROI's upright frame
        low, high = local.min(0), local.max(0)
        middle_local = (low + high) / 2
        box = float(max(high - low))
        centre = points[9] + middle_local @ np.array([[cos, sin], [-sin, cos]], np.float32)
        centre = centre + box * settings.hand_shift * np.array([-sin, cos], np.float32)
        refined = _hand_landmarks_in(square, centre, box * settings.hand_landmark_scale, rotation, settings)
        hands[side] = refined if refined is not None else points
    return hands


def _selfie_mask(square):
    tensor = cv2.resize(square, (256, 256), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    (mask,) = _run("selfie_segmentation.tflite", tensor)
    return cv2.resize(mask[..., 0], square.shape[:2][::-1], interpolation=cv2.INTER_LINEAR)


def analyse_person(image: np.ndarray, settings: PoseSettings = PoseSettings()) -> PersonAnalysis:
    """Pose landmarks, person mask and face mesh of the one person in an RGB uint8 image.

    Raises NoPerson when nobody, or more than one person, is found.
    """
    height, width = image.shape[:2]
    square, left, top = _square(image)
    detections = _detect_pose(square, settings)
    if not detections:
        raise NoPerson("no person found")
    if len(detections) > 1 and detections[1][2] >= settings.second_person_score:
        raise NoPerson(f"{len(detections)} persons found (scores "
                       f"{', '.join(f'{d[2]:.2f}' for d in detections)}); expected one")
    landmarks, presence, pose_mask = _pose_landmarks(square, detections[0], settings)
    if presence < settings.presence:
        raise NoPerson(f"no person found (pose landmark presence {presence:.2f})")
    selfie = _selfie_mask(square)
    mask = np.maximum(pose_mask, selfie)[top:top + height, left:left + width]
    face = _face_mesh(square, landmarks, settings)
    if face is None:  # garments alone can pass the body detectors, never the face mesh
        raise NoPerson("no person found (no face where the pose puts the head)")
    hands = _hands(square, landmarks, settings)
    offset = np.array([left, top], np.float32)
    landmarks[:, :2] -= offset
    if face is not None:
        face = face - offset
    return PersonAnalysis(landmarks=landmarks.astype(np.float32), person_mask=mask.astype(np.float32),
                          face_mesh=face, detection_score=detections[0][2], hands=hands - offset)
