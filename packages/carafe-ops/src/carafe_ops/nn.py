"""Drop-in upsampling: ``Upsample``, a learned stand-in for ``torch.nn.Upsample``, ``replace_upsampling``,
which puts CARAFE into an existing model's FPN or decoder in one call, and ``build_upsampler``, the one factory
that turns a config's upsampler name into a module.

    model = torchvision.models.detection.fasterrcnn_resnet50_fpn(weights=None)
    carafe_ops.nn.replace_upsampling(model)                 # torchvision FPNs: every top-down step
    decoder = carafe_ops.nn.replace_upsampling(decoder, example_inputs=(features,))   # nn.Upsample modules

New upsamplers get CARAFEPack's initialization; the rest of the model keeps its weights.
"""


from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
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
        fixed = self.size  # a local: TorchScript refines no attribute's Optional
        if size is None and fixed is not None:
            return [fixed[0], fixed[1]]
        return size

    def extra_repr(self) -> str:
        return f"channels={self.channels}, size={self.size}, scale_factor={self.scale_factor}, up_kernel={self.up_kernel}"


UPSAMPLERS = ("nearest", "bilinear", "deconv", "carafe")
_CARAFE_OPTIONS = ("up_kernel", "up_group", "encoder_kernel", "encoder_dilation", "compressed_channels",
                   "fused_normalizer")
_DECONV_OPTIONS = ("out_channels", "deconv_kernel")


class Interpolate(nn.Module):
    """``F.interpolate`` as an upsampler called like CARAFEPack: ``forward(x, size=None)`` makes ``size``, or
    scale_factor times the input. mode 'nearest' or 'bilinear' (align_corners=False). No parameters."""

    scale_factor: Optional[int]
    align_corners: Optional[bool]

    def __init__(self, mode: str, scale_factor: Optional[int] = 2):
        super().__init__()
        self.mode = mode
        self.scale_factor = scale_factor
        self.align_corners = False if mode == "bilinear" else None

    def forward(self, x: Tensor, size: Optional[List[int]] = None) -> Tensor:
        if size is not None:
            return F.interpolate(x, size=size, mode=self.mode, align_corners=self.align_corners)
        scale = self.scale_factor
        if scale is None:
            raise ValueError("Interpolate: built without a scale_factor, so forward needs the output size")
        return F.interpolate(x, scale_factor=float(scale), mode=self.mode, align_corners=self.align_corners)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, scale_factor={self.scale_factor}"


class BilinearThenCARAFE(nn.Module):
    """For an output size that is no integer multiple of the input (UperNet's pooled 1x1, 2x2, 3x3, 6x6 maps back
    to the feature map's size): bilinear interpolation to half the output size (rounded up), then CARAFE's x2 to
    the exact size. ``forward(x, size)``."""

    def __init__(self, carafe: CARAFEPack):
        super().__init__()
        if carafe.scale_factor != 2:
            raise ValueError(f"BilinearThenCARAFE: the CARAFE step must be x2, got scale_factor={carafe.scale_factor}")
        self.carafe = carafe

    def forward(self, x: Tensor, size: List[int]) -> Tensor:
        half = [(size[0] + 1) // 2, (size[1] + 1) // 2]
        return self.carafe(F.interpolate(x, size=half, mode="bilinear", align_corners=False), size)


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"build_upsampler: {name} must be an integer >= {minimum}, got {value!r}")
    return value


def upsampler_options(section) -> dict:
    """build_upsampler's options from a config section with upper-case keys (MODEL.CARAFE: UP_KERNEL ->
    up_kernel, ...). Keys that are no option, such as SCALE_FACTOR (each place of a model sets its own), are left
    out."""
    names = _CARAFE_OPTIONS + _DECONV_OPTIONS
    return {key.lower(): value for key, value in section.items() if key.lower() in names}


def build_upsampler(kind: str, channels: int, scale_factor: Optional[int] = 2, **options) -> nn.Module:
    """The upsampler a config names, from ``channels`` to the same channels, scale_factor (sigma) times larger:

    - 'nearest', 'bilinear': :class:`Interpolate` (bilinear with align_corners=False); no parameters.
    - 'deconv': ``ConvTranspose2d(channels, out_channels, deconv_kernel, stride=sigma, padding=(deconv_kernel -
      sigma) // 2)``, exactly sigma times the input. Options ``out_channels`` (default: channels; the one kind
      that may change them) and ``deconv_kernel`` (sigma plus an even number; default 2 sigma - sigma % 2: 4
      with padding 1 at sigma 2, as in Global&Local and FCNs).
    - 'carafe': ``CARAFEPack(channels, sigma, **options)``; options up_kernel, up_group, encoder_kernel,
      encoder_dilation, compressed_channels, fused_normalizer (CARAFEPack's defaults where not given).

    scale_factor None: the ratio is not an integer, so every call passes the output size (``up(x, size)``); the
    interpolations go straight to it, 'carafe' makes :class:`BilinearThenCARAFE`, 'deconv' cannot.

    Options of another kind are ignored, so that a config's whole CARAFE section can be passed whatever the
    kind; a name that no kind takes is a TypeError.
    """
    if not isinstance(kind, str) or kind not in UPSAMPLERS:
        raise ValueError(f"build_upsampler: kind must be one of {', '.join(map(repr, UPSAMPLERS))}; got {kind!r}")
    unknown = sorted(set(options) - set(_CARAFE_OPTIONS) - set(_DECONV_OPTIONS))
    if unknown:
        raise TypeError(f"build_upsampler: unknown option(s) {', '.join(unknown)}; the options are "
                        f"{', '.join(_CARAFE_OPTIONS + _DECONV_OPTIONS)}")
    _check_int("channels", channels, 1)
    if scale_factor is not None:
        _check_int("scale_factor", scale_factor, 1)
    out_channels = _check_int("out_channels", options.get("out_channels", channels), 1)
    if kind != "deconv" and out_channels != channels:
        raise ValueError(f"build_upsampler: out_channels ({out_channels}) differs from channels ({channels}), but "
                         f"a {kind!r} upsampler keeps the channel count (only 'deconv' changes it)")
    if kind in ("nearest", "bilinear"):
        return Interpolate(kind, scale_factor)
    if kind == "deconv":
        if scale_factor is None:
            raise ValueError("build_upsampler: 'deconv' needs an integer scale_factor, got None")
        kernel = _check_int("deconv_kernel", options.get("deconv_kernel", 2 * scale_factor - scale_factor % 2),
                            scale_factor)
        if (kernel - scale_factor) % 2:
            raise ValueError(f"build_upsampler: deconv_kernel must be scale_factor ({scale_factor}) plus an even "
                             f"number, so that the output is exactly scale_factor times the input; got {kernel}")
        return nn.ConvTranspose2d(channels, out_channels, kernel, stride=scale_factor,
                                  padding=(kernel - scale_factor) // 2)
    carafe = {name: options[name] for name in _CARAFE_OPTIONS if name in options}
    if scale_factor is None:
        return BilinearThenCARAFE(CARAFEPack(channels, 2, **carafe))
    return CARAFEPack(channels, scale_factor, **carafe)


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
