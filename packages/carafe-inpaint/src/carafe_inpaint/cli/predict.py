"""carafe-inpaint-predict: completes images with trained generators.

    carafe-inpaint-predict --weights out/carafe/model_final.pth --input photo.jpg --mask hole.png --output pred/
    carafe-inpaint-predict --weights base.pth carafe.pth --titles baseline CARAFE \\
        --input a.jpg b.jpg --mask-seed 0 --size 256 --output figure/

--input takes images and folders of images (searched recursively, sorted). Masks are PNGs of the image's size with
255 (or 1) in the hole and 0 elsewhere, one per image; without --mask, free-form masks (Yu et al.) are generated
from --mask-seed. --size S first resizes each image's shorter side to S and takes the central S x S crop (the
evaluation view; a given mask is resized by nearest neighbour and cropped the same way); without it images are
completed at their own size (padded to a multiple of 4 and cropped back).

Writes into --output, for each image STEM: STEM_masked.png (the input, hole in white), STEM_mask.png,
STEM_<title>.png per checkpoint (the completed image y = (1 - M) x + M ŷ), and comparison.png: the paper's
Figure 4 layout (masked input | one column per checkpoint | original), plus predictions.json with each
completion's PSNR, SSIM and L1 against the image.
"""

from __future__ import annotations

from pathlib import Path

from carafe_engine import predict_argument_parser, report_user_errors, select_device

from ..inference import predict


def main(argv=None) -> int:
    parser = predict_argument_parser("carafe-inpaint-predict", __doc__)
    parser.add_argument("--mask", nargs="+", type=Path, default=None, help="one binary mask PNG per image (255 = hole)")
    parser.add_argument("--mask-seed", type=int, default=0, help="seed of the generated masks (without --mask)")
    parser.add_argument("--size", type=int, default=None, help="complete the central SxS view (a multiple of 4)")
    args = parser.parse_args(argv)
    if args.size is not None and (args.size < 4 or args.size % 4):
        parser.error(f"--size must be a positive multiple of 4, got {args.size}")
    return report_user_errors("carafe-inpaint-predict", lambda: run(args))


def run(args) -> None:
    result = predict(args.weights, args.input, args.output, select_device(args.device, "--device"), args.mask,
                     args.mask_seed, args.size, args.titles, args.limit)
    for entry in result["images"]:
        scores = "  ".join(f"{title} {m['psnr']:.2f} dB" for title, m in entry["completions"].items())
        print(f"{entry['image']} (hole {100 * entry['hole_fraction']:.1f}%): {scores}")
    print(f"wrote {args.output}/ (comparison.png, predictions.json, completed images)")


if __name__ == "__main__":
    raise SystemExit(main())
