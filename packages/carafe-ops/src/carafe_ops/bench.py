"""Benchmark of the CARAFE op and CARAFEPack next to the upsamplers they replace.

    python -m carafe_ops.bench --device cuda --suite fpn --dtypes float32 float16 --json bench.json

For every workload it times forward, backward and forward+backward of the op (ours, the pure-PyTorch
reference, and the common unfold-based PyTorch version) and of CARAFEPack (with the fused kernel normalizer, its
default, and without), next to nearest and bilinear interpolation and a stride-2 deconvolution. Each time is
printed with its ratio to the memory-traffic floor: the bytes the computation must at least read and write,
divided by the copy bandwidth measured in the same run. On CUDA, times come from CUDA events with the L2 cache
flushed before every timed call (so a small workload cannot run from the cache), and it also reports the peak
memory a call allocates beyond its inputs.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import platform
import statistics
import time
from importlib.util import find_spec
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from . import reference
from ._build import build_info
from .functional import carafe
from .modules import CARAFEPack


@dataclass(frozen=True)
class Workload:
    name: str
    n: int
    c: int
    h: int
    w: int
    k: int = 5
    g: int = 1
    s: int = 2


# Feature maps that are upsampled in the paper's three tasks (input sizes; output is s times larger).
SUITES: dict[str, list[Workload]] = {
    # FPN top-down steps of an 800x1333 image (padded to 800x1344), batch 2, C 256: P5 -> P4 -> P3 -> P2
    "fpn": [
        Workload("fpn-P5", 2, 256, 25, 42),
        Workload("fpn-P4", 2, 256, 50, 84),
        Workload("fpn-P3", 2, 256, 100, 168),
        Workload("mmcv-shape", 2, 256, 100, 136),
        Workload("mmcv-shape-G4", 2, 256, 100, 136, g=4),
        Workload("mmcv-shape-s4", 2, 256, 50, 68, s=4),
        Workload("batch8-64", 8, 256, 64, 64),
    ],
    # UperNet decoder, C 512, a 512x512 crop: 1/32 -> 1/16 -> 1/8 -> 1/4
    "seg": [
        Workload("seg-1/32", 2, 512, 16, 16),
        Workload("seg-1/16", 2, 512, 32, 32),
        Workload("seg-1/8", 2, 512, 64, 64),
    ],
    # Global&Local generator decoder on 256x256 images: 64 -> 128 (C 128) and 128 -> 256 (C 64)
    "inpaint": [
        Workload("inpaint-64", 2, 128, 64, 64),
        Workload("inpaint-128", 2, 64, 128, 128),
    ],
    # sizes a 2-core CPU gets through in seconds
    "cpu": [
        Workload("cpu-fpn", 2, 256, 50, 68),
        Workload("cpu-fpn-1", 1, 256, 50, 68),
        Workload("cpu-inpaint", 1, 64, 64, 64),
    ],
    "quick": [Workload("quick", 2, 64, 25, 34)],
}

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@functools.cache
def _l2_flush_buffer(device: torch.device) -> torch.Tensor:
    """A buffer larger than any GPU's L2 cache (H100/H200: 50/60 MB): overwriting it evicts the inputs."""
    return torch.empty(256 * 2**20, dtype=torch.uint8, device=device)


def without_grad(fn: Callable, *args) -> Callable[[], object]:
    """fn(*args) as a call without autograd, to time."""
    def run():
        with torch.no_grad():
            return fn(*args)

    return run


