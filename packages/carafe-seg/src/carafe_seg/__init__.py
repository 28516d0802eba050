"""carafe-seg: UperNet semantic segmentation on ADE20K with CARAFE in the PPM, the FPN and the multi-level fusion,
the segmentation experiment of the CARAFE paper (Wang et al., ICCV 2019). See README.md."""

from importlib import import_module

# loaded on first use, so that light commands (the synthetic-data generator) do not import torch and torchvision
_EXPORTS = {
    "DEFAULTS": "config",
    "load_seg_config": "config",
    "UPerNetDecoder": "modeling",
    "UPerNetSegmentor": "modeling",
    "build_model": "modeling",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
