"""viton-tf: image-based virtual try-on (VITON, CVPR 2018) in TensorFlow/Keras."""

__version__ = "0.1.0"