def measure_ms(fn: Callable[[], object], device: torch.device, *, min_time_s: float | None = None,
               max_reps: int = 50) -> float:
    """Median time of fn in milliseconds, after a warm-up call; repeats until min_time_s (default 0.2 s on the
    CPU, 0.05 s on CUDA) or max_reps. CPU: wall time. CUDA: CUDA events around each call on the current
    stream, the L2 cache flushed before each."""
    cuda = device.type == "cuda"
    if min_time_s is None:
        min_time_s = 0.05 if cuda else 0.2
    fn()
    synchronize(device)
    times = []
    start_all = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start_all < min_time_s and len(times) < max_reps):
        if cuda:
            _l2_flush_buffer(device).zero_()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def copy_bandwidth_gbs(device: torch.device) -> float:
    """Device-memory copy bandwidth (read + write bytes per second), the yardstick of the floor."""
    numel = (256 if device.type == "cuda" else 32) * 2**20
    src = torch.empty(numel, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    ms = measure_ms(lambda: dst.copy_(src), device, min_time_s=0.3 if device.type == "cpu" else 0.1)
    return 2 * src.numel() * src.element_size() / (ms * 1e-3) / 1e9


def matmul_gflops(device: torch.device, dtype: torch.dtype) -> float:
    """The arithmetic rate of a large matrix product in this dtype (the best of several), the yardstick of the
    compute floor. On CUDA float32 products do not use TF32 (PyTorch's default). On a CPU, float16 and bfloat16
    products run at about 1 GFLOP/s where the CPU has no instructions for them, so they are timed at 512."""
    reduced = dtype in (torch.float16, torch.bfloat16)
    size = 8192 if device.type == "cuda" else (512 if reduced else 2048)
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    best = min(measure_ms(lambda: a @ b, device, min_time_s=0.05) for _ in range(3))
    return 2 * size**3 / (best * 1e-3) / 1e9


def counted_flops(fn: Callable[[], object]) -> int:
    """Multiply-add flops (2 per multiply-add) of one call, as FlopCounterMode counts them (convolutions, matrix
    products, the CARAFE ops)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def peak_extra_mb(fn: Callable[[], object], device: torch.device) -> float | None:
    """Memory a call allocates at its peak beyond what was allocated before it (CUDA only)."""
    if device.type != "cuda":
        return None
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    result = fn()
    synchronize(device)
    del result
    return (torch.cuda.max_memory_allocated(device) - before) / 2**20


def unfold_carafe(x, m, k: int, g: int, s: int):
    """The usual pure-PyTorch CARAFE (unfold the k x k neighbourhoods, upsample them, weight and sum): the
    baseline people replace the CUDA op with. It holds k^2 * sigma^2 copies of the input at once."""
    n, c, h, w = x.shape
    cols = F.unfold(x, k, padding=(k - 1) // 2).view(n, c * k * k, h, w)
    cols = F.interpolate(cols, scale_factor=s, mode="nearest").view(n, g, c // g, k * k, s * h, s * w)
    return (cols * m.view(n, g, 1, k * k, s * h, s * w)).sum(3).view(n, c, s * h, s * w)


def _cases(wl: Workload, dtype: torch.dtype, device: torch.device, with_reference: bool):
    """(method, pass, callable, bytes that must move, flops) for one workload."""
    n, c, h, w, k, g, s = wl.n, wl.c, wl.h, wl.w, wl.k, wl.g, wl.s
    item = torch.tensor([], dtype=dtype).element_size()
    x = torch.randn(n, c, h, w, device=device, dtype=dtype, requires_grad=True)
    m = torch.randn(n, g * k * k, s * h, s * w, device=device, dtype=dtype).softmax(1).requires_grad_(True)
    grad = torch.randn(n, c, s * h, s * w, device=device, dtype=dtype)
    x_bytes, m_bytes, y_bytes = x.numel() * item, m.numel() * item, grad.numel() * item
    op_flops = 2 * n * c * s * h * s * w * k * k  # per forward; the backward costs twice that
    fwd_bytes = x_bytes + m_bytes + y_bytes
    bwd_bytes = y_bytes + x_bytes + m_bytes + x_bytes + m_bytes  # read dY, X, M; write dX, dM
    interp_bytes = x_bytes + y_bytes

    def fwd_bwd(f):
        return lambda: torch.autograd.grad(f(), (x, m), grad, allow_unused=True)

    def op_bwd_only():
        return torch.ops.carafe.reassemble_backward(grad, x.detach(), m.detach(), k, g, s)

    cases = [
        ("carafe", "forward", without_grad(carafe, x, m, k, g, s), fwd_bytes, op_flops),
        ("carafe", "backward", op_bwd_only, bwd_bytes, 2 * op_flops),
        ("carafe", "forward+backward", fwd_bwd(lambda: carafe(x, m, k, g, s)), fwd_bytes + bwd_bytes, 3 * op_flops),
    ]
    if with_reference:
        for method, op in (("reference", reference.carafe), ("unfold", unfold_carafe)):
            cases += [
                (method, "forward", lambda op=op: op(x.detach(), m.detach(), k, g, s), fwd_bytes, op_flops),
                (method, "forward+backward", fwd_bwd(lambda op=op: op(x, m, k, g, s)), fwd_bytes + bwd_bytes,
                 3 * op_flops),
            ]
    pack = CARAFEPack(c, s, up_kernel=k, up_group=g).to(device=device, dtype=dtype)
    unfused = CARAFEPack(c, s, up_kernel=k, up_group=g, fused_normalizer=False).to(device=device, dtype=dtype)
    unfused.load_state_dict(pack.state_dict())
    deconv = torch.nn.ConvTranspose2d(c, c, 4, stride=2, padding=1).to(device=device, dtype=dtype)
    # CARAFEPack's flops, convolutions included, as FlopCounterMode counts the forward; the backward costs twice
    pack_flops = counted_flops(without_grad(pack, x))
    for method, module in (("CARAFEPack", pack), ("unfused-pack", unfused)):
        cases += [
            (method, "forward", without_grad(module, x), fwd_bytes, pack_flops),
            (method, "forward+backward", fwd_bwd(lambda module=module: module(x)), fwd_bytes + bwd_bytes,
             3 * pack_flops),
        ]
    cases += [
        ("nearest", "forward", lambda: F.interpolate(x.detach(), scale_factor=s, mode="nearest"), interp_bytes, 0),
        ("bilinear", "forward",
         lambda: F.interpolate(x.detach(), scale_factor=s, mode="bilinear", align_corners=False), interp_bytes, 0),
    ]
    if s == 2:
        cases.append(("deconv-s2", "forward", lambda: deconv(x.detach()), interp_bytes,
                      counted_flops(without_grad(deconv, x))))
    return cases


def run(device: torch.device, workloads: list[Workload], dtypes: list[torch.dtype], with_reference: bool,
        log=print) -> dict:
    bandwidth = copy_bandwidth_gbs(device)
    rates = {str(dtype).removeprefix("torch."): matmul_gflops(device, dtype) for dtype in dtypes}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    log(f"device: {name} ({device}), {torch.get_num_threads()} threads, copy bandwidth {bandwidth:.1f} GB/s, matrix "
        f"product " + ", ".join(f"{d} {r:.0f} GFLOP/s" for d, r in rates.items()) + f", torch {torch.__version__}")
    log("x memory: time / (bytes read and written / copy bandwidth); x compute: time / (flops / matrix-product rate)")
    rows = []
    header = (f"{'workload':<16}{'dtype':<10}{'method':<14}{'pass':<18}{'ms':>10}{'x memory':>10}{'x compute':>10}"
              f"{'extra MB':>10}")
    log(header)
    log("-" * len(header))
    for wl in workloads:
        for dtype in dtypes:
            dtype_name = str(dtype).removeprefix("torch.")
            for method, phase, fn, nbytes, flops in _cases(wl, dtype, device, with_reference):
                ms = measure_ms(fn, device)
                floor_ms = nbytes / (bandwidth * 1e9) * 1e3
                compute_ms = flops / (rates[dtype_name] * 1e9) * 1e3 if flops else None
                extra = peak_extra_mb(fn, device)
                row = {
                    "workload": asdict(wl),
                    "dtype": dtype_name,
                    "method": method,
                    "pass": phase,
                    "ms": ms,
                    "floor_ms": floor_ms,
                    "ratio_to_floor": ms / floor_ms,
                    "flops": flops,
                    "compute_floor_ms": compute_ms,
                    "ratio_to_compute_floor": ms / compute_ms if compute_ms else None,
                    "peak_extra_mb": extra,
                }
                rows.append(row)
                compute_text = f"{ms / compute_ms:10.1f}" if compute_ms else f"{'-':>10}"
                extra_text = f"{extra:10.1f}" if extra is not None else f"{'-':>10}"
                log(f"{wl.name:<16}{dtype_name:<10}{method:<14}{phase:<18}{ms:10.3f}{ms / floor_ms:10.1f}"
                    f"{compute_text}{extra_text}")
    return {
        "device": name,
        "device_type": device.type,
        "torch": torch.__version__,
        "carafe_ops": build_info(),
        "threads": torch.get_num_threads(),
        "copy_bandwidth_gbs": bandwidth,
        "matmul_gflops": rates,
        "results": rows,
    }


def faster_rcnn_models(image_size) -> dict[str, torch.nn.Module]:
    """torchvision's Faster R-CNN R50-FPN for image_size (random weights, seed 0) with nearest top-down upsampling
    in its FPN, and a copy with CARAFEPack in the three top-down steps (carafe_ops.nn.replace_upsampling)."""
    from torchvision.models.detection import fasterrcnn_resnet50_fpn

    from .nn import replace_upsampling

    torch.manual_seed(0)
    nearest = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, min_size=image_size[0],
                                      max_size=max(image_size))
    return {"nearest": nearest, "CARAFEPack": replace_upsampling(copy.deepcopy(nearest))}


def detector_fpn(device: torch.device, image_size=(800, 1216), batch: int = 2, log=print) -> list[dict]:
    """The end-to-end case: the FPN of faster_rcnn_models, nearest against CARAFEPack. Times the FPN's forward on
    the backbone's features of `batch` images and, on CUDA, the peak memory of one training step."""
    models = {name: model.to(device) for name, model in faster_rcnn_models(image_size).items()}
    images = torch.rand(batch, 3, *image_size, device=device)
    with torch.no_grad():
        features = models["nearest"].backbone.body(images)
    targets = [{"boxes": torch.tensor([[10.0, 20.0, 200.0, 240.0]], device=device),
                "labels": torch.tensor([1], device=device)} for _ in range(batch)]
    rows = []
    for name, model in models.items():
        model.eval()

        def training_step(model=model):
            model.train()
            losses = model(list(images), targets)
            sum(losses.values()).backward()
            model.zero_grad(set_to_none=True)

        ms = measure_ms(without_grad(model.backbone.fpn, features), device)
        peak = None
        if device.type == "cuda":
            training_step()
            synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            training_step()
            synchronize(device)
            peak = torch.cuda.max_memory_allocated(device) / 2**20
        rows.append({"workload": {"name": f"faster-rcnn-fpn-{image_size[0]}x{image_size[1]}", "n": batch},
                     "method": name, "pass": "FPN forward", "ms": ms, "peak_training_mb": peak})
        peak_text = f"{peak:10.0f}" if peak is not None else f"{'-':>10}"
        log(f"{'detector-fpn':<16}{'float32':<10}{name:<14}{'FPN forward':<18}{ms:10.3f}{'':20}{peak_text}"
            "  (peak MB of a training step)")
    slower = rows[1]["ms"] / rows[0]["ms"] - 1
    log(f"CARAFE FPN forward: {100 * slower:+.0f}% vs nearest")
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m carafe_ops.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--suite", nargs="+", default=None, choices=sorted(SUITES) + ["detector", "detector-onnx"],
                        help="workload sets (default: fpn seg inpaint detector on CUDA, cpu on CPU); 'detector': "
                             "torchvision Faster R-CNN's FPN at --detector-size, nearest vs CARAFE (needs "
                             "torchvision); 'detector-onnx': that whole detector exported to ONNX, onnxruntime vs "
                             "PyTorch on the CPU (needs onnxruntime)")
    parser.add_argument("--onnx", action=argparse.BooleanOptionalAction, default=None,
                        help="also time the exported graphs of the op and CARAFEPack in onnxruntime (CPU; default "
                             "on for CPU runs where onnxruntime is installed)")
    parser.add_argument("--dtypes", nargs="+", default=None, choices=sorted(DTYPES),
                        help="default: float32 float16 bfloat16 on CUDA, float32 on CPU")
    parser.add_argument("--no-reference", action="store_true", help="skip the (slow) pure-PyTorch versions")
    parser.add_argument("--detector-size", type=int, nargs=2, default=(800, 1216), metavar=("H", "W"),
                        help="image size of the detector case (default 800 1216)")
    parser.add_argument("--detector-batch", type=int, default=2, help="images per batch of the detector case")
    parser.add_argument("--json", type=Path, default=Path("carafe_bench.json"), help="where to write the results")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    suites = args.suite or (["fpn", "seg", "inpaint", "detector"] if device.type == "cuda" else ["cpu"])
    dtype_names = args.dtypes or (["float32", "float16", "bfloat16"] if device.type == "cuda" else ["float32"])
    workloads = [wl for suite in suites if suite in SUITES for wl in SUITES[suite]]
    result = run(device, workloads, [DTYPES[d] for d in dtype_names], not args.no_reference)
    if "detector" in suites:
        result["detector"] = detector_fpn(device, tuple(args.detector_size), args.detector_batch)
    onnx = args.onnx if args.onnx is not None else device.type == "cpu" and find_spec("onnxruntime") is not None
    if onnx or "detector-onnx" in suites:
        from . import bench_onnx

        if onnx:
            result["onnxruntime"] = bench_onnx.onnxruntime_rows(workloads, result["results"], measure_ms)
        if "detector-onnx" in suites:
            result["detector_onnx"] = bench_onnx.detector_onnx(tuple(args.detector_size), measure_ms)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
