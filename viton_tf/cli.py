"""`viton-tf`: parses arguments and hands them to the jobs.

Each subcommand imports its job lazily, so `viton-tf synth --help` (and `synth` itself)
never pays for importing TensorFlow.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from viton_tf import methods
from viton_tf.config import HEIGHT, SECTIONS, WIDTH, SynthConfig, TrainConfig
from viton_tf.errors import UserError


def _existing_dir(value: str) -> Path:
    path = Path(value)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"no such folder: {value}")
    return path


def _existing_file(value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {value}")
    return path


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {number}")
    return number


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {number}")
    return number


def _multiple_of_16(value: str) -> int:
    number = _positive_int(value)
    if number % 16:
        raise argparse.ArgumentTypeError(f"must be a multiple of 16, got {number}")
    return number


def _fraction(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not 0.0 <= number < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {number}")
    return number


def _category(value: str) -> str:
    from viton_tf.config import CATEGORIES, CATEGORY_NAMES

    if value not in CATEGORIES:
        raise argparse.ArgumentTypeError(f"unknown category {value!r}; choose from {', '.join(CATEGORY_NAMES)}")
    return value


def _categories(value: str) -> tuple[str, ...]:
    from viton_tf.config import CATEGORIES, CATEGORY_NAMES

    names = tuple(name.strip() for name in value.split(",") if name.strip())
    unknown = [name for name in names if name not in CATEGORIES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown categories {unknown}; choose from {', '.join(CATEGORY_NAMES)}")
    return names


def _add_size(parser: argparse.ArgumentParser, height: int | None = HEIGHT, width: int | None = WIDTH) -> None:
    parser.add_argument("--height", type=_multiple_of_16, default=height,
                        help=f"image height (multiple of 16; default {height or HEIGHT})")
    parser.add_argument("--width", type=_multiple_of_16, default=width,
                        help=f"image width (multiple of 16; default {width or WIDTH})")


# --- handlers: each imports its job only when it runs -------------------------------

def _jobs_on_path() -> None:
    """Make the jobs (training, export, serving) importable by their folder names. A checkout has them
    beside viton_tf/; an installed copy keeps them under viton_tf_jobs/ (setup.py), so that it claims no
    generic top-level names in site-packages: that folder goes first on sys.path."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("viton_tf_jobs.training")
    except ModuleNotFoundError:  # a checkout without an install of this setup.py
        return
    if spec is None or not spec.submodule_search_locations:
        return
    root = str(Path(next(iter(spec.submodule_search_locations))).parent)
    if root not in sys.path:
        sys.path.insert(0, root)


def _synth(args: argparse.Namespace) -> int:
    from viton_tf.data.synthetic import write_world

    config = SynthConfig(pairs=args.pairs, height=args.height, width=args.width, seed=args.seed,
                         test_fraction=args.test_fraction, categories=args.categories, layout=args.layout)
    write_world(args.out, config, progress=not args.quiet)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from training.demo import run_demo

    return run_demo(out=args.out, work=args.work, quick=args.quick)


def _train(args: argparse.Namespace) -> int:
    from training.fit import run_training

    return run_training(args)


def _warp_eval(args: argparse.Namespace) -> int:
    from training.warp_eval import run_warp_eval

    return run_warp_eval(args)


def _train_layout(args: argparse.Namespace) -> int:
    from training.layout import run_train_layout

    return run_train_layout(args)


def _export(args: argparse.Namespace) -> int:
    from export.export import run_export

    return run_export(args)


def _serve(args: argparse.Namespace) -> int:
    from serving.server import run_server
    from viton_tf.config import ServingConfig

    if args.max_request_bytes is None:
        args.max_request_bytes = ServingConfig().max_request_bytes
    return run_server(args)


def _client(args: argparse.Namespace) -> int:
    """Prepare the request here (the library's pose and parsing, when not given), send it with serving/."""
    import shutil
    import tempfile

    from serving.client import run_client

    if (args.parse is None) != (args.keypoints is None):
        raise UserError("--parse and --keypoints go together: give both (a prepared photo) "
                        "or neither (the person photo is prepared here, as `viton-tf prepare` does)")
    category = args.category
    if args.parse is None:  # the photo goes at its own size: the model resizes it, the layout answers at it
        from export.tryon import garment_category, prepared_request
        from viton_tf.config import HEIGHT, WIDTH

        work = Path(tempfile.mkdtemp(prefix="viton-client-"))
        try:
            inputs = prepared_request(args.person, args.cloth, HEIGHT, WIDTH, work, full_resolution=True)
            category = garment_category(work / "prepared", args.cloth, category)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    else:
        from export.tryon import request_from_files

        inputs = request_from_files(args.person, args.cloth, args.parse, args.keypoints)
    if category not in (None, "upper"):  # upper goes to serving_default, which every export has
        import numpy as np

        inputs["category"] = np.array([category.encode()], dtype=object)
    return run_client(args, inputs)


