"""Where and how the arithmetic runs: device, precision, attention kernels, batch shapes.

Everything here is decided once per run from the settings and the machine, so training,
evaluation and prediction see the same choices.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch

CUDA_PAD_MULTIPLE = 16  # widths per batch on CUDA: multiples of 16, so few kernel shapes
COMPILE_PAD_MULTIPLE = 32  # torch.compile: fewer shapes still, fewer recompiles


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# x86 instructions that compute bf16 arithmetic natively: AMX tiles (Intel since Sapphire
# Rapids) and AVX512-BF16 (Intel since Cooper Lake, AMD since Zen 4). Without them bf16 is
# converted to float32 and back around every operation: slower than float32 itself.
NATIVE_BF16_FEATURES = ("amx_bf16", "avx512_bf16")


def cpu_bf16_feature() -> str | None:
    """The CPU's native bf16 instruction set (one of NATIVE_BF16_FEATURES), or None.

    Read from the processor (torch.cpu.get_capabilities, from cpuinfo; /proc/cpuinfo's flags
    with a torch older than that), not from oneDNN's "bf16 supported", which is also true on
    AVX-512 CPUs that only emulate bf16."""
    capabilities = getattr(torch.cpu, "get_capabilities", None)
    found = (set(k for k, v in capabilities().items() if v is True) if capabilities is not None
             else _cpuinfo_flags())
    return next((name for name in NATIVE_BF16_FEATURES if name in found), None)


@functools.cache
def _cpuinfo_flags(path: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU flags Linux lists in /proc/cpuinfo (empty elsewhere: no native bf16 assumed)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return frozenset(line.partition(":")[2].split())


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision a run computes in. auto: bf16 autocast on a GPU that has it, else fp16;
    bf16 on a CPU that computes it natively (cpu_bf16_feature), else fp32; fp32 on other
    devices. Master weights stay float32 in every case (autocast's casts are per operation)."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and cpu_bf16_feature() is not None:
        return "bf16"
    return "fp32"


def precision_reason(precision: str, device: torch.device) -> str:
    """Why `precision` (the setting) resolves as it does on `device`, one line for config.json
    and metrics.json: "bf16: auto, the cpu has avx512_bf16", "fp32: auto, the cpu has no native
    bf16 (no amx_bf16 or avx512_bf16)", "bf16: asked for; emulated, the cpu has no ..."."""
    used = resolve_precision(precision, device)
    feature = cpu_bf16_feature() if device.type == "cpu" else None
    lacking = "the cpu has no native bf16 (no amx_bf16 or avx512_bf16)"
    if precision != "auto":
        if device.type == "cpu" and used == "bf16":
            return f"bf16: asked for; the cpu has {feature}" if feature else (
                f"bf16: asked for; emulated, {lacking}")
        return f"{used}: asked for"
    if device.type == "cuda":
        return f"{used}: auto, the gpu {'has' if used == 'bf16' else 'lacks'} bf16"
    if device.type == "cpu":
        return f"bf16: auto, the cpu has {feature}" if feature else f"fp32: auto, {lacking}"
    return f"fp32: auto, no autocast on {device.type}"


def fused_optimizer(device: torch.device) -> bool:
    """AdamW's fused kernel: one pass over each parameter group instead of a dozen element-wise
    ops per tensor (on a 2-core CPU, MiniLM, the optimiser step went from about 15% of a
    training step to 6%). CUDA and CPU have it; other devices take the plain loop."""
    return device.type in ("cuda", "cpu")


def eval_batch_size(requested: int | None, device: torch.device) -> int:
    """The batch size to score with: the one asked for, else 128 on CUDA and 32 on CPU, where
    larger batches are slower (2-core CPU, MiniLM, RTE dev: 76 examples/s at 32, 50 at 128)."""
    if requested is not None:
        return requested
    return 128 if device.type == "cuda" else 32


def pad_multiple(device: torch.device, compiled: bool = False) -> int | None:
    """Round batch widths up on CUDA (a kernel plan per shape), not on CPU (padding is work)."""
    if compiled:
        return COMPILE_PAD_MULTIPLE
    return CUDA_PAD_MULTIPLE if device.type == "cuda" else None


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Mixed precision on top of float32 master weights; a no-op for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def attention_kernels(backend: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The SDPA backends allowed inside the block (CUDA only; the math kernel stays as the
    fallback for shapes a fast kernel refuses). "auto" leaves cuDNN attention out: it builds an
    execution plan for every new (batch, width) shape, which cost the first epoch of every
    process ~30 s on an H100; memory-efficient attention takes BERT's padded batches (a mask
    rules flash out) as they come. bench/gpu.sh measures the two once warm."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    allowed = {
        "auto": [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION],
        "efficient": [SDPBackend.EFFICIENT_ATTENTION],
        "cudnn": [SDPBackend.CUDNN_ATTENTION],
        "flash": [SDPBackend.FLASH_ATTENTION],
        "math": [],
    }[backend]
    return sdpa_kernel([*allowed, SDPBackend.MATH])


def check_precision(precision: str, device: torch.device) -> None:
    """A precision poolbert does not know, or bf16 asked for on a GPU that lacks it: one line,
    before any work (resolve_precision passes names other than auto through unchanged)."""
    from .config import PRECISIONS
    from .errors import PoolbertError

    if precision not in PRECISIONS:
        raise PoolbertError(f"--precision must be one of {', '.join(PRECISIONS)}, "
                            f"got {precision!r}")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise PoolbertError("precision bf16 is not supported on this GPU; use fp16")


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's out-of-memory error (or a RuntimeError saying so, as some backends raise)."""
    oom = getattr(torch.cuda, "OutOfMemoryError", ())
    return isinstance(exc, oom) or (isinstance(exc, RuntimeError)
                                    and "out of memory" in str(exc).lower())


def free_memory() -> None:
    """Give cached GPU memory back after an out-of-memory error."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
