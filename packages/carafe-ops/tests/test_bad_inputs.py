"""Every bad input raises a Python exception naming the argument and what was expected; nothing crashes."""

from __future__ import annotations

import pytest
import torch

import carafe_ops
from carafe_ops import CARAFE, CARAFEPack, carafe, reference
from carafe_ops.testing import make_inputs

K, G, S = 3, 2, 2


def good():
    return make_inputs(1, 4, 5, 6, K, G, S)


@pytest.mark.parametrize("fn", [carafe, reference.carafe], ids=["op", "reference"])
@pytest.mark.parametrize(
    "mutate, error, words",
    [
        (lambda x, m: (x[0], m, K, G, S), ValueError, "features must be a 4-d tensor"),
        (lambda x, m: (x, m[0], K, G, S), ValueError, "masks must be a 4-d tensor"),
        (lambda x, m: (x, m[:, :-1], K, G, S), ValueError, "masks must have shape"),
        (lambda x, m: (x, m[:, :, :-1], K, G, S), ValueError, "masks must have shape"),
        (lambda x, m: (x, m[:, :, :, :-2], K, G, S), ValueError, "masks must have shape"),
        (lambda x, m: (x, torch.cat([m, m]), K, G, S), ValueError, "masks must have shape"),
        (lambda x, m: (x, m, 2, G, S), ValueError, "kernel_size must be an odd integer"),
        (lambda x, m: (x, m, 0, G, S), ValueError, "kernel_size must be an odd integer"),
        (lambda x, m: (x, m, -3, G, S), ValueError, "kernel_size must be an odd integer"),
        (lambda x, m: (x, m, K, G, 0), ValueError, "scale_factor must be an integer >= 1"),
        (lambda x, m: (x, m, K, 0, S), ValueError, "group_size must be an integer >= 1"),
        (lambda x, m: (x[:, :3], m, K, G, S), ValueError, "which group_size=2 does not divide"),
        (lambda x, m: (x, m.double(), K, G, S), TypeError, "same dtype"),
        (lambda x, m: (x.int(), m, K, G, S), TypeError, "features must be float32, float64, float16 or bfloat16"),
        (lambda x, m: (x[:, :, :0], m[:, :, :0], K, G, S), ValueError, "features must have non-empty C, H and W"),
        (lambda x, m: (x[:, :0], m, K, G, S), ValueError, "features must have non-empty C, H and W"),
        (lambda x, m: (x.numpy(), m, K, G, S), TypeError, "features must be a torch.Tensor"),
        (lambda x, m: (x, [1.0], K, G, S), TypeError, "masks must be a torch.Tensor"),
        (lambda x, m: (x, m, 3.0, G, S), TypeError, "kernel_size must be an int"),
        (lambda x, m: (x, m, K, G, 2.5), TypeError, "scale_factor must be an int"),
        (lambda x, m: (x, m, K, True, S), TypeError, "group_size must be an int"),
        (lambda x, m: (x, m.to("meta"), K, G, S), ValueError, "must be on the same device"),
    ],
)
def test_bad_input_raises(fn, mutate, error, words):
    args = mutate(*good())
    with pytest.raises(error, match=words):
        fn(*args)


def test_cuda_tensor_without_cuda_backend_or_gpu():
    """A CUDA tensor where the build has no CUDA gets a RuntimeError that says what to do."""
    if carafe_ops.has_cuda() and torch.cuda.is_available():
        pytest.skip("this build and machine run CUDA")
    if not torch.cuda.is_available():
        pytest.skip("no GPU to make a CUDA tensor on")
    features, masks = make_inputs(1, 4, 5, 6, K, G, S, device="cuda")
    with pytest.raises(RuntimeError, match="no CUDA backend"):
        carafe(features, masks, K, G, S)


def test_backward_op_checks_grad_output():
    features, masks = good()
    with pytest.raises(ValueError, match="grad_output must have shape"):
        torch.ops.carafe.reassemble_backward(torch.zeros(1, 4, 9, 12), features, masks, K, G, S)
    with pytest.raises(ValueError, match="grad_output .* must match features"):
        torch.ops.carafe.reassemble_backward(torch.zeros(1, 4, 10, 12).double(), features, masks, K, G, S)


def test_library_rejects_bad_problems_itself():
    """libcarafe checks its own arguments, so a direct caller of the binding gets an exception too."""
    from carafe_ops import _C

    problem = _C.Problem(1, 4, 5, 6, 4, 1, 2, _C.DType.float32)  # even kernel
    features, masks = good()
    out = torch.empty(1, 4, 10, 12)
    with pytest.raises(ValueError, match="kernel_size must be an odd integer"):
        _C.reassemble_forward(problem, _C.Device(), (features.data_ptr(), features.stride()),
                              (masks.data_ptr(), masks.stride()), (out.data_ptr(), out.stride()))
    problem = _C.Problem(1, 4, 5, 6, 3, 2, 2, _C.DType.float32)
    with pytest.raises(ValueError, match="null pointer"):
        _C.reassemble_forward(problem, _C.Device(), (0, features.stride()), (masks.data_ptr(), masks.stride()),
                              (out.data_ptr(), out.stride()))


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"channels": 6, "scale_factor": 2, "up_group": 4}, "divisible by up_group"),
        ({"channels": 8, "scale_factor": 0}, "scale_factor must be an integer >= 1"),
        ({"channels": 8, "scale_factor": 2, "up_kernel": 4}, "kernel_size must be an odd integer"),
    ],
)
def test_carafepack_rejects_bad_configuration(kwargs, words):
    with pytest.raises(ValueError, match=words):
        CARAFEPack(**kwargs)


def test_carafe_module_rejects_bad_configuration():
    with pytest.raises(TypeError, match="scale_factor must be an int"):
        CARAFE(5, 1, 2.0)


def test_carafepack_wrong_channels_names_the_input():
    with pytest.raises(RuntimeError, match="channels"):
        CARAFEPack(8, 2)(torch.randn(1, 4, 5, 5))
