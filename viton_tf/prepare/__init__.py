"""Own photos -> the VITON-HD layout, offline (`viton-tf prepare`, export/prepare.py).

Modules: pose (BlazePose keypoints as OpenPose BODY_25), parsing (a LIP parsing from the person mask,
the face mesh, the hands and the keypoints), folder (both, plus cloth masks, over two folders of photos),
accuracy (how close both come to a shipped LIP parsing and OpenPose keypoints).
"""
from viton_tf.prepare.folder import Report, prepare_folder, summary

__all__ = ["Report", "prepare_folder", "summary"]