def _evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import run_evaluate

    return run_evaluate(args)


def _prepare(args: argparse.Namespace) -> int:
    from export.prepare import run_prepare

    return run_prepare(args)


def _assets(args: argparse.Namespace) -> int:
    from viton_tf.assets import ensure_assets

    ensure_assets(quiet=args.quiet)
    return 0


def _tryon(args: argparse.Namespace) -> int:
    from export.tryon import run_tryon

    return run_tryon(args)


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line, naming the subcommand and the flag."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


# --- the parser: one function per subcommand ----------------------------------------

def _add_synth(sub) -> None:
    p = sub.add_parser("synth", help="generate the synthetic try-on world (VITON-HD or DressCode layout)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--pairs", type=_positive_int, default=SynthConfig.pairs, help="number of person/garment pairs")
    _add_size(p)
    p.add_argument("--seed", type=int, default=SynthConfig.seed)
    p.add_argument("--test-fraction", type=_fraction, default=SynthConfig.test_fraction,
                   help="share of pairs in the test split")
    p.add_argument("--categories", type=_categories, default=SynthConfig.categories,
                   help="comma-separated garment categories: upper,lower,dress")
    p.add_argument("--layout", choices=("vitonhd", "dresscode"), default=SynthConfig.layout,
                   help="vitonhd: with the synthetic truths (gt-warp, unpaired images); dresscode: the same persons "
                        "and garments in DressCode's layout, to test its reader")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_synth)


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="the main job: synthesise, train, export, serve, try on real photos")
    p.add_argument("--out", type=Path, default=Path("results"), help="where the figures and page go")
    p.add_argument("--work", type=Path, default=Path("work"), help="scratch folder (data, runs, models)")
    p.add_argument("--quick", action="store_true", help="smallest settings, for a smoke test")
    p.set_defaults(handler=_demo)


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a method (VITON's stage 1 or 2, or a baseline) with model.fit",
                       description="Settings come from the defaults, then --config, then the flags given, "
                                   "then --set; a flag left out keeps the --config file's value.")
    p.add_argument("--config", type=_existing_file, default=None,
                   help="a named experiment (configs/*.json: sections of ExperimentConfig)")
    p.add_argument("--stage", type=int, choices=(1, 2), default=None, help="VITON stage (with --method viton)")
    p.add_argument("--method", default=None, choices=methods.NAMES, help=f"default: {TrainConfig.method}")
    p.add_argument("--data", type=_existing_dir, required=True, help="dataset folder (VITON-HD layout)")
    p.add_argument("--out", type=Path, required=True, help="run folder (config, checkpoints, logs)")
    p.add_argument("--steps", type=_positive_int, default=None, help=f"default: {TrainConfig.steps}")
    p.add_argument("--batch-size", type=_positive_int, default=None, help=f"default: {TrainConfig.batch_size}")
    _add_size(p, None, None)
    p.add_argument("--vgg-weights", default=None,
                   help=f"imagenet, none, or a path to VGG19 weights (default: {TrainConfig.vgg_weights})")
    p.add_argument("--gan", action="store_true", default=None, help="add a PatchGAN adversarial term")
    p.add_argument("--strategy", default=None, choices=("auto", "mirrored", "multi-worker", "default"),
                   help=f"default: {TrainConfig.strategy}")
    p.add_argument("--resume", action="store_true", help="continue a killed run from its backup")
    p.add_argument("--seed", type=int, default=None, help=f"default: {TrainConfig.seed}")
    p.add_argument("--checkpoint-every", type=_positive_int, default=None,
                   help="steps between backups (for --resume) and weight files "
                        f"(default: {TrainConfig.checkpoint_every})")
    p.add_argument("--image-every", type=_positive_int, default=None,
                   help=f"steps between TensorBoard image grids (default: {TrainConfig.image_every})")
    p.add_argument("--cache", default=None, choices=("none", "file", "memory"),
                   help="cache decoded examples: none (memory bounded), file (under the run folder) or memory "
                        f"(small datasets only; default: {TrainConfig.cache})")
    p.add_argument("--skip-bad", action="store_true", default=None,
                   help="skip pairs with missing or corrupt files (one warning counts them) instead of failing")
    p.add_argument("--precision", default=None, choices=("float32", "mixed_float16", "mixed_bfloat16"),
                   help="mixed_float16: GPUs, with loss scaling; mixed_bfloat16: GPUs/TPUs and CPUs with AMX "
                        f"(default: {TrainConfig.precision})")
    p.add_argument("--val-split", default=None, choices=("test",),
                   help="validate on the test split's pairs (each person with their own garment)")
    p.add_argument("--val-fraction", type=_fraction, default=None,
                   help="validate on this share of the training pairs, held out (the pairs file's last ones)")
    p.add_argument("--val-every", type=_positive_int, default=None,
                   help=f"steps between validations (default: {TrainConfig.val_every})")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="override a config field, e.g. generator.base_filters=32 or loss.stage1_perceptual=0 "
                        "(sections: " + ", ".join(SECTIONS) + "); repeatable")
    p.set_defaults(handler=_train)


