"""viton-tf: image-based virtual try-on (VITON, CVPR 2018) in TensorFlow/Keras."""
from setuptools import find_packages, setup

# The jobs live in the checkout as top-level folders and import one another by those names (`from
# training.train import ...`). An installed copy keeps them under viton_tf_jobs/, so that it claims no
# generic top-level names (training, export, serving) in site-packages; `viton-tf` puts that folder first
# on sys.path before it imports a job (viton_tf/cli.py, _jobs_on_path).
JOBS = ("training", "export", "serving", "configs")  # configs/: the named experiments, data only

setup(
    name="viton-tf",
    version="0.1.0",
    description="Image-based virtual try-on (VITON) in TensorFlow/Keras, from training to TF Serving.",
    python_requires=">=3.11",
    packages=find_packages(include=["viton_tf", "viton_tf.*"]) + [f"viton_tf_jobs.{job}" for job in JOBS],
    package_dir={f"viton_tf_jobs.{job}": job for job in JOBS},
    # The real-photo try-on's layout network (viton_tf/weights/, trained on the synthetic world by
    # `viton-tf train-layout`), the named experiments and the serving configs.
    package_data={"viton_tf": ["weights/*.weights.h5", "weights/*.json"], "viton_tf_jobs.configs": ["*.json"],
                  "viton_tf_jobs.serving": ["*.config"]},
    include_package_data=True,
    install_requires=[
        "tensorflow==2.21.0",
        "tensorflow-serving-api==2.21.0",
        # `viton-tf serve`'s REST side: read/idle timeouts, a body limit checked before the body is read,
        # graceful shutdown; pure Python with an optional C speedup, maintained, no other dependency
        "tornado==6.6.1",
        "opencv-contrib-python-headless==5.0.0.93",
        "numpy>=1.26,<3",
        "scipy>=1.13",
        "tqdm>=4.66",
        "tensorboard==2.21.0",  # TF 2.21 no longer pulls it in; the TensorBoard callback needs it
        "ai-edge-litert==2.3.0",  # runs the BlazePose/MediaPipe .tflite models of `viton-tf prepare`
    ],
    extras_require={"test": ["pytest>=8", "pytest-xdist>=3.6", "filelock>=3.12"]},
    entry_points={"console_scripts": ["viton-tf=viton_tf.cli:main"]},
)
