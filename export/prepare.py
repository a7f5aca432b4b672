"""`viton-tf prepare`: own photos -> the dataset layout, offline (the work is viton_tf.prepare's)."""
from __future__ import annotations

from viton_tf.prepare import prepare_folder, summary


def run_prepare(args) -> int:
    """The CLI handler: 0 when every photo was prepared, 1 when some failed."""
    report = prepare_folder(args.persons, args.cloths, args.out, args.height, args.width, args.pairs,
                            overwrite=args.overwrite)
    print(summary(report))
    print(f"wrote {args.out}/test/ and {args.out}/test_pairs.txt")
    return 1 if report.errors else 0
