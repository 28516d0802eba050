"""The Figure 1 computation shows what CARAFE computes: the kernels and units it reports reproduce the top-down
CARAFE's output, and the units sit where the output location's source neighbourhood is."""

from __future__ import annotations

import pytest
import torch

from carafe_det.modeling import CARAFEFPN, CARAFESettings
from carafe_det.reassembly import reassembled_units, reassembly_figure, top_down_kernels


def _fpn_and_features():
    torch.manual_seed(0)
    fpn = CARAFEFPN([8, 16, 24, 32], 12, upsample="carafe", top_level="conv",
                    carafe=CARAFESettings(compressed_channels=8))
    for pack in fpn.upsample_modules:  # peaked kernels, not the near-uniform ones of the init
        torch.nn.init.normal_(pack.content_encoder.weight, std=0.5)
    features = [torch.randn(1, c, 32 // 2 ** i, 40 // 2 ** i) for i, c in enumerate([8, 16, 24, 32])]
    return fpn, features


@torch.no_grad()
def test_kernels_reproduce_the_carafe_output_of_the_level():
    fpn, features = _fpn_and_features()
    strides = [4, 8, 16, 32, 64]
    level = 1  # the CARAFE from P4's lateral into P3
    reassembly = top_down_kernels(fpn, features, level, strides)
    assert (reassembly.input_stride, reassembly.output_stride, reassembly.up_kernel) == (16, 8, 5)
    captured = {}
    pack = fpn.upsample_modules[level]
    pack.register_forward_pre_hook(lambda m, inputs: captured.setdefault("x", inputs[0]))
    pack.register_forward_hook(lambda m, inputs, output: captured.setdefault("y", output))
    fpn(features)
    x, y = captured["x"][0], captured["y"][0]
    for oy, ox in [(0, 0), (7, 9), (15, 19), (4, 0)]:
        units, (cx, cy, csize) = reassembled_units(reassembly, oy, ox)
        assert (cx, cy, csize) == (ox * 8, oy * 8, 8)
        expected = sum(weight * x[:, int(uy // 16), int(ux // 16)] for ux, uy, _, weight in units)
        torch.testing.assert_close(y[:, oy, ox], expected, rtol=1e-4, atol=1e-5)
        if 2 <= oy // 2 < x.shape[1] - 2 and 2 <= ox // 2 < x.shape[2] - 2:  # all taps inside: a softmax
            assert len(units) == 25 and sum(w for *_, w in units) == pytest.approx(1, abs=1e-5)
        centre = [(ux, uy) for ux, uy, _, _ in units if (uy // 16, ux // 16) == (oy // 2, ox // 2)]
        assert len(centre) == 1  # the reassembly centre's source unit is among them


@torch.no_grad()
def test_units_scale_to_the_original_image_and_the_figure_is_written(tmp_path):
    fpn, features = _fpn_and_features()
    reassembly = top_down_kernels(fpn, features, 0, [4, 8, 16, 32, 64])
    units, centre = reassembled_units(reassembly, 10, 10, scale=0.5)  # the network saw the image at half size
    assert centre == (80.0, 80.0, 8.0) and all(size == 16.0 for *_, size, _ in units)
    image = (torch.rand(64, 80, 3) * 255).byte().numpy()
    path = reassembly_figure(image, reassembly, [(20.0, 30.0), (60.0, 10.0)], tmp_path / "figure1.png")
    assert path.stat().st_size > 5000


def test_nearest_fpn_and_bad_level_are_refused():
    _, features = _fpn_and_features()
    with pytest.raises(ValueError, match="upsamples by nearest neighbour"):
        top_down_kernels(CARAFEFPN([8, 16, 24, 32], 12, upsample="nearest"), features, 0, [4, 8, 16, 32, 64])
    fpn, _ = _fpn_and_features()
    with pytest.raises(ValueError, match=r"level must be in 0..3 \(the levels a CARAFE upsamples into\), got 4"):
        top_down_kernels(fpn, features, 4, [4, 8, 16, 32, 64])
