"""Drop-in upsampling: ``Upsample``, a learned stand-in for ``torch.nn.Upsample``, and ``replace_upsampling``,
which puts CARAFE into an existing model's FPN or decoder in one call.

    model = torchvision.models.detection.fasterrcnn_resnet50_fpn(weights=None)
    carafe_ops.nn.replace_upsampling(model)                 # torchvision FPNs: every top-down step
    decoder = carafe_ops.nn.replace_upsampling(decoder, example_inputs=(features,))   # nn.Upsample modules

New upsamplers get CARAFEPack's initialization; the rest of the model keeps its weights.
"""


from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from ._validation import check_size
from .modules import CARAFEPack


class Upsample(CARAFEPack):
    """CARAFE with ``torch.nn.Upsample``'s way of saying the output: a fixed ``size`` or an integer
    ``scale_factor`` (the content encoder predicts kernels for sigma = scale_factor; with a ``size`` that is not
    sigma times the input, they are resampled to it). ``forward(x, size=None)`` may override the size per call."""

    size: Optional[Tuple[int, int]]

    def __init__(self, channels: int, size=None, scale_factor: int = 2, **carafe_kwargs):
        super().__init__(channels, scale_factor, **carafe_kwargs)
        if isinstance(size, int):
            size = (size, size)
        self.size = tuple(check_size(size)) if size is not None else None

    def requested_size(self, size: Optional[List[int]]) -> Optional[List[int]]:
        if size is not None:
            return size
        fixed = self.size
        if fixed is None:
            return None
        return [fixed[0], fixed[1]]

    def extra_repr(self) -> str:
        return f"channels={self.channels}, size={self.size}, scale_factor={self.scale_factor}, up_kernel={self.up_kernel}"


try:  # torchvision is optional: without it there are no torchvision FPNs to convert
    from torchvision.ops import FeaturePyramidNetwork as _TorchvisionFPN
except ImportError:
    _TorchvisionFPN = None

if _TorchvisionFPN is not None:

    class CARAFEFeaturePyramidNetwork(_TorchvisionFPN):
        """torchvision's FeaturePyramidNetwork whose top-down steps upsample with CARAFE instead of
        ``F.interpolate(mode="nearest")``; made by :func:`replace_upsampling` from an existing one."""

        def upsample(self, x: Tensor, idx: int, size: List[int]) -> Tensor:
            """carafe_upsamplers[idx](x) at the lateral's size. Where the lateral is 2H - 1 or 2H high and wide
            (every torchvision backbone's levels: each half the next finer one, rounded up) that is the x2 output
            cropped, as the authors' FPN_CARAFE does it, and exactly equal to asking for the size; that is also
            what an ONNX export records (which cannot check sizes it only knows symbolically)."""
            out = x
            for i, module in enumerate(self.carafe_upsamplers):  # a ModuleList iterated as TorchScript needs
                if i == idx:
                    if _half_size_levels(x, size):
                        out = module(x)[:, :, : size[0], : size[1]]
                    else:
                        out = module(x, size)
            return out

        def forward(self, x: Dict[str, Tensor]) -> Dict[str, Tensor]:
            # torchvision's forward, with the nearest-neighbour interpolation to the lateral's size replaced
            names = list(x.keys())
            features = list(x.values())
            last_inner = self.get_result_from_inner_blocks(features[-1], -1)
            results = [self.get_result_from_layer_blocks(last_inner, -1)]
            for idx in range(len(features) - 2, -1, -1):
                inner_lateral = self.get_result_from_inner_blocks(features[idx], idx)
                size = [inner_lateral.shape[-2], inner_lateral.shape[-1]]
                last_inner = inner_lateral + self.upsample(last_inner, idx, size)
                results.insert(0, self.get_result_from_layer_blocks(last_inner, idx))
            if self.extra_blocks is not None:
                results, names = self.extra_blocks(results, features, names)
            return OrderedDict([(k, v) for k, v in zip(names, results)])


