"""FLOP counting of the CARAFE op in the counters people use.

- ``torch.utils.flop_counter.FlopCounterMode`` works out of the box (the formulas are registered with the ops):
  it counts 2 FLOPs per multiply-add, 2·N·C·OH·OW·k_up² for the forward and twice that for the backward.
- fvcore's ``FlopCountAnalysis`` (and mmengine's ``FlopAnalyzer``, built on it) need a handle per custom op:
  ``analysis.set_op_handle(**fvcore_handles())``. These counters count one multiply-add as one "flop" (their
  convolution counts are multiply-adds too), so the handle returns N·C·OH·OW·k_up² and totals stay consistent:
  CARAFEPack at C 256, sigma 2 comes to 99,584 per input pixel there, the paper's 199K FLOPs / 2.
"""

from __future__ import annotations

from ._ops import reassemble_flops


def _shape(value) -> list[int]:
    return value.type().sizes()


def fvcore_reassemble_handle(inputs, outputs) -> int:
    """fvcore/mmengine op handle for ``carafe::reassemble`` and ``carafe::reassemble_normalized`` (the fused
    kernel normalizer): multiply-adds of the forward's reassembly (softmax not counted, as fvcore counts none)."""
    return reassemble_flops(_shape(inputs[0]), _shape(outputs[0]), inputs[2].toIValue()) // 2


def fvcore_handles() -> dict:
    """{op name: handle} to pass to ``FlopCountAnalysis.set_op_handle(**...)``."""
    return {"carafe::reassemble": fvcore_reassemble_handle, "carafe::reassemble_normalized": fvcore_reassemble_handle}
