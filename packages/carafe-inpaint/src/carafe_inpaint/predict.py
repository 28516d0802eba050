"""carafe-inpaint-predict: completes images with trained generators.

    carafe-inpaint-predict --checkpoint out/carafe/model_final.pth --image photo.jpg --mask hole.png --output pred/
    carafe-inpaint-predict --checkpoint base.pth carafe.pth --labels baseline CARAFE \\
        --image a.jpg b.jpg --mask-seed 0 --size 256 --output figure/

Masks are PNGs of the image's size with 255 (or 1) in the hole and 0 elsewhere; without --mask, free-form masks
(Yu et al.) are generated from --mask-seed. --size S first resizes each image's shorter side to S and takes the
central S x S crop (the evaluation view; a given mask is resized by nearest neighbour and cropped the same way);
without it images are completed at their own size (padded to a multiple of 4 and cropped back).

Writes into --output, for each image STEM: STEM_masked.png (the input, hole in white), STEM_mask.png,
STEM_<label>.png per checkpoint (the completed image y = (1 - M) x + M ŷ), and comparison.png: the paper's
Figure 4 layout (masked input | one column per checkpoint | original), plus predictions.json with each
completion's PSNR, SSIM and L1 against the image.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from carafe_engine import CheckpointError, load_checkpoint

from .config import DEFAULTS, KIND
from .figures import comparison_figure, masked_view
from .images import (ImageReadError, center_crop, read_image, read_mask, to_tensor, validation_view, write_image,
                     write_mask)
from .masks import seeded_mask
from .metrics import image_metrics
from .models import GLGenerator, complete
from .engine import load_generator_state

VARIANT_LABELS = {("deconv", "standard"): "baseline", ("carafe", "standard"): "CARAFE",
                  ("deconv", "partial"): "PartialConv", ("carafe", "partial"): "PartialConv+CARAFE"}


def load_generator(path: str | Path, device: torch.device) -> tuple[GLGenerator, str]:
    """The generator of a carafe-inpaint checkpoint, in eval mode, and a label for its variant."""
    state = load_checkpoint(path, map_location=device, kind=KIND)
    model = {**DEFAULTS["MODEL"], **state.get("config", {}).get("MODEL", {})}
    carafe = {**DEFAULTS["MODEL"]["CARAFE"], **model.get("CARAFE", {})}
    generator = GLGenerator(model["UPSAMPLER"], model["CONV"], model["WIDTH"], carafe)
    load_generator_state(generator, state, path)
    return generator.to(device).eval(), VARIANT_LABELS[(model["UPSAMPLER"], model["CONV"])]


def mask_view(mask: np.ndarray, size: int) -> np.ndarray:
    """validation_view for a mask: nearest-neighbour resize of the shorter side, central crop."""
    h, w = mask.shape
    scale = size / min(h, w)
    resized = Image.fromarray((mask * 255).astype(np.uint8)).resize(
        (max(size, round(w * scale)), max(size, round(h * scale))), Image.NEAREST)
    return (center_crop(np.asarray(resized), size) > 127).astype(np.float32)


def prepare(image_path: str, mask_path: str | None, index: int, seed: int, size: int | None):
    """(image (3, H, W) in [-1, 1], mask (1, H, W)) as the generator will complete them."""
    image = read_image(image_path)
    mask = read_mask(mask_path, image.shape[:2]) if mask_path else None
    if size is not None:
        image = validation_view(image, size)
        mask = mask_view(mask, size) if mask is not None else None
    if mask is None:
        mask = seeded_mask(image.shape[0], image.shape[1], seed, index)
    return to_tensor(image), torch.from_numpy(mask)[None]


@torch.no_grad()
def inpaint(generator: GLGenerator, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The completed image (3, H, W) for any H, W: padded (reflection) to multiples of 4, cropped back."""
    h, w = image.shape[1:]
    pad = (0, -w % 4, 0, -h % 4)
    device = next(generator.parameters()).device
    x = F.pad(image[None].to(device), pad, mode="reflect" if min(h, w) > 4 else "replicate")
    m = F.pad(mask[None].to(device), pad)
    prediction = generator(x, m)[..., :h, :w]
    return complete(prediction, image[None].to(device), mask[None].to(device))[0].cpu()