def _add_warp_eval(sub) -> None:
    p = sub.add_parser("warp-eval", help="measure the shape-context TPS warp against the true warp")
    p.add_argument("--data", type=_existing_dir, required=True)
    p.add_argument("--out", type=Path, required=True, help="JSON report")
    p.add_argument("--split", default="test")
    p.add_argument("--matcher", default="sinkhorn", choices=("sinkhorn", "hungarian", "opencv"))
    p.add_argument("--no-collar-fix", action="store_true")
    p.add_argument("--no-occluders", action="store_true",
                   help="ignore the arms and hair in front of the garment (the bare warp)")
    p.add_argument("--set", action="append", default=[], metavar="warp.FIELD=VALUE",
                   help="override a WarpConfig field, e.g. warp.sinkhorn_iterations=20; repeatable")
    p.add_argument("--height", type=_multiple_of_16, default=None)
    p.add_argument("--width", type=_multiple_of_16, default=None)
    p.set_defaults(handler=_warp_eval)


def _add_train_layout(sub) -> None:
    p = sub.add_parser("train-layout", help="train the real-photo try-on's layout network on the synthetic world")
    p.add_argument("--category", type=_category, default="upper", help="upper, lower or dress")
    p.add_argument("--out", type=Path, default=None,
                   help="weights file to write (.weights.h5; default: the category's shipped weights)")
    p.add_argument("--examples", type=_positive_int, default=768)
    p.add_argument("--steps", type=_positive_int, default=1200)
    p.add_argument("--batch-size", type=_positive_int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an existing weights file")
    p.set_defaults(handler=_train_layout)


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export a run (or a method that needs none) as a TF Serving SavedModel version")
    p.add_argument("--run", type=_existing_dir, default=None, help="a trained run folder")
    p.add_argument("--method", default=None, choices=methods.EXPORTABLE,
                   help="the method to export (default: the run's own; layout and nonparametric need no --run)")
    p.add_argument("--out", type=Path, required=True, help="model base path (versions are folders in it)")
    p.add_argument("--version", type=_positive_int, required=True)
    p.add_argument("--data", type=_existing_dir, default=None,
                   help="dataset whose first test pair makes the warm-up/validation request "
                        "(default: one synthetic pair)")
    p.add_argument("--precision", default="float32", choices=("float32", "bfloat16"),
                   help="arithmetic of the networks (bfloat16: faster on CPUs with AMX/AVX512-BF16)")
    p.add_argument("--xla", action="store_true",
                   help="compile the warp with XLA (faster on CPU; TF Serving then needs "
                        "--xla_cpu_compilation_enabled=true, an experimental flag)")
    p.set_defaults(handler=_export)


def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="a local server speaking TF Serving's gRPC and REST APIs")
    p.add_argument("--model-config", type=_existing_file, required=True, help="TF Serving model_config_list")
    p.add_argument("--grpc-port", type=int, required=True)
    p.add_argument("--rest-port", type=int, default=None)
    p.add_argument("--host", default="0.0.0.0",
                   help="address to listen on (default: every IPv4 interface, as TF Serving's gRPC port; "
                        "127.0.0.1: this machine only)")
    p.add_argument("--rest-read-timeout", type=_positive_float, default=30.0, metavar="SECONDS",
                   help="REST: close a connection idle this long, or whose headers or body take longer to arrive")
    p.add_argument("--batching-config", type=_existing_file, default=None)
    p.add_argument("--poll-seconds", type=float, default=1.0, help="how often the base paths are rescanned")
    p.add_argument("--max-request-bytes", type=_positive_int, default=None,
                   help="larger requests get INVALID_ARGUMENT (default: ServingConfig.max_request_bytes)")
    p.set_defaults(handler=_serve)


