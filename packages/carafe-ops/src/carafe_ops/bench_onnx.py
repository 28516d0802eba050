"""The deployment half of ``python -m carafe_ops.bench``: onnxruntime (CPU) running the exported graphs of the op,
of CARAFEPack and of a whole Faster R-CNN R50-FPN, each beside the native PyTorch time of the same thing in the
same run. Needs onnx and onnxruntime (and torchvision for the detector)."""

from __future__ import annotations

import io
import warnings
from dataclasses import asdict

import torch

from .bench import faster_rcnn_models, without_grad
from .modules import CARAFE, CARAFEPack


def _session(model: torch.nn.Module, inputs: tuple, input_names: list[str], output_names=None):
    """The model exported with the TorchScript exporter (opset 17) and an onnxruntime CPU session with as many
    threads as PyTorch uses."""
    import onnxruntime as ort

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, inputs, buffer, dynamo=False, opset_version=17, input_names=input_names,
                          output_names=output_names)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])


def onnxruntime_rows(workloads, native_rows: list[dict], measure_ms, log=print) -> list[dict]:
    """For each workload: the op and CARAFEPack forward in onnxruntime (float32, CPU), with the ratio to the
    native forward measured by bench.run (native_rows)."""
    native = {(r["workload"]["name"], r["method"]): r["ms"] for r in native_rows
              if r["pass"] == "forward" and r["dtype"] == "float32"}
    cpu = torch.device("cpu")
    rows = []
    for wl in workloads:
        n, c, h, w, k, g, s = wl.n, wl.c, wl.h, wl.w, wl.k, wl.g, wl.s
        features = torch.randn(n, c, h, w)
        masks = torch.randn(n, g * k * k, s * h, s * w).softmax(1)
        pack = CARAFEPack(c, s, up_kernel=k, up_group=g).eval()
        torch.nn.init.normal_(pack.content_encoder.weight, 0, 0.1)
        for method, model, inputs, names in (("carafe", CARAFE(k, g, s), (features, masks), ["features", "masks"]),
                                             ("CARAFEPack", pack, (features,), ["features"])):
            session = _session(model, inputs, names)
            feeds = {name: t.numpy() for name, t in zip(names, inputs)}
            ms = measure_ms(lambda: session.run(None, feeds), cpu)
            with torch.no_grad():
                expected = model(*inputs)
            error = (torch.from_numpy(session.run(None, feeds)[0]) - expected).abs().max().item()
            reference_ms = native.get((wl.name, method))
            row = {"workload": asdict(wl), "dtype": "float32", "method": f"onnxruntime {method}", "pass": "forward",
                   "ms": ms, "native_ms": reference_ms, "ratio_to_native": ms / reference_ms if reference_ms else None,
                   "max_error": error}
            rows.append(row)
            ratio = f"{row['ratio_to_native']:.1f}x native" if reference_ms else ""
            log(f"{wl.name:<16}{'float32':<10}{'ort ' + method:<16}{'forward':<16}{ms:10.3f}  {ratio}, "
                f"max error {error:.1e}")
    return rows


def detector_onnx(image_size, measure_ms, log=print) -> list[dict]:
    """torchvision's Faster R-CNN R50-FPN (random weights), nearest vs CARAFE in the FPN, exported whole to ONNX:
    one image's inference in onnxruntime and in PyTorch, on the CPU."""
    cpu = torch.device("cpu")
    models = {name: model.eval() for name, model in faster_rcnn_models(image_size).items()}
    image = torch.rand(3, *image_size)
    rows = []
    for name, model in models.items():
        session = _session(model, ([image],), ["image"], ["boxes", "labels", "scores"])
        feeds = {"image": image.numpy()}
        ort_ms = measure_ms(lambda: session.run(None, feeds), cpu, min_time_s=0.0, max_reps=3)

        eager = without_grad(model, [image])
        torch_ms = measure_ms(eager, cpu, min_time_s=0.0, max_reps=3)
        boxes, _, scores = session.run(None, feeds)
        expected = eager()[0]
        same = (boxes.shape == tuple(expected["boxes"].shape)
                and torch.allclose(torch.from_numpy(scores), expected["scores"], rtol=1e-3, atol=1e-4))
        rows.append({"workload": {"name": f"faster-rcnn-r50-fpn-{image_size[0]}x{image_size[1]}", "n": 1},
                     "method": f"onnxruntime {name}", "pass": "inference", "ms": ort_ms, "native_ms": torch_ms,
                     "ratio_to_native": ort_ms / torch_ms, "matches_pytorch": bool(same)})
        log(f"{'detector-onnx':<16}{'float32':<10}{'ort ' + name:<16}{'inference':<16}{ort_ms:10.1f}  "
            f"PyTorch {torch_ms:.1f} ms, detections {'match' if same else 'DIFFER'}")
    return rows
