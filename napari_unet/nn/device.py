"""Choose the compute device and its precision settings, so callers never branch on hardware."""

from __future__ import annotations

import os

import torch

from napari_unet.errors import UserInputError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def pick_device(name: str = "auto") -> torch.device:
    """CUDA, then Apple MPS, then CPU for 'auto'; a clear error if an explicit choice is missing."""
    if name not in DEVICE_CHOICES:
        raise UserInputError(f"unknown device {name!r}: choose one of {', '.join(DEVICE_CHOICES)}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserInputError("device 'cuda' was requested but no CUDA GPU is available; use --device auto or cpu")
    if name == "mps" and not _mps_available():
        raise UserInputError("device 'mps' was requested but Apple MPS is not available; use --device auto or cpu")
    return torch.device(name)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def set_cpu_threads(threads: int | None = None) -> None:
    """Torch's CPU threads: `threads`, or every core when None (its default can be lower in worker threads).

    Process-wide: a GUI passes cores - 1 so its event loop keeps a core.
    """
    torch.set_num_threads(max(1, threads or os.cpu_count() or 1))


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """Mixed-precision dtype for `device`: bf16 on CUDA where supported, else fp16; None on CPU/MPS."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def describe(device: torch.device) -> str:
    """Human-readable device name for progress displays, e.g. 'cuda (NVIDIA H100)' or 'cpu (2 threads)'."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        threads = torch.get_num_threads()
        return f"cpu ({threads} thread{'s' if threads > 1 else ''})"
    return device.type


def is_out_of_memory(error: BaseException) -> bool:
    """True for a GPU (or MPS) out-of-memory error, which callers turn into advice."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()