def _add_client(sub) -> None:
    p = sub.add_parser("client", help="call a served model (TF Serving or `viton-tf serve`)")
    p.add_argument("--server", required=True, help="HOST:PORT")
    p.add_argument("--person", type=_existing_file, required=True)
    p.add_argument("--cloth", type=_existing_file, required=True)
    p.add_argument("--keypoints", type=_existing_file, default=None,
                   help="OpenPose JSON (BODY_25 or COCO-18) of a prepared photo; without it and --parse, "
                        "the person photo is prepared here (pose and parsing, as `viton-tf prepare`)")
    p.add_argument("--parse", type=_existing_file, default=None, help="LIP parsing PNG of a prepared photo")
    p.add_argument("--out", type=Path, required=True, help="try-on PNG")
    p.add_argument("--category", type=_category, default=None,
                   help="upper, lower or dress (signature serving_category; upper goes to serving_default, which "
                        "older exports have too); default: guessed from the product photo when it is prepared "
                        "here, else upper")
    p.add_argument("--model", default="viton")
    p.add_argument("--version", type=_positive_int, default=None)
    p.add_argument("--rest", action="store_true", help="use the REST API instead of gRPC")
    p.set_defaults(handler=_client)


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="compare every trained method on the same test pairs")
    p.add_argument("--data", type=_existing_dir, required=True)
    p.add_argument("--runs", type=_existing_dir, required=True, help="folder of run folders")
    p.add_argument("--out", type=Path, required=True, help="report folder")
    p.add_argument("--split", default="test")
    p.add_argument("--inception-weights", default=None, help="imagenet or a path; IS/FID need real weights")
    p.set_defaults(handler=_evaluate)


def _add_prepare(sub) -> None:
    p = sub.add_parser("prepare", help="own photos -> dataset layout (pose, parsing, cloth masks), offline")
    p.add_argument("--persons", type=_existing_dir, required=True)
    p.add_argument("--cloths", type=_existing_dir, required=True)
    p.add_argument("--out", type=Path, required=True)
    _add_size(p)
    p.add_argument("--pairs", type=_existing_file, default=None,
                   help="pairs file (default: every person with every cloth)")
    p.add_argument("--overwrite", action="store_true", help="replace a dataset already in --out")
    p.set_defaults(handler=_prepare)


def _add_tryon(sub) -> None:
    p = sub.add_parser("tryon", help="prepare + the exported model on one person photo and one garment")
    p.add_argument("--model", type=Path, default=None, help="exported model folder (a version, or a base path)")
    p.add_argument("--person", type=_existing_file, required=True)
    p.add_argument("--cloth", type=_existing_file, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--method", default="layout", choices=methods.EXPORTABLE,
                   help="layout (default): the real-photo try-on, at the photo's own size; viton: an exported "
                        "model (--model); nonparametric: the paper's warp-and-paste")
    p.add_argument("--category", type=_category, default=None,
                   help="upper, lower or dress: the garment to replace (default: guessed from the product photo's "
                        "shape, and printed)")
    p.set_defaults(handler=_tryon)


def _add_assets(sub) -> None:
    p = sub.add_parser("assets", help="download the MediaPipe models `prepare` runs (once, then offline)")
    p.add_argument("--quiet", action="store_true", help="print nothing when the models are there")
    p.set_defaults(handler=_assets)


SUBCOMMANDS = (_add_synth, _add_demo, _add_train, _add_warp_eval, _add_train_layout, _add_export, _add_serve,
               _add_client, _add_evaluate, _add_prepare, _add_tryon, _add_assets)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="viton-tf", description="Image-based virtual try-on (VITON) in TensorFlow/Keras.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _jobs_on_path()
    # TF's C++ start-up chatter (CUDA probing, oneDNN notes) is not for users; warnings and errors stay.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return int(args.handler(args) or 0)
    except UserError as error:
        print(f"viton-tf {args.command}: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        # A reader's UserError raised inside tf.data reaches us wrapped in a tf.errors.OpError.
        if type(error).__module__.startswith("tensorflow"):
            from viton_tf.data.readers import as_user_error

            user_error = as_user_error(error)
            if user_error is not None:
                print(f"viton-tf {args.command}: error: {user_error}", file=sys.stderr)
                return 2
        raise
    except KeyboardInterrupt:
        print(f"viton-tf {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
