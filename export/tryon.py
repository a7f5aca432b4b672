"""`viton-tf tryon`: one person photo and one product photo -> a try-on PNG, offline.

The photos are prepared as `viton-tf prepare` does (BlazePose keypoints, parsing, cloth mask), then run
through the real-photo try-on built in process (`--method layout`, the default: the shipped layout
weights, output at the photo's own size), an exported SavedModel (`--method viton`, trained weights)
or the paper's warp-and-paste (`--method nonparametric`, no weights).
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from viton_tf.errors import UserError


def find_version(model: Path) -> Path:
    """A SavedModel folder: MODEL itself, or its highest integer version when MODEL is a base path."""
    model = Path(model)
    if (model / "saved_model.pb").is_file():
        return model
    from serving.servables import version_folders  # TF Serving's rule: integer folder names only

    versions = {number: path for number, path in version_folders(model).items() if (path / "saved_model.pb").is_file()}
    if not versions:
        raise UserError(f"{model}: no saved_model.pb here nor in an integer version folder")
    return versions[max(versions)]


def describe_training(config: Path) -> str:
    """What the exported weights were trained for, from the run config the export carries."""
    if not config.is_file():
        return "no run config in the export"
    saved = json.loads(config.read_text())
    stages = [f"{name.replace('train_', '')} {run['steps']} steps of batch {run['batch_size']} at "
              f"{run['height']}x{run['width']}, VGG19 weights: {run['vgg_weights']}"
              for name, run in sorted(saved.items()) if name.startswith("train_")]
    return "; ".join(stages) or "no training recorded"


def request_from_files(person: Path, cloth: Path, parse: Path, keypoints: Path) -> dict:
    """serving_default's inputs (batch of one) from a prepared photo's files: the three images' bytes and the
    keypoints JSON (OpenPose BODY_25 or COCO-18; the most confident person), in pixels of the person photo."""
    import numpy as np

    from viton_tf.data.readers import read_keypoints_json

    inputs = {name: np.array([Path(path).read_bytes()], dtype=object)
              for name, path in (("person_image", person), ("cloth_image", cloth), ("parse_image", parse))}
    inputs["keypoints"] = read_keypoints_json(keypoints)[None]
    return inputs


def prepared_request(person: Path, cloth: Path, height: int, width: int, work: Path,
                     full_resolution: bool = False) -> dict:
    """Prepare both photos into WORK and return the serving_default inputs (batch of one); with
    `full_resolution` the person and product photos go in at their own size (keypoints in its pixels)."""
    import numpy as np

    from viton_tf.data.readers import read_keypoints_json
    from viton_tf.prepare import prepare_folder

    for role, photo in (("persons", person), ("cloths", cloth)):
        (work / role).mkdir(parents=True)
        shutil.copy(photo, work / role / Path(photo).name)
    report = prepare_folder(work / "persons", work / "cloths", work / "prepared", height, width, progress=False)
    if report.errors:
        message = "; ".join(report.errors.values())
        for role, photo in (("persons", person), ("cloths", cloth)):  # name the user's files, not our copies
            message = message.replace(str(work / role / Path(photo).name), str(photo))
        raise UserError(message)
    split = work / "prepared" / "test"
    person_stem, cloth_stem = Path(person).stem, Path(cloth).stem
    keypoints = read_keypoints_json(split / "openpose_json" / f"{person_stem}_keypoints.json")
    if full_resolution:  # the photo as the user sees it (EXIF orientation applied), losslessly, at its size
        import cv2

        # The product photo too: re-encoding it small (prepare's JPEG) rings around the garment, and that
        # ringing joins the cloth mask; the model's own antialiased resize of the original does not.
        photo, product = (cv2.imread(str(path), cv2.IMREAD_COLOR) for path in (person, cloth))
        scale = np.array([photo.shape[1] / width, photo.shape[0] / height, 1.0], np.float32)
        return {"person_image": np.array([cv2.imencode(".png", photo)[1].tobytes()]),
                "cloth_image": np.array([cv2.imencode(".png", product)[1].tobytes()]),
                "parse_image": np.array([(split / "image-parse-v3" / f"{person_stem}.png").read_bytes()]),
                "keypoints": (keypoints * scale)[None].astype(np.float32)}
    return {"person_image": np.array([(split / "image" / f"{person_stem}.jpg").read_bytes()]),
            "cloth_image": np.array([(split / "cloth" / f"{cloth_stem}.jpg").read_bytes()]),
            "parse_image": np.array([(split / "image-parse-v3" / f"{person_stem}.png").read_bytes()]),
            "keypoints": keypoints[None].astype(np.float32)}


def garment_category(prepared: Path, cloth: Path, given: str | None) -> str:
    """The category to try on: the one given, else guessed from the product's mask shape (printed)."""
    if given is not None:
        return given
    import cv2

    from viton_tf.data.cloth_mask import product_category

    mask = cv2.imread(str(Path(prepared) / "test" / "cloth-mask" / f"{Path(cloth).stem}.jpg"), cv2.IMREAD_GRAYSCALE)
    name, reason = product_category(mask > 127)
    print(f"category: {name}, guessed from {Path(cloth).name}'s shape ({reason}); pass --category to choose")
    return name


