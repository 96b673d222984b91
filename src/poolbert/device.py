"""Where and how the arithmetic runs: device, precision, attention kernels, batch shapes.

Everything here is decided once per run from the settings and the machine, so training,
evaluation and prediction see the same choices.
"""

from __future__ import annotations

import contextlib

import torch

CUDA_PAD_MULTIPLE = 16  # widths per batch on CUDA: multiples of 16, so few kernel shapes
COMPILE_PAD_MULTIPLE = 32  # torch.compile: fewer shapes still, fewer recompiles


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_precision(precision: str, device: torch.device) -> str:
    """auto: bf16 autocast where the GPU has it, else fp16; CPU stays fp32 (autocast is slower)."""
    if precision != "auto":
        return precision
    if device.type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


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
    """bf16 asked for on a GPU that lacks it: one line, before any work."""
    from .errors import PoolbertError

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
