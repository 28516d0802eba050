"""What this build of carafe-ops can run on."""

from __future__ import annotations

import os

import torch

from . import _C


def build_info() -> dict:
    """The compiled library's version and backends.

    Returns a dict with ``version``, ``backends`` (``["cpu"]`` or ``["cpu", "cuda"]``), ``cuda_version``
    (the CUDA toolkit the CUDA backend was compiled with, e.g. ``"13.0"``, or ``None``),
    ``cuda_architectures`` (e.g. ``["75-real", ..., "120-virtual"]``) and ``cxx_compiler``.
    """
    raw = _C.build_info()
    cuda = bool(raw["cuda"])
    return {
        "version": raw["version"],
        "backends": ["cpu", "cuda"] if cuda else ["cpu"],
        "cuda_version": _cuda_text(raw["cuda_runtime_version"]) if cuda else None,
        "cuda_architectures": raw["cuda_architectures"].split(",") if cuda else [],
        "cxx_compiler": raw["cxx_compiler"],
    }


def has_cuda() -> bool:
    """True when the CUDA backend was compiled in (a GPU may still be absent: see torch.cuda.is_available())."""
    return bool(_C.build_info()["cuda"])


def _cuda_text(version: int) -> str:
    return f"{version // 1000}.{version % 1000 // 10}"


def check_cuda_compatibility() -> None:
    """Runs at import: a CUDA build must match the CUDA major version of the running PyTorch, and the NVIDIA driver
    must support it. A mismatch raises ImportError saying which variant to install (wheels are labelled
    +cpu, +cu129, +cu130, ...). CARAFE_ALLOW_CUDA_MISMATCH=1 skips the check (the binding only passes pointers
    and streams, so a mismatched build still works where the driver supports both versions)."""
    built = _C.build_info()["cuda_runtime_version"]
    if not built or os.environ.get("CARAFE_ALLOW_CUDA_MISMATCH") == "1":
        return
    hint = ("install the carafe-ops variant built for it (see docs/wheels.md), or set CARAFE_ALLOW_CUDA_MISMATCH=1 "
            "to use this one anyway")
    if torch.version.cuda is not None and int(torch.version.cuda.split(".")[0]) != built // 1000:
        raise ImportError(f"carafe-ops was built with CUDA {_cuda_text(built)}, but PyTorch {torch.__version__} uses "
                          f"CUDA {torch.version.cuda}: {hint}")
    driver = _C.cuda_driver_version()
    if driver and driver // 1000 < built // 1000:
        raise ImportError(f"carafe-ops was built with CUDA {_cuda_text(built)}, but the NVIDIA driver supports CUDA "
                          f"{_cuda_text(driver)} at most: update the driver, or {hint}")
