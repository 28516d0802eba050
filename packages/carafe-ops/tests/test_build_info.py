"""What the build reports about itself, and the import-time check of CUDA versions."""

from __future__ import annotations

import re

import pytest
import torch

import carafe_ops
from carafe_ops import _C


def test_build_info_is_consistent():
    info = carafe_ops.build_info()
    assert info["backends"][0] == "cpu" and re.fullmatch(r"\d+\.\d+\.\d+", info["version"])
    assert carafe_ops.__version__.split("+")[0] == info["version"]
    if carafe_ops.has_cuda():
        assert info["backends"] == ["cpu", "cuda"] and re.fullmatch(r"\d+\.\d", info["cuda_version"])
        assert info["cuda_architectures"] and all(re.fullmatch(r"\d+(-real|-virtual)?", a)
                                                  for a in info["cuda_architectures"])
    else:
        assert info["backends"] == ["cpu"] and info["cuda_version"] is None
    assert _C.cuda_driver_version() >= 0  # 0 where there is no driver: never an error


@pytest.mark.skipif(not carafe_ops.has_cuda(), reason="the check concerns builds with a CUDA backend")
def test_import_check_rejects_another_cuda_major(monkeypatch):
    built = carafe_ops.build_info()["cuda_version"]
    other = f"{int(built.split('.')[0]) - 1}.8"
    monkeypatch.setattr(torch.version, "cuda", other)
    with pytest.raises(ImportError, match=rf"built with CUDA {re.escape(built)}, but PyTorch .* uses CUDA {other}"):
        carafe_ops.check_cuda_compatibility()
    monkeypatch.setenv("CARAFE_ALLOW_CUDA_MISMATCH", "1")
    carafe_ops.check_cuda_compatibility()
    monkeypatch.setattr(torch.version, "cuda", built)
    monkeypatch.delenv("CARAFE_ALLOW_CUDA_MISMATCH")
    carafe_ops.check_cuda_compatibility()  # the running combination passes
