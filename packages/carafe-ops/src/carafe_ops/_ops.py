"""The CARAFE custom ops: schemas, real and fake kernels, autograd and FLOP formulas, all declared here.

``torch.ops.carafe.reassemble(features, masks, kernel_size, group_size, scale_factor) -> output``
``torch.ops.carafe.reassemble_backward(grad_output, features, masks, kernel_size, group_size, scale_factor)
-> (grad_features, grad_masks)``

The output has the masks' spatial size (the public :func:`carafe_ops.carafe` checks it against
``scale_factor`` or an explicit ``size``).

Declaring them with ``torch.library.custom_op`` is what lets ``torch.compile``, ``torch.export``,
``FlopCounterMode`` and ``opcheck`` see through them; the backward is an op too, so autograd stays out of
the kernels.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor
from torch.utils.flop_counter import register_flop_formula

from . import _C
from ._validation import check_grad_output, check_normalized_args, check_reassemble_args

_DTYPES = {
    torch.float32: _C.DType.float32,
    torch.float64: _C.DType.float64,
    torch.float16: _C.DType.float16,
    torch.bfloat16: _C.DType.bfloat16,
}


def _memory_format(tensor: Tensor) -> torch.memory_format:
    """Outputs follow their input's layout: channels_last in, channels_last out; anything else, contiguous."""
    if not tensor.is_contiguous() and tensor.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _new_output(features: Tensor, masks: Tensor) -> Tensor:
    """(N, C) of the features, spatial size of the masks, layout of the features."""
    shape = (*features.shape[:2], *masks.shape[2:])
    return features.new_empty(shape).contiguous(memory_format=_memory_format(features))


def _problem(features: Tensor, masks: Tensor, kernel_size: int, group_size: int, scale_factor: int):
    n, c, h, w = features.shape
    out_h, out_w = masks.shape[2:]
    return _C.Problem(n, c, h, w, kernel_size, group_size, scale_factor, _DTYPES[features.dtype], out_h, out_w)


def _check_op_args(features, masks, kernel_size, group_size, scale_factor) -> None:
    """The ops take the output size from the masks (the public functions check it against scale_factor or size)."""
    size = masks.shape[2:] if isinstance(masks, Tensor) and masks.dim() == 4 else None
    check_reassemble_args(features, masks, kernel_size, group_size, scale_factor, size)


def _device(tensor: Tensor):
    if tensor.device.type == "cpu":
        return _C.Device(cuda=False, num_threads=torch.get_num_threads())
    if tensor.device.type == "cuda":
        if not _C.build_info()["cuda"]:
            raise RuntimeError(
                "carafe: got CUDA tensors, but this build of carafe-ops has no CUDA backend (no nvcc was found "
                "when it was built). Reinstall it with the CUDA toolkit available (CARAFE_CUDA=ON pip install "
                "packages/carafe-ops), move the tensors to the CPU, or use carafe_ops.reference.carafe."
            )
        index = tensor.device.index if tensor.device.index is not None else torch.cuda.current_device()
        stream = torch.cuda.current_stream(tensor.device).cuda_stream
        return _C.Device(cuda=True, index=index, stream=stream)
    raise RuntimeError(f"carafe: no backend for tensors on {tensor.device}; carafe-ops runs on cpu and cuda")


def _on_device(tensor: Tensor):
    """The tensor's CUDA device made current around a kernel call (PyTorch's own device guard: it creates no
    context on the device it restores), so that libcarafe's guard finds nothing to change."""
    return torch.cuda.device(tensor.device) if tensor.device.type == "cuda" else contextlib.nullcontext()


def _ref(tensor: Tensor):
    return tensor.data_ptr(), tuple(tensor.stride())


