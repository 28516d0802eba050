"""python -m carafe_inpaint.demo: trains the tiny Global&Local baseline (deconvolution upsamplers) and the tiny
Global&Local w/ CARAFE on the embedded photographs, evaluates them next to the masked input and an untrained model
on held-out photographs with a fixed mask set binned by hole coverage (10-20%, ..., 50-60%), reports every metric
over all pairs and per bin, and draws the paper's Figure 4 (one row per bin).

Outputs (in --output): metrics.json, summary.md, figure4_inpainting.png (masked input | baseline | CARAFE |
original), free_form_masks.png (DeepFill v2 training masks: box and brush strokes), training_curves.png, and each
model's training folder under runs/.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from carafe_engine import plot_training_curves  # noqa: E402
from carafe_engine.demo import (  # noqa: E402
    demo_argument_parser, markdown_table, train_side_by_side, training_seconds, write_summary)

from ..config import VARIANT_LABELS, get_config  # noqa: E402
from ..data.mask_set import BIN_LABELS  # noqa: E402
from ..data.masks import seeded_mask  # noqa: E402
from ..engine import InpaintingTrainer, validation_set  # noqa: E402
from ..evaluation import evaluate, image_metrics  # noqa: E402
from ..inference import load_generator  # noqa: E402
from ..modeling import complete  # noqa: E402
from ..visualization import comparison_figure, pairs_per_bin  # noqa: E402

VARIANT_CONFIGS = {"baseline": "tiny_deconv", "CARAFE": "tiny_carafe", "PartialConv": "tiny_partialconv"}


def mask_gallery(path: Path, count: int = 8, size: int = 256, seed: int = 0) -> dict:
    masks = [seeded_mask(size, size, seed, i) for i in range(count)]
    fig, axes = plt.subplots(1, count, figsize=(1.5 * count, 1.8))
    for ax, mask in zip(axes, masks):
        ax.imshow(mask, cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(f"{100 * mask.mean():.0f}% hole", fontsize=8)
        ax.axis("off")
    fig.suptitle(f"Training masks (DeepFill v2: a box and brush strokes), {size}x{size}, seed {seed}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    coverage = [seeded_mask(size, size, seed + 1, i).mean() for i in range(500)]
    return {"size": size, "hole_fraction_mean": float(np.mean(coverage)), "hole_fraction_std": float(np.std(coverage)),
            "hole_fraction_quantiles": {str(q): float(np.quantile(coverage, q)) for q in (0.05, 0.5, 0.95)}}


class MeanColourFill(torch.nn.Module):
    """A non-learned reference, evaluated like a generator: every hole filled with its image's mean known colour."""

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        known = 1 - mask
        return ((image * known).sum(dim=(2, 3), keepdim=True) / known.sum(dim=(2, 3), keepdim=True)).expand_as(image)


def metrics_per_bin(results: dict, fill: dict) -> dict:
    """{bin label: {'pairs', 'masked input', 'mean-colour fill', each trained model: its metrics}}, non-empty bins."""
    last = next(reversed(results.values()))["bins"]  # every run has the same pairs and masked inputs
    return {label: {"pairs": last[label]["pairs"], "masked input": last[label]["masked_input"],
                    "mean-colour fill": fill["bins"][label]["model"],
                    **{name: r["bins"][label]["model"] for name, r in results.items()}}
            for label in BIN_LABELS if last[label]["pairs"]}


def bin_table(per_bin: dict) -> tuple[list[str], list[list]]:
    """Header and rows of the per-bin table: pairs, then 'PSNR / SSIM / L1 hole' of each row of metrics_per_bin."""
    names = [name for name in next(iter(per_bin.values())) if name != "pairs"]
    rows = [[label, b["pairs"], *(f"{b[n]['psnr']:.2f} / {b[n]['ssim']:.3f} / {b[n]['l1_hole']:.3f}" for n in names)]
            for label, b in per_bin.items()]
    return ["hole coverage", "pairs", *names], rows


@torch.no_grad()
def figure4(generators: dict[str, torch.nn.Module], val, path: Path) -> None:
    """The paper's Figure 4 on held-out photographs: one row per hole-coverage bin, labelled with its coverage."""
    rows = pairs_per_bin(val)
    image = torch.stack([val[p]["image"] for p, _ in rows])
    mask = torch.stack([val[p]["mask"] for p, _ in rows])
    outputs = {name: complete(generator(image, mask), image, mask) for name, generator in generators.items()}
    scores = {name: image_metrics(output, image, mask)["psnr"].tolist() for name, output in outputs.items()}
    comparison_figure(image, mask, outputs, path, scores=scores, row_labels=[label for _, label in rows],
                      title="Global&Local baseline vs w/ CARAFE on held-out photographs (tiny CPU models)")


