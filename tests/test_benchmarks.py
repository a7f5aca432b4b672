"""benchmarks/run_all.py's peer mode: it fails before any export, naming what is missing, and its ratios."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run_all():
    spec = importlib.util.spec_from_file_location("run_all", REPO / "benchmarks" / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_peer_mode_fails_clearly(tmp_path):
    run_all = _run_all()
    with pytest.raises(SystemExit, match="needs --peer-python"):
        run_all.main(["--peer", "cpvton"])
    with pytest.raises(SystemExit, match="no networks.py there"):
        run_all.main(["--peer", "cpvton", "--peer-python", sys.executable, "--peer-dir", str(tmp_path)])
    (tmp_path / "networks.py").write_text("")
    with pytest.raises(SystemExit, match="cannot run it"):
        run_all.main(["--peer", "cpvton", "--peer-python", str(tmp_path / "none"), "--peer-dir", str(tmp_path)])
    no_torch = tmp_path / "python"
    no_torch.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named torch' >&2\nexit 1\n")
    no_torch.chmod(0o755)
    with pytest.raises(SystemExit, match="PyTorch and torchvision are not importable"):
        run_all.main(["--peer", "cpvton", "--peer-python", str(no_torch), "--peer-dir", str(tmp_path)])


def test_ratios_are_ours_over_the_peer():
    run_all = _run_all()
    runs = lambda low, middle: {"min_ms": low, "median_ms": middle}
    result = {"peer": {"gmm_plus_tom": runs(100.0, 200.0)},
              "end_to_end": {"float32": {"batch1": runs(75.0, 100.0)}, "bfloat16": {"batch1": runs(50.0, 60.0)}}}
    assert run_all.ratios(result) == {"float32": 0.5, "bfloat16": 0.3}
    assert run_all.ratios(result, "min_ms") == {"float32": 0.75, "bfloat16": 0.5}
    pooled = run_all.pooled([{"tom": {"times_ms": [1.0, 3.0]}}, {"tom": {"times_ms": [2.0]}}], "tom")
    assert (pooled["median_ms"], pooled["min_ms"], pooled["runs"]) == (2.0, 1.0, 3)
