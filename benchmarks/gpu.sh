#!/usr/bin/env bash
# The GPU check of issue 14 (benchmarks/gpu.py): training ms/step of both stages at 256x192 batch 16 in
# float32 and mixed_float16, inference ms/image at batch 1 and 8; JSON into $OUT (default benchmarks/results).
# Under 5 minutes on one GPU (not yet run on one: see the README's training section).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
"$PYTHON" -c "import tensorflow as tf, sys; gpus = tf.config.list_physical_devices('GPU'); print('GPUs:', gpus); sys.exit(0 if gpus or '${ALLOW_CPU:-}' else 'no GPU visible (ALLOW_CPU=1 to run anyway)')"
timeout 600 "$PYTHON" benchmarks/gpu.py --out "$OUT/gpu.json" "$@"
