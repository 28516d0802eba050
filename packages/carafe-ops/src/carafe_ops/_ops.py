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


def _empty_like(tensor: Tensor) -> Tensor:
    return torch.empty_like(tensor, memory_format=_memory_format(tensor))


def _new_output(features: Tensor, out_size) -> Tensor:
    """(N, C) of the features, the given spatial size, layout of the features."""
    return features.new_empty((*features.shape[:2], *out_size)).contiguous(memory_format=_memory_format(features))


def _problem(features: Tensor, kernel_size: int, group_size: int, scale_factor: int, *out_size):
    """out_size: the masks' spatial size; none for the fused normalizer (its outputs are sigma*H x sigma*W)."""
    n, c, h, w = features.shape
    return _C.Problem(n, c, h, w, kernel_size, group_size, scale_factor, _DTYPES[features.dtype], *out_size)


def _check_op_args(features, masks, kernel_size, group_size, scale_factor) -> None:
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


# The fake kernels check the arguments and allocate the outputs; the real kernels start with them.
def _reassemble_fake(features, masks, kernel_size, group_size, scale_factor):
    _check_op_args(features, masks, kernel_size, group_size, scale_factor)
    return _new_output(features, masks.shape[2:])


def _reassemble_backward_fake(grad_output, features, masks, kernel_size, group_size, scale_factor):
    _check_op_args(features, masks, kernel_size, group_size, scale_factor)
    check_grad_output(grad_output, features, masks.shape[2:])
    return _empty_like(features), _empty_like(masks)


def _normalized_output_size(features: Tensor, scale_factor: int) -> tuple:
    return features.shape[2] * scale_factor, features.shape[3] * scale_factor


def _reassemble_normalized_fake(features, logits, kernel_size, group_size, scale_factor):
    check_normalized_args(features, logits, kernel_size, group_size, scale_factor)
    return _new_output(features, _normalized_output_size(features, scale_factor))


def _reassemble_normalized_backward_fake(grad_output, features, logits, kernel_size, group_size, scale_factor):
    check_normalized_args(features, logits, kernel_size, group_size, scale_factor)
    check_grad_output(grad_output, features, _normalized_output_size(features, scale_factor))
    return _empty_like(features), _empty_like(logits)


@torch.library.custom_op("carafe::reassemble", mutates_args=())
def reassemble(features: Tensor, masks: Tensor, kernel_size: int, group_size: int, scale_factor: int) -> Tensor:
    output = _reassemble_fake(features, masks, kernel_size, group_size, scale_factor)
    device = _device(features)
    problem = _problem(features, kernel_size, group_size, scale_factor, *masks.shape[2:])
    with _on_device(features):
        _C.reassemble_forward(problem, device, _ref(features), _ref(masks), _ref(output))
    return output


@torch.library.custom_op("carafe::reassemble_backward", mutates_args=())
def reassemble_backward(
    grad_output: Tensor, features: Tensor, masks: Tensor, kernel_size: int, group_size: int, scale_factor: int
) -> tuple[Tensor, Tensor]:
    grad_features, grad_masks = _reassemble_backward_fake(grad_output, features, masks, kernel_size, group_size,
                                                          scale_factor)
    device = _device(features)
    problem = _problem(features, kernel_size, group_size, scale_factor, *masks.shape[2:])
    with _on_device(features):
        _C.reassemble_backward(problem, device, _ref(grad_output), _ref(features), _ref(masks), _ref(grad_features),
                               _ref(grad_masks))
    return grad_features, grad_masks


@torch.library.custom_op("carafe::reassemble_normalized", mutates_args=())
def reassemble_normalized(
    features: Tensor, logits: Tensor, kernel_size: int, group_size: int, scale_factor: int
) -> Tensor:
    """The fused kernel normalizer: reassembly with masks = softmax over taps of pixel_shuffle(logits), made
    inside the kernel (never written to memory)."""
    output = _reassemble_normalized_fake(features, logits, kernel_size, group_size, scale_factor)
    device = _device(features)
    problem = _problem(features, kernel_size, group_size, scale_factor)
    with _on_device(features):
        _C.reassemble_normalized_forward(problem, device, _ref(features), _ref(logits), _ref(output))
    return output


@torch.library.custom_op("carafe::reassemble_normalized_backward", mutates_args=())
def reassemble_normalized_backward(
    grad_output: Tensor, features: Tensor, logits: Tensor, kernel_size: int, group_size: int, scale_factor: int
) -> tuple[Tensor, Tensor]:
    grad_features, grad_logits = _reassemble_normalized_backward_fake(grad_output, features, logits, kernel_size,
                                                                      group_size, scale_factor)
    device = _device(features)
    problem = _problem(features, kernel_size, group_size, scale_factor)
    # CUDA: the softmax max and 1/sum of each output pixel (2/k^2 of the masks' size); none on the CPU
    workspace = torch.empty(_C.normalized_backward_workspace_bytes(problem, device), dtype=torch.uint8,
                            device=features.device)
    with _on_device(features):
        _C.reassemble_normalized_backward(problem, device, _ref(grad_output), _ref(features), _ref(logits),
                                          _ref(grad_features), _ref(grad_logits), workspace.data_ptr())
    return grad_features, grad_logits


def _setup_context(ctx, inputs, output):
    features, masks, kernel_size, group_size, scale_factor = inputs
    ctx.save_for_backward(features, masks)
    ctx.hyperparameters = (kernel_size, group_size, scale_factor)


def _register(op, backward_op, fake, backward_fake) -> None:
    def backward(ctx, grad_output):
        return (*backward_op(grad_output, *ctx.saved_tensors, *ctx.hyperparameters), None, None, None)

    op.register_fake(fake)
    backward_op.register_fake(backward_fake)
    op.register_autograd(backward, setup_context=_setup_context)


_register(reassemble, reassemble_backward, _reassemble_fake, _reassemble_backward_fake)
_register(reassemble_normalized, reassemble_normalized_backward, _reassemble_normalized_fake,
          _reassemble_normalized_backward_fake)


def reassemble_flops(features_shape, masks_shape, kernel_size: int) -> int:
    """A multiply and an add per tap per output element: 2 * N * C * OH * OW * k_up^2 (OH, OW = sigma*H,
    sigma*W by default; the masks' spatial size)."""
    n, c = features_shape[:2]
    out_h, out_w = masks_shape[2:]
    return 2 * n * c * out_h * out_w * kernel_size * kernel_size


@register_flop_formula([torch.ops.carafe.reassemble, torch.ops.carafe.reassemble_normalized])
def _forward_flop(features_shape, masks_or_logits_shape, kernel_size, *args, out_shape, **kwargs) -> int:
    # the reassembly; the fused normalizer's softmax is not a multiply-add and is not counted (as FlopCounterMode
    # does for softmax)
    return reassemble_flops(features_shape, out_shape, kernel_size)


@register_flop_formula([torch.ops.carafe.reassemble_backward, torch.ops.carafe.reassemble_normalized_backward])
def _backward_flop(grad_output_shape, features_shape, masks_or_logits_shape, kernel_size, *args, **kwargs) -> int:
    # grad_features and grad_masks (or grad_logits) each cost as much as the forward
    return 2 * reassemble_flops(features_shape, grad_output_shape, kernel_size)
