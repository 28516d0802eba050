"""carafe-ops: CARAFE, the content-aware upsampler of Wang et al. (ICCV 2019), for PyTorch on CPU and CUDA.

>>> import torch, carafe_ops
>>> up = carafe_ops.CARAFEPack(channels=256, scale_factor=2)
>>> up(torch.randn(1, 256, 25, 34)).shape
torch.Size([1, 256, 50, 68])
"""

from importlib import metadata as _metadata

from ._build import build_info, check_cuda_compatibility, has_cuda

check_cuda_compatibility()

from . import reference  # noqa: E402
from ._ops import (  # noqa: E402
    reassemble,
    reassemble_backward,
    reassemble_flops,
    reassemble_normalized,
    reassemble_normalized_backward,
)
from .functional import carafe, carafe_normalized, normalize_kernels  # noqa: E402
from .modules import CARAFE, CARAFEPack  # noqa: E402

# the installed distribution's version carries the variant label (0.1.0+cu130); the library's own otherwise
try:
    __version__ = _metadata.version("carafe-ops")
except _metadata.PackageNotFoundError:
    __version__ = build_info()["version"]


def __getattr__(name: str):
    # carafe_ops.nn imports torchvision (for its FPN); load it on first use only
    if name == "nn":
        import importlib

        return importlib.import_module(".nn", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "CARAFE",
    "CARAFEPack",
    "build_info",
    "check_cuda_compatibility",
    "carafe",
    "carafe_normalized",
    "has_cuda",
    "nn",
    "reassemble",
    "reassemble_backward",
    "reassemble_flops",
    "reassemble_normalized",
    "reassemble_normalized_backward",
    "normalize_kernels",
    "reference",
]