def _half_size_levels(x: Tensor, size: List[int]) -> bool:
    """Whether an FPN level x (H, W) and its lateral (size) are related as 2H - 1 or 2H, 2W - 1 or 2W."""
    if not torch.jit.is_scripting():  # a condition of its own: TorchScript then skips the branch
        if torch.onnx.is_in_onnx_export():
            return True
    h, w = x.shape[-2], x.shape[-1]
    return 2 * h - 1 <= size[0] <= 2 * h and 2 * w - 1 <= size[1] <= 2 * w


def _fpn_with_carafe(fpn: nn.Module, carafe_kwargs: dict) -> nn.Module:
    """Turns a torchvision FeaturePyramidNetwork into a CARAFEFeaturePyramidNetwork in place (same weights)."""
    channels = next(m for m in fpn.layer_blocks[0].modules() if isinstance(m, nn.Conv2d)).out_channels
    reference = next(fpn.parameters())
    fpn.carafe_upsamplers = nn.ModuleList(
        Upsample(channels, **carafe_kwargs).to(device=reference.device, dtype=reference.dtype)
        for _ in range(len(fpn.inner_blocks) - 1)
    )
    fpn.__class__ = CARAFEFeaturePyramidNetwork
    return fpn


def _input_channels(model: nn.Module, modules: list[nn.Module], example_inputs) -> dict[nn.Module, int]:
    seen: dict[nn.Module, int] = {}

    def record(module, args):  # returns None: the inputs go on unchanged
        seen.setdefault(module, args[0].shape[1])

    hooks = [m.register_forward_pre_hook(record) for m in modules]
    try:
        with torch.no_grad():
            model(*example_inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def replace_upsampling(model: nn.Module, example_inputs=None, **carafe_kwargs) -> nn.Module:
    """Replaces, in place, the interpolation-based upsampling of ``model`` with CARAFE and returns the model.

    - torchvision ``FeaturePyramidNetwork`` modules (inside any torchvision detector): each top-down step.
    - ``torch.nn.Upsample`` modules with an integer ``scale_factor`` (or a ``size``): replaced by
      :class:`Upsample`. Their input channels are read off one forward pass of ``example_inputs`` (a tuple).

    ``carafe_kwargs`` go to CARAFEPack (up_kernel, up_group, encoder_kernel, encoder_dilation,
    compressed_channels). Raises ValueError when there is nothing to replace or when nn.Upsample modules are
    present but no example_inputs are given.
    """
    replaced = 0
    if _TorchvisionFPN is not None:
        for module in list(model.modules()):
            if type(module) is _TorchvisionFPN:
                _fpn_with_carafe(module, carafe_kwargs)
                replaced += 1

    upsamples = [(name, m) for name, m in model.named_modules() if type(m) is nn.Upsample]
    if upsamples:
        if example_inputs is None:
            names = ", ".join(name for name, _ in upsamples)
            raise ValueError(f"replace_upsampling: nn.Upsample modules ({names}) need example_inputs (a tuple of "
                             f"model inputs) to find their channel counts")
        channels = _input_channels(model, [m for _, m in upsamples], tuple(example_inputs))
        reference = next(model.parameters(), None)
        for name, old in upsamples:
            if old not in channels:
                raise ValueError(f"replace_upsampling: nn.Upsample {name!r} did not run on the example inputs")
            scale = old.scale_factor
            if isinstance(scale, tuple):
                scale = scale[0] if len(set(scale)) == 1 else None
            if old.size is None and (scale is None or float(scale) != int(scale) or scale < 1):
                raise ValueError(f"replace_upsampling: nn.Upsample {name!r} has scale_factor {old.scale_factor}; "
                                 f"CARAFE needs an integer scale factor or a size")
            new = Upsample(channels[old], size=old.size, scale_factor=int(scale) if scale is not None else 2,
                           **carafe_kwargs)
            if reference is not None:
                new = new.to(device=reference.device, dtype=reference.dtype)
            parent_name, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, attr, new)
            replaced += 1
    if replaced == 0:
        raise ValueError("replace_upsampling: found no torchvision FeaturePyramidNetwork and no nn.Upsample in the model")
    return model