@torch.library.custom_op("carafe::reassemble", mutates_args=())
def reassemble(features: Tensor, masks: Tensor, kernel_size: int, group_size: int, scale_factor: int) -> Tensor:
    _check_op_args(features, masks, kernel_size, group_size, scale_factor)
    device = _device(features)
    output = _new_output(features, masks)
    problem = _problem(features, masks, kernel_size, group_size, scale_factor)
    with _on_device(features):
        _C.reassemble_forward(problem, device, _ref(features), _ref(masks), _ref(output))
    return output


@reassemble.register_fake
def _reassemble_fake(features, masks, kernel_size, group_size, scale_factor):
    _check_op_args(features, masks, kernel_size, group_size, scale_factor)
    return _new_output(features, masks)


@torch.library.custom_op("carafe::reassemble_backward", mutates_args=())
def reassemble_backward(
    grad_output: Tensor, features: Tensor, masks: Tensor, kernel_size: int, group_size: int, scale_factor: int
) -> tuple[Tensor, Tensor]:
    _check_op_args(features, masks, kernel_size, group_size, scale_factor)
    check_grad_output(grad_output, features, masks.shape[2:])
    device = _device(features)
    grad_features = torch.empty_like(features, memory_format=_memory_format(features))
    grad_masks = torch.empty_like(masks, memory_format=_memory_format(masks))
    problem = _problem(features, masks, kernel_size, group_size, scale_factor)
    with _on_device(features):
        _C.reassemble_backward(problem, device, _ref(grad_output), _ref(features), _ref(masks), _ref(grad_features),
                               _ref(grad_masks))
    return grad_features, grad_masks


@reassemble_backward.register_fake
def _reassemble_backward_fake(grad_output, features, masks, kernel_size, group_size, scale_factor):
    _check_op_args(features, masks, kernel_size, group_size, scale_factor)
    check_grad_output(grad_output, features, masks.shape[2:])
    grad_features = torch.empty_like(features, memory_format=_memory_format(features))
    grad_masks = torch.empty_like(masks, memory_format=_memory_format(masks))
    return grad_features, grad_masks


def _setup_context(ctx, inputs, output):
    features, masks, kernel_size, group_size, scale_factor = inputs
    ctx.save_for_backward(features, masks)
    ctx.hyperparameters = (kernel_size, group_size, scale_factor)


def _backward(ctx, grad_output):
    features, masks = ctx.saved_tensors
    grad_features, grad_masks = reassemble_backward(grad_output, features, masks, *ctx.hyperparameters)
    return grad_features, grad_masks, None, None, None


reassemble.register_autograd(_backward, setup_context=_setup_context)


@torch.library.custom_op("carafe::reassemble_normalized", mutates_args=())
def reassemble_normalized(
    features: Tensor, logits: Tensor, kernel_size: int, group_size: int, scale_factor: int
) -> Tensor:
    """The fused kernel normalizer: reassembly with masks = softmax over taps of pixel_shuffle(logits), made
    inside the kernel (never written to memory)."""
    check_normalized_args(features, logits, kernel_size, group_size, scale_factor)
    device = _device(features)
    output = _new_normalized_output(features, scale_factor)
    problem = _problem_normalized(features, kernel_size, group_size, scale_factor)
    with _on_device(features):
        _C.reassemble_normalized_forward(problem, device, _ref(features), _ref(logits), _ref(output))
    return output


@reassemble_normalized.register_fake
def _reassemble_normalized_fake(features, logits, kernel_size, group_size, scale_factor):
    check_normalized_args(features, logits, kernel_size, group_size, scale_factor)
    return _new_normalized_output(features, scale_factor)


