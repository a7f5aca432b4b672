"""CP-VTON's GMM + TOM timed on this CPU: the peer that benchmarks/run_all.py --peer cpvton compares against.

    PEER_PYTHON benchmarks/peer_cpvton.py --peer-dir DIR --threads N [--runs 30]

Runs under the peer's own Python (PyTorch and torchvision installed; never viton_tf or TensorFlow). DIR holds
sergeywong/cp-vton's networks.py, imported as is; `.cuda()` is made a no-op so that its GPU-only code runs on
the CPU (and FeatureCorrelation's output made contiguous, see below). Random weights (latency does not depend on them), 256x192, batch 1, torch.no_grad(), eval mode,
N intra-op threads. What is timed is CP-VTON's test.py forward, tensors in and out: GMM -> grid_sample of the
cloth and its mask (test_gmm) -> TOM -> tanh / sigmoid / composition (test_tom). Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from types import SimpleNamespace


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-dir", required=True, help="a folder with cp-vton's networks.py")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=192)
    args = parser.parse_args(argv)

    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    # CP-VTON moves modules and tensors to the GPU unconditionally (networks.py: TpsGridGen, FeatureRegression).
    nn.Module.cuda = lambda self, *a, **k: self
    torch.Tensor.cuda = lambda self, *a, **k: self
    sys.path.insert(0, args.peer_dir)
    import networks  # sergeywong/cp-vton's networks.py, unmodified

    # The one shim beyond .cuda(): FeatureCorrelation returns a transposed view, today's CPU convolutions keep
    # its strides and FeatureRegression's x.view() then refuses it; a contiguous copy of [1, 192, 16, 12].
    correlate = networks.FeatureCorrelation.forward
    networks.FeatureCorrelation.forward = lambda self, a, b: correlate(self, a, b).contiguous()

    torch.manual_seed(0)
    opt = SimpleNamespace(fine_height=args.height, fine_width=args.width, grid_size=5)  # test.py's defaults
    gmm = networks.GMM(opt).eval()
    tom = networks.UnetGenerator(25, 4, 6, ngf=64, norm_layer=nn.InstanceNorm2d).eval()  # test.py
    agnostic = torch.randn(1, 22, args.height, args.width)
    cloth = torch.rand(1, 3, args.height, args.width) * 2 - 1
    cloth_mask = (torch.rand(1, 1, args.height, args.width) > 0.5).float()

    def run_gmm():
        grid, _ = gmm(agnostic, cloth)
        return (F.grid_sample(cloth, grid, padding_mode="border", align_corners=True),
                F.grid_sample(cloth_mask, grid, padding_mode="zeros", align_corners=True))

    def run_tom(warped_cloth):
        outputs = tom(torch.cat([agnostic, warped_cloth], 1))
        rendered, composite = torch.split(outputs, 3, 1)
        composite = torch.sigmoid(composite)
        return warped_cloth * composite + torch.tanh(rendered) * (1 - composite)

    def timed(function, *inputs):
        for _ in range(3):
            function(*inputs)
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            function(*inputs)
            times.append(time.perf_counter() - start)
        values = np.array(times) * 1000.0
        return {"median_ms": round(float(np.median(values)), 1), "p95_ms": round(float(np.percentile(values, 95)), 1),
                "min_ms": round(float(values.min()), 1), "runs": len(values), "times_ms": [round(v, 2) for v in values]}

    with torch.no_grad():
        warped_cloth, _ = run_gmm()
        report = {"gmm": timed(run_gmm), "tom": timed(run_tom, warped_cloth),
                  "gmm_plus_tom": timed(lambda: run_tom(run_gmm()[0]))}
    report.update({"peer": "cpvton", "torch": torch.__version__, "threads": torch.get_num_threads(),
                   "mkldnn": torch.backends.mkldnn.is_available(), "height": args.height, "width": args.width,
                   "batch_size": 1, "weights": "random (torch.manual_seed(0))",
                   "timed": "test.py's forward, tensors in and out: GMM + 2 grid_sample, TOM + composition"})
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
