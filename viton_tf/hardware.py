"""What this machine's CPU can do fast, read from its flags (never assumed: the machines change)."""
from __future__ import annotations

import platform
from pathlib import Path

# oneDNN runs bfloat16 convolutions natively with these; without them it emulates (measured 10x slower).
BFLOAT16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu() -> dict:
    """{"model": ..., "flags": [...]} of this machine's CPU (Linux /proc/cpuinfo; empty flags elsewhere)."""
    model, flags = platform.processor() or platform.machine(), []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = value.split()
    except OSError:
        pass
    return {"model": model, "flags": sorted(set(flags))}


def fast_bfloat16(flags: list[str] | None = None) -> bool:
    flags = cpu()["flags"] if flags is None else flags
    return any(flag in flags for flag in BFLOAT16_FLAGS)


def precision_warning(precision: str, flags: list[str] | None = None) -> str | None:
    """A warning when `precision` will be slow on this CPU, else None."""
    if precision == "bfloat16" and not fast_bfloat16(flags):
        return ("bfloat16 on this CPU is emulated (no " + " or ".join(BFLOAT16_FLAGS) + " in /proc/cpuinfo): "
                "expect it to be several times slower than float32 here; it pays off on CPUs with AMX or "
                "AVX512-BF16 and on GPUs")
    return None
