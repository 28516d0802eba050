"""Argument checks of the CARAFE op: every bad input becomes a Python exception that names the argument."""

from __future__ import annotations

import torch

SUPPORTED_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def check_hyperparameters(kernel_size, group_size, scale_factor) -> None:
    """k_up odd >= 1, G >= 1, sigma >= 1, all Python ints."""
    for name, value in (("kernel_size", kernel_size), ("group_size", group_size), ("scale_factor", scale_factor)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"carafe: {name} must be an int, got {type(value).__name__} ({value!r})")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"carafe: kernel_size must be an odd integer >= 1, got {kernel_size}")
    for name, value in (("group_size", group_size), ("scale_factor", scale_factor)):
        if value < 1:
            raise ValueError(f"carafe: {name} must be an integer >= 1, got {value}")


def _check_tensor(name: str, tensor) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"carafe: {name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dim() != 4:
        raise ValueError(f"carafe: {name} must be a 4-d tensor (N, C, H, W), got shape {tuple(tensor.shape)}")
    if tensor.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"carafe: {name} must be float32, float64, float16 or bfloat16, got {tensor.dtype}")
    # an empty batch is valid (a mask head on an image without detections gets one); empty maps are not
    if 0 in tensor.shape[1:]:
        raise ValueError(f"carafe: {name} must have non-empty C, H and W (N may be 0), got shape {tuple(tensor.shape)}")


def check_size(size) -> tuple[int, int]:
    """An output size: two positive ints (a tuple, list or torch.Size)."""
    if isinstance(size, (str, bytes)) or not hasattr(size, "__len__") or len(size) != 2:
        raise TypeError(f"carafe: size must be a pair of ints (height, width), got {size!r}")
    for value in size:
        # ints; SymInts under torch.compile/export; 0-d integer tensors when the TorchScript tracer records sizes
        traced = isinstance(value, torch.Tensor) and value.dim() == 0 and not value.is_floating_point()
        if isinstance(value, bool) or not (isinstance(value, (int, torch.SymInt)) or traced):
            raise TypeError(f"carafe: size must be a pair of ints (height, width), got {size!r}")
    if size[0] < 1 or size[1] < 1:
        raise ValueError(f"carafe: size must be positive, got {tuple(size)}")
    return size[0], size[1]


def _check_pair(features, other, other_name: str, kernel_size, group_size, scale_factor, expected, described):
    """The checks both ops share: hyper-parameters, both tensors, groups, the second tensor's shape (expected,
    described in words), and that the two agree in dtype and device."""
    check_hyperparameters(kernel_size, group_size, scale_factor)
    _check_tensor("features", features)
    _check_tensor(other_name, other)
    c = features.shape[1]
    if c % group_size != 0:
        raise ValueError(f"carafe: features has {c} channels, which group_size={group_size} does not divide")
    expected = expected()
    if tuple(other.shape) != expected:
        raise ValueError(
            f"carafe: {other_name} must have shape {described} = {expected} for features of shape "
            f"{tuple(features.shape)}, got {tuple(other.shape)}"
        )
    if other.dtype != features.dtype:
        raise TypeError(f"carafe: {other_name} ({other.dtype}) and features ({features.dtype}) must have the same dtype")
    if other.device != features.device:
        raise ValueError(
            f"carafe: {other_name} ({other.device}) and features ({features.device}) must be on the same device"
        )


def check_reassemble_args(features, masks, kernel_size, group_size, scale_factor, size=None) -> None:
    """Checks the op's inputs against each other: shapes, dtypes and devices. The masks' spatial size is the
    output size: (scale_factor*H, scale_factor*W), or `size` when given."""

    def expected():
        n, _, h, w = features.shape
        out = (scale_factor * h, scale_factor * w) if size is None else check_size(size)
        return (n, group_size * kernel_size * kernel_size, *out)

    described = ("(N, group_size*kernel_size**2, scale_factor*H, scale_factor*W)" if size is None
                 else "(N, group_size*kernel_size**2, *size)")
    _check_pair(features, masks, "masks", kernel_size, group_size, scale_factor, expected, described)


def check_grad_output(grad_output, features, output_size) -> None:
    expected = (*features.shape[:2], *output_size)
    if tuple(grad_output.shape) != expected:
        raise ValueError(f"carafe: grad_output must have shape {expected}, got {tuple(grad_output.shape)}")
    if grad_output.dtype != features.dtype or grad_output.device != features.device:
        raise ValueError(
            f"carafe: grad_output ({grad_output.dtype}, {grad_output.device}) must match features "
            f"({features.dtype}, {features.device})"
        )


def check_normalized_args(features, logits, kernel_size, group_size, scale_factor) -> None:
    """The fused kernel normalizer's inputs: logits are the content encoder's raw output,
    (N, scale_factor**2 * group_size * kernel_size**2, H, W) for features (N, C, H, W)."""

    def expected():
        n, _, h, w = features.shape
        return (n, scale_factor * scale_factor * group_size * kernel_size * kernel_size, h, w)

    _check_pair(features, logits, "logits", kernel_size, group_size, scale_factor, expected,
                "(N, scale_factor**2*group_size*kernel_size**2, H, W)")
