"""viton_tf/hardware.py: the CPU's features read from its flags, and the bfloat16 warning."""
from viton_tf import hardware


def test_bfloat16_is_flagged_on_a_cpu_without_amx_or_avx512_bf16():
    epyc = ["avx2", "fma", "sse4_2"]
    warning = hardware.precision_warning("bfloat16", epyc)
    assert "emulated" in warning and "amx_bf16" in warning and "avx512_bf16" in warning
    assert hardware.precision_warning("bfloat16", epyc + ["amx_bf16"]) is None
    assert hardware.precision_warning("bfloat16", epyc + ["avx512_bf16"]) is None
    assert hardware.precision_warning("float32", epyc) is None


def test_this_machines_cpu_is_read_not_assumed():
    machine = hardware.cpu()
    assert machine["model"] and isinstance(machine["flags"], list)
    assert hardware.fast_bfloat16() == any(f in machine["flags"] for f in hardware.BFLOAT16_FLAGS)
