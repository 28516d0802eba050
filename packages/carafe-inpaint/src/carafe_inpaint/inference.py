"""Inpainting with trained generators: load a carafe-inpaint checkpoint's generator, prepare an image and its mask
(a mask file or a seeded free-form mask; optionally the central evaluation view), complete it, and complete many
images with several checkpoints into the paper's Figure 4 layout (carafe-inpaint-predict)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from carafe_engine import ConfigError, list_images, load_checkpoint, load_model_state, progress_bar

from .config import KIND, VARIANT_LABELS, config_from_checkpoint
from .data.images import read_image, read_mask, to_tensor, validation_view, write_image, write_mask
from .data.masks import seeded_mask
from .engine import MODEL_KEYS
from .evaluation import image_metrics
from .modeling import GLGenerator, complete
from .visualization import comparison_figure, masked_view


def load_generator(path: str | Path, device: torch.device) -> tuple[GLGenerator, str]:
    """The generator of a carafe-inpaint checkpoint, in eval mode, and a label for its variant."""
    state = load_checkpoint(path, map_location=device, kind=KIND)
    model = config_from_checkpoint(state, str(path)).MODEL
    generator = GLGenerator(model.UPSAMPLER, model.CONV, model.WIDTH, model.CARAFE)
    load_model_state(generator, state, path, "generator", MODEL_KEYS)
    return generator.to(device).eval(), VARIANT_LABELS[(model.UPSAMPLER, model.CONV)]


def prepare(image_path: str, mask_path: str | None, index: int, seed: int, size: int | None):
    """(image (3, H, W) in [-1, 1], mask (1, H, W)) as the generator will complete them."""
    image = read_image(image_path)
    mask = read_mask(mask_path, image.shape[:2]) if mask_path else None
    if size is not None:
        image = validation_view(image, size)
        if mask is not None:  # resized by nearest neighbour
            mask = validation_view(mask.astype(np.uint8), size, Image.NEAREST).astype(np.float32)
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
    return [label if labels.count(label) == 1 else f"{label}{labels[:i + 1].count(label)}"
            for i, label in enumerate(labels)]


def predict(weights: list[Path], inputs: list[Path], output: Path, device: torch.device, masks: list[Path] | None = None,
            mask_seed: int = 0, size: int | None = None, titles: list[str] | None = None, limit: int = 0) -> dict:
    """Completes every image of inputs (files or folders; the first `limit`, 0: all) with each checkpoint; writes
    the files and the figure carafe-inpaint-predict describes into output and returns predictions.json's data."""
    images = list_images(inputs)
    if masks and len(masks) != len(images):
        raise ConfigError(f"--mask: {len(masks)} masks for {len(images)} images; give one mask per image or none")
    images, masks = images[:limit or None], masks[:limit or None] if masks else None
    generators, default_titles = zip(*(load_generator(path, device) for path in weights))
    labels = unique_labels(list(titles or default_titles))
    output.mkdir(parents=True, exist_ok=True)
    # every image and mask read before the progress bar starts: a bad file is one line on stderr, no bar before it
    pairs = [prepare(path, masks[index] if masks else None, index, mask_seed, size) for index, path in enumerate(images)]
    outputs, report = {label: [] for label in labels}, []
    stems = unique_labels([Path(p).stem for p in images])  # two images named alike must not overwrite each other
    for index, (image_path, stem, (image, mask)) in enumerate(progress_bar(list(zip(images, stems, pairs)),
                                                                            "inpainting")):
        write_image(output / f"{stem}_masked.png", masked_view(image, mask))
        write_mask(output / f"{stem}_mask.png", mask[0].numpy())
        entry = {"image": str(image_path), "mask": str(masks[index]) if masks else f"free-form, seed {mask_seed}, "
                 f"index {index}", "hole_fraction": float(mask.mean()), "completions": {}}
        for label, generator in zip(labels, generators):
            completed = inpaint(generator, image, mask)
            write_image(output / f"{stem}_{label}.png", completed)
            outputs[label].append(completed)
            metrics = image_metrics(completed[None], image[None], mask[None])
            entry["completions"][label] = {name: float(value[0]) for name, value in metrics.items()}
        report.append(entry)
    comparison_figure([i for i, _ in pairs], [m for _, m in pairs], outputs, output / "comparison.png",
                      scores={label: [e["completions"][label]["psnr"] for e in report] for label in labels},
                      row_labels=[f"{100 * e['hole_fraction']:.0f}% hole" for e in report])
    result = {"checkpoints": dict(zip(labels, map(str, weights))), "images": report}
    (output / "predictions.json").write_text(json.dumps(result, indent=2))
    return result
