"""carafe-ops: CARAFE, the content-aware upsampler of Wang et al. (ICCV 2019), for PyTorch on CPU and CUDA.

>>> import torch, carafe_ops
>>> up = carafe_ops.CARAFEPack(channels=256, scale_factor=2)
>>> up(torch.randn(1, 256, 25, 34)).shape
torch.Size([1, 256, 50, 68])
"""

from . import reference
from ._build import build_info, has_cuda
from ._ops import reassemble, reassemble_backward, reassemble_flops
from .functional import carafe
from .modules import CARAFE, CARAFEPack

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
    "carafe",
    "has_cuda",
    "nn",
    "reassemble",
    "reassemble_backward",
    "reassemble_flops",
    "reference",
]