@torch.library.custom_op("carafe::reassemble_normalized_backward", mutates_args=())
def reassemble_normalized_backward(
    grad_output: Tensor, features: Tensor, logits: Tensor, kernel_size: int, group_size: int, scale_factor: int
) -> tuple[Tensor, Tensor]:
    check_normalized_args(features, logits, kernel_size, group_size, scale_factor)
    check_grad_output(grad_output, features, _normalized_output_size(features, scale_factor))
    device = _device(features)
    problem = _problem_normalized(features, kernel_size, group_size, scale_factor)
    grad_features = torch.empty_like(features, memory_format=_memory_format(features))
    grad_logits = torch.empty_like(logits, memory_format=_memory_format(logits))
    # CUDA: the softmax max and 1/sum of each output pixel (2/k^2 of the masks' size); none on the CPU
    workspace = torch.empty(_C.normalized_backward_workspace_bytes(problem, device), dtype=torch.uint8,
                            device=features.device)
    with _on_device(features):
        _C.reassemble_normalized_backward(problem, device, _ref(grad_output), _ref(features), _ref(logits),
                                          _ref(grad_features), _ref(grad_logits), workspace.data_ptr())
    return grad_features, grad_logits


@reassemble_normalized_backward.register_fake
def _reassemble_normalized_backward_fake(grad_output, features, logits, kernel_size, group_size, scale_factor):
    check_normalized_args(features, logits, kernel_size, group_size, scale_factor)
    check_grad_output(grad_output, features, _normalized_output_size(features, scale_factor))
    return (torch.empty_like(features, memory_format=_memory_format(features)),
            torch.empty_like(logits, memory_format=_memory_format(logits)))


def _backward_normalized(ctx, grad_output):
    features, logits = ctx.saved_tensors
    grad_features, grad_logits = reassemble_normalized_backward(grad_output, features, logits, *ctx.hyperparameters)
    return grad_features, grad_logits, None, None, None


reassemble_normalized.register_autograd(_backward_normalized, setup_context=_setup_context)


def _normalized_output_size(features: Tensor, scale_factor: int) -> tuple:
    return features.shape[2] * scale_factor, features.shape[3] * scale_factor


def _new_normalized_output(features: Tensor, scale_factor: int) -> Tensor:
    shape = (*features.shape[:2], *_normalized_output_size(features, scale_factor))
    return features.new_empty(shape).contiguous(memory_format=_memory_format(features))


def _problem_normalized(features: Tensor, kernel_size: int, group_size: int, scale_factor: int):
    n, c, h, w = features.shape
    return _C.Problem(n, c, h, w, kernel_size, group_size, scale_factor, _DTYPES[features.dtype])


def reassemble_flops(features_shape, masks_shape, kernel_size: int) -> int:
    """A multiply and an add per tap per output element: 2 * N * C * OH * OW * k_up^2 (OH, OW = sigma*H,
    sigma*W by default; the masks' spatial size)."""
    n, c = features_shape[:2]
    out_h, out_w = masks_shape[2:]
    return 2 * n * c * out_h * out_w * kernel_size * kernel_size


@register_flop_formula(torch.ops.carafe.reassemble)
def _reassemble_flop(features_shape, masks_shape, kernel_size, group_size, scale_factor, *args, **kwargs) -> int:
    return reassemble_flops(features_shape, masks_shape, kernel_size)


@register_flop_formula(torch.ops.carafe.reassemble_normalized)
def _reassemble_normalized_flop(features_shape, logits_shape, kernel_size, group_size, scale_factor, *args,
                                **kwargs) -> int:
    # the reassembly; the softmax is not a multiply-add and is not counted (as FlopCounterMode does for softmax)
    n, c, h, w = features_shape
    return reassemble_flops(features_shape, (n, c, scale_factor * h, scale_factor * w), kernel_size)


@register_flop_formula(torch.ops.carafe.reassemble_normalized_backward)
def _reassemble_normalized_backward_flop(grad_output_shape, features_shape, logits_shape, kernel_size, group_size,
                                         scale_factor, *args, **kwargs) -> int:
    return 2 * reassemble_flops(features_shape, grad_output_shape, kernel_size)


@register_flop_formula(torch.ops.carafe.reassemble_backward)
def _reassemble_backward_flop(
    grad_output_shape, features_shape, masks_shape, kernel_size, group_size, scale_factor, *args, **kwargs
) -> int:
    # grad_features and grad_masks each cost as much as the forward
    return 2 * reassemble_flops(features_shape, masks_shape, kernel_size)
