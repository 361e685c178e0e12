"""What the training hardware multiplies natively: resolves model.loss_precision "auto".

The in-batch loss's three [B, B] x [B, D] matrix products are most of a training step on a
CPU. With their inputs rounded to bfloat16 and their sums kept in float32 (what TPUs do by
default) the loss ran 1.5 to 1.9x faster (bench/loss_ceiling.py, two runs) on hardware with
native bfloat16 products: x86 CPUs with AVX-512 BF16 (Cooper Lake, Sapphire Rapids and later
Xeons, AMD Zen 4) or AMX, and NVIDIA GPUs of compute capability 8.0 (Ampere) or later.
Elsewhere bfloat16 is emulated and slower than float32, so auto keeps float32 there.
"""

import functools
from typing import FrozenSet, Iterable, List, Optional, Sequence, Tuple

# /proc/cpuinfo flags of x86 CPUs that multiply bfloat16 natively.
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# The first NVIDIA compute capability with bfloat16 tensor cores (Ampere).
GPU_BF16_CAPABILITY = (8, 0)


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> FrozenSet[str]:
    """The CPU's feature flags from Linux's cpuinfo (empty where there is none: macOS,
    Windows, or an unreadable file)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                name, _, value = line.partition(":")
                if name.strip() == "flags":
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def gpu_capabilities() -> List[Optional[Tuple[int, int]]]:
    """The compute capability of every GPU TensorFlow sees (none: an empty list)."""
    import tensorflow as tf
    found = [tf.config.experimental.get_device_details(gpu).get("compute_capability")
             for gpu in tf.config.list_physical_devices("GPU")]
    return [tuple(capability) if capability else None for capability in found]


def native_bfloat16(flags: Iterable[str], gpus: Sequence[Optional[Tuple[int, int]]]) -> bool:
    """Whether training multiplies bfloat16 natively: with GPUs (TensorFlow trains on them)
    every one is Ampere or later; without, the CPU has one of CPU_BF16_FLAGS."""
    if gpus:
        return all(capability is not None and capability >= GPU_BF16_CAPABILITY
                   for capability in gpus)
    return not set(CPU_BF16_FLAGS).isdisjoint(flags)


@functools.lru_cache(maxsize=None)
def _this_machine_has_native_bfloat16() -> bool:
    return native_bfloat16(cpu_flags(), gpu_capabilities())


def loss_precision(setting: str) -> str:
    """model.loss_precision with auto resolved for this machine: "bfloat16" or "float32"."""
    if setting != "auto":
        return setting
    return "bfloat16" if _this_machine_has_native_bfloat16() else "float32"
