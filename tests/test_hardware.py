"""model.loss_precision auto: bfloat16 exactly where the hardware multiplies it natively."""

import pytest

from trainer import hardware

# A trimmed /proc/cpuinfo of two cores; the flags line is what counts.
CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
flags\t\t: fpu sse2 avx2 avx512f {extra}
bogomips\t: 4000.00

processor\t: 1
flags\t\t: fpu sse2 avx2 avx512f {extra}
"""


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO.format(extra="avx512_bf16"))
    assert {"avx2", "avx512f", "avx512_bf16"} <= hardware.cpu_flags(str(path))
    assert hardware.cpu_flags(str(tmp_path / "absent")) == frozenset()   # macOS, Windows


@pytest.mark.parametrize("extra, gpus, native", [
    ("avx512_bf16", [], True),           # Cooper Lake, Zen 4
    ("amx_bf16 amx_tile", [], True),     # Sapphire Rapids
    ("avx512_vnni", [], False),          # Cascade Lake: bfloat16 would be emulated, slower
    ("", [(8, 0)], True),                # A100
    ("avx512_bf16", [(7, 0)], False),    # a V100 trains, whatever the CPU has
    ("", [(9, 0), (7, 5)], False),       # every GPU must have it
    ("", [None], False),                 # a GPU that reports no capability
])
def test_native_bfloat16_by_cpu_flags_and_gpus(tmp_path, extra, gpus, native):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO.format(extra=extra))
    assert hardware.native_bfloat16(hardware.cpu_flags(str(path)), gpus) is native


def test_loss_precision_auto_follows_this_machine_and_explicit_values_stay():
    expected = ("bfloat16" if hardware.native_bfloat16(hardware.cpu_flags(),
                                                       hardware.gpu_capabilities())
                else "float32")
    assert hardware.loss_precision("auto") == expected
    assert hardware.loss_precision("float32") == "float32"
    assert hardware.loss_precision("bfloat16") == "bfloat16"