def unique_labels(labels: list[str]) -> list[str]:
    """Numbers the names that occur more than once: [a, b, a] -> [a1, b, a2]."""
    seen: dict[str, int] = {}
    result = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        result.append(label if labels.count(label) == 1 else f"{label}{seen[label]}")
    return result


def predict(checkpoints: list[str], images: list[str], output: Path, masks: list[str] | None = None,
            mask_seed: int = 0, size: int | None = None, labels: list[str] | None = None,
            device: str = "auto") -> dict:
    if masks and len(masks) != len(images):
        raise ValueError(f"--mask: {len(masks)} masks for {len(images)} images; give one mask per image or none")
    if labels and len(labels) != len(checkpoints):
        raise ValueError(f"--labels: {len(labels)} labels for {len(checkpoints)} checkpoints")
    if size is not None and (size < 4 or size % 4):
        raise ValueError(f"--size must be a positive multiple of 4, got {size}")
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    generators, default_labels = zip(*(load_generator(path, dev) for path in checkpoints))
    labels = unique_labels(list(labels or default_labels))
    output.mkdir(parents=True, exist_ok=True)
    inputs, outputs, report = [], {label: [] for label in labels}, []
    stems = unique_labels([Path(p).stem for p in images])  # two images named alike must not overwrite each other
    for index, (image_path, stem) in enumerate(zip(images, stems)):
        image, mask = prepare(image_path, masks[index] if masks else None, index, mask_seed, size)
        write_image(output / f"{stem}_masked.png", masked_view(image, mask))
        write_mask(output / f"{stem}_mask.png", mask[0].numpy())
        entry = {"image": str(image_path), "mask": masks[index] if masks else f"free-form, seed {mask_seed}, "
                 f"index {index}", "hole_fraction": float(mask.mean()), "completions": {}}
        for label, generator in zip(labels, generators):
            completed = inpaint(generator, image, mask)
            write_image(output / f"{stem}_{label}.png", completed)
            outputs[label].append(completed)
            metrics = image_metrics(completed[None], image[None], mask[None])
            entry["completions"][label] = {name: float(value[0]) for name, value in metrics.items()}
        inputs.append((image, mask))
        report.append(entry)
    comparison_figure([i for i, _ in inputs], [m for _, m in inputs], outputs, output / "comparison.png",
                      scores={label: [e["completions"][label]["psnr"] for e in report] for label in labels})
    result = {"checkpoints": dict(zip(labels, map(str, checkpoints))), "images": report}
    (output / "predictions.json").write_text(json.dumps(result, indent=2))
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="carafe-inpaint-predict", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", nargs="+", required=True, help="one or more carafe-inpaint checkpoints")
    parser.add_argument("--image", nargs="+", required=True, help="images to complete")
    parser.add_argument("--mask", nargs="+", default=None, help="one binary mask PNG per image (255 = hole)")
    parser.add_argument("--mask-seed", type=int, default=0, help="seed of the generated masks (without --mask)")
    parser.add_argument("--size", type=int, default=None, help="complete the central SxS view (a multiple of 4)")
    parser.add_argument("--labels", nargs="+", default=None, help="column names, one per checkpoint")
    parser.add_argument("--output", type=Path, required=True, help="output folder")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    args = parser.parse_args(argv)
    try:
        result = predict(args.checkpoint, args.image, args.output, args.mask, args.mask_seed, args.size, args.labels,
                         args.device)
    except (ImageReadError, CheckpointError, ValueError) as error:
        parser.exit(2, f"carafe-inpaint-predict: error: {error}\n")
    for entry in result["images"]:
        scores = "  ".join(f"{label} {m['psnr']:.2f} dB" for label, m in entry["completions"].items())
        print(f"{entry['image']} (hole {100 * entry['hole_fraction']:.1f}%): {scores}")
    print(f"wrote {args.output}/ (comparison.png, predictions.json, completed images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