def main(argv=None) -> int:
    parser = demo_argument_parser("inpaint", __doc__)
    parser.add_argument("--iters", type=int, default=None, help="training iterations per model (default: the "
                        "tiny configs' SOLVER.MAX_ITER)")
    parser.add_argument("--variants", nargs="+", default=["baseline", "CARAFE"], choices=list(VARIANT_CONFIGS))
    args = parser.parse_args(argv)
    out = args.output
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    print("[1/4] training masks (DeepFill v2: a box and brush strokes)")
    mask_stats = mask_gallery(out / "free_form_masks.png")
    print(f"  256x256 masks: {100 * mask_stats['hole_fraction_mean']:.1f}% +- "
          f"{100 * mask_stats['hole_fraction_std']:.1f}% of the image is hole")

    runs = {name: out / "runs" / name for name in args.variants}
    opts = {name: ["OUTPUT_DIR", str(runs[name])] for name in args.variants}
    if args.iters:
        for name in args.variants:
            opts[name] += ["SOLVER.MAX_ITER", str(args.iters), "SOLVER.CHECKPOINT_PERIOD", str(args.iters),
                           "TEST.EVAL_PERIOD", str(max(1, args.iters // 3)), "VIS.PERIOD", str(args.iters)]
    untrained, configs = {}, {}
    for name in args.variants:
        shutil.rmtree(runs[name], ignore_errors=True)  # the demo's numbers are those of fresh runs
        configs[name] = cfg = get_config(VARIANT_CONFIGS[name], opts[name])
        trainer = InpaintingTrainer(cfg)
        if cfg.TEST.PRECISE_BN.ENABLED:  # the generator at initialization, evaluated like the trained one
            trainer.precise_bn()
        untrained[name] = trainer.evaluate()["model"]
        print(f"{name}: {VARIANT_LABELS[(cfg.MODEL.UPSAMPLER, cfg.MODEL.CONV)]} generator, untrained PSNR "
              f"{untrained[name]['psnr']:.2f} dB, {cfg.SOLVER.MAX_ITER} iterations")
    print(f"\n[2/4] training {', '.join(args.variants)} side by side (carafe-inpaint-train, one thread each)")
    train_side_by_side("carafe_inpaint.cli.train", {name: ["--config-file", VARIANT_CONFIGS[name], *opts[name]]
                                                    for name in args.variants}, out / "runs")
    results = {name: json.loads((run / "eval.json").read_text()) for name, run in runs.items()}
    seconds = {name: training_seconds(run) for name, run in runs.items()}
    generators = {name: load_generator(run / "model_final.pth", torch.device("cpu"))[0] for name, run in runs.items()}

    print("\n[3/4] the trained models, the untrained ones and the masked input on the same held-out pairs")
    reference = configs[args.variants[-1]]
    val = validation_set(reference)
    fill = evaluate(MeanColourFill(), val, torch.device("cpu"))
    rows = {"masked input": results[args.variants[-1]]["masked_input"], "mean-colour fill": fill["model"],
            **{f"untrained {name}": metrics for name, metrics in untrained.items()},
            **{name: r["model"] for name, r in results.items()}}
    print(f"{'':<20}{'PSNR (dB)':>10}{'SSIM':>8}{'L1 hole':>9}{'L1':>8}")
    for name, m in rows.items():
        print(f"{name:<20}{m['psnr']:10.2f}{m['ssim']:8.4f}{m['l1_hole']:9.4f}{m['l1']:8.4f}")
    per_bin = metrics_per_bin(results, fill)
    bin_header, bin_rows = bin_table(per_bin)
    print("\nper hole-coverage bin, PSNR (dB) / SSIM / L1 hole:", *markdown_table(bin_header, bin_rows), sep="\n")

    print("\n[4/4] figures")
    figure4(generators, val, out / "figure4_inpainting.png")
    plot_training_curves(runs, out / "training_curves.png", [("loss_l1_hole", "L1 in the hole ([-1, 1] scale)"),
                                                             ("model/psnr", "PSNR on held-out photographs (dB)")])

    summary = {
        "data": {"train": "embedded photographs (skimage.data)", "validation_pairs": len(val),
                 "image_size": reference.DATASETS.IMAGE_SIZE},
        "masks": mask_stats,
        "metrics": rows,
        "metrics_per_bin": per_bin,
        "parameters": {name: sum(p.numel() for p in g.parameters()) for name, g in generators.items()},
        "iterations": {name: results[name]["iteration"] for name in runs},
        "train_seconds": seconds,
        "seconds": time.perf_counter() - started,
        "torch": torch.__version__,
    }
    lines = ["# carafe-inpaint demo", "",
             f"Tiny Global&Local models trained on the embedded photographs ({reference.DATASETS.IMAGE_SIZE}x"
             f"{reference.DATASETS.IMAGE_SIZE} views, DeepFill v2 training masks), evaluated on {len(val)} fixed "
             f"(image, mask) pairs of {val.num_images} held-out photographs, the masks from the seeded set binned by "
             "hole coverage. Metrics on [0, 1] images; L1 hole = mean absolute error inside the hole; 'masked input' "
             "is the generator's input (hole at mid-grey), 'mean-colour fill' fills each hole with its image's mean "
             "known colour (no learning), 'untrained' is each model at initialization.", ""]
    lines += markdown_table(["model", "PSNR (dB)", "SSIM", "L1 hole", "L1", "generator parameters", "iterations",
                             "train time (s)"],
                            [[name, f"{m['psnr']:.2f}", f"{m['ssim']:.4f}", f"{m['l1_hole']:.4f}", f"{m['l1']:.4f}",
                              summary["parameters"].get(name, ""), summary["iterations"].get(name, ""),
                              f"{seconds[name]:.0f}" if name in seconds else ""] for name, m in rows.items()])
    lines += ["", "Per hole-coverage bin (PSNR in dB / SSIM / L1 hole):", ""]
    lines += markdown_table(bin_header, bin_rows)
    lines += ["", f"Training masks (a box and brush strokes) at 256x256: {100 * mask_stats['hole_fraction_mean']:.1f}% "
              f"+- {100 * mask_stats['hole_fraction_std']:.1f}% hole.", "",
              "Figures: figure4_inpainting.png (the paper's Figure 4 layout, one row per coverage bin), "
              "free_form_masks.png, training_curves.png; sample grids during training in runs/*/samples/."]
    write_summary(out, summary, lines)
    print(f"\nwrote {out}/: metrics.json, summary.md, figure4_inpainting.png, free_form_masks.png, training_curves.png "
          f"({time.perf_counter() - started:.0f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