def check_writable(out: Path) -> None:
    """Fail before any work when OUT cannot be written (its folder is made if missing)."""
    out = Path(out)
    if out.is_dir():
        raise UserError(f"--out {out}: is a folder; give a file name such as {out / 'tryon.png'}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.", delete=True)
        probe.close()
    except OSError as error:
        raise UserError(f"--out {out}: cannot write there ({error.strerror})") from None


def run_tryon(args) -> int:
    import numpy as np
    import tensorflow as tf

    check_writable(args.out)
    work = Path(tempfile.mkdtemp(prefix="viton-tryon-"))
    try:
        full_resolution = False
        if args.method == "viton":
            if args.model is None:
                raise UserError("--method viton needs --model (an exported model); "
                                "--method layout and --method nonparametric need no weights")
            version = find_version(args.model)
            model = tf.saved_model.load(str(version))
            if "serving_category" not in model.signatures:  # exported before categories: upper only
                if args.category not in (None, "upper"):
                    raise UserError(f"--model {version}: exported before categories (no serving_category "
                                    f"signature): it tries on upper-body garments only, not {args.category}")
                args.category = "upper"
            serve = model.signatures.get("serving_category", model.signatures["serving_default"])
            height, width = serve.structured_outputs["warped_cloth"].shape[1:3]
            print(f"viton: weights of {version} ({describe_training(version / 'assets' / 'config.json')})")
        elif args.method == "layout":
            from viton_tf.config import HEIGHT, WIDTH
            from viton_tf.layout import load_layout_nets, weights_path
            from viton_tf.tryon import TryOnModule

            height, width, full_resolution = HEIGHT, WIDTH, True
            serve = TryOnModule(height, width, method="layout", layout_nets=load_layout_nets()).serving_category
            print("layout: the shipped layout networks (one per category, trained on the synthetic world), "
                  "the person's own pixels outside the changed region")
        else:
            from viton_tf.config import HEIGHT, WIDTH
            from viton_tf.tryon import TryOnModule

            height, width = HEIGHT, WIDTH
            serve = TryOnModule(height, width, method="nonparametric").serving_category
            print("nonparametric: shape-context TPS warp and paste, no trained weights")
        inputs = prepared_request(args.person, args.cloth, int(height), int(width), work, full_resolution)
        if args.method != "viton" or "category" in serve.structured_input_signature[1]:
            inputs["category"] = np.array([garment_category(work / "prepared", args.cloth, args.category)])
        try:
            outputs = serve(**{name: tf.constant(value) for name, value in inputs.items()})
        except tf.errors.InvalidArgumentError as error:
            message = error.message.split("\n")[0]
            raise UserError(message.replace("cloth_image", str(args.cloth)).replace("person_image", str(args.person))
                            ) from None
        partial = args.out.with_name(f".{args.out.name}.partial")
        partial.write_bytes(outputs["tryon_png_bytes"].numpy()[0])
        partial.replace(args.out)
        print(f"wrote {args.out}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)
