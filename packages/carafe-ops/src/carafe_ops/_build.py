"""What this build of carafe-ops can run on."""

from __future__ import annotations

from . import _C


def build_info() -> dict:
    """The compiled library's version and backends.

    Returns a dict with ``version``, ``backends`` (``["cpu"]`` or ``["cpu", "cuda"]``), ``cuda_version``
    (the CUDA toolkit the CUDA backend was compiled with, e.g. ``"13.0"``, or ``None``),
    ``cuda_architectures`` (e.g. ``["75-real", ..., "120-virtual"]``) and ``cxx_compiler``.
    """
    raw = _C.build_info()
    cuda = bool(raw["cuda"])
    version = raw["cuda_runtime_version"]
    return {
        "version": raw["version"],
        "backends": ["cpu", "cuda"] if cuda else ["cpu"],
        "cuda_version": f"{version // 1000}.{version % 1000 // 10}" if cuda else None,
        "cuda_architectures": raw["cuda_architectures"].split(",") if cuda else [],
        "cxx_compiler": raw["cxx_compiler"],
    }


def has_cuda() -> bool:
    """True when the CUDA backend was compiled in (a GPU may still be absent: see torch.cuda.is_available())."""
    return bool(_C.build_info()["cuda"])
