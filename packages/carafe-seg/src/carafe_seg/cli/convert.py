"""carafe-seg-convert: CSAIL's published UperNet-50 (encoder_epoch_30.pth + decoder_epoch_30.pth of
ade20k-resnet50-upernet, downloaded by you from CSAILVision/semantic-segmentation-pytorch's model zoo) to a
carafe-seg checkpoint of the bilinear paper config, for --eval-only and carafe-seg-predict:

    carafe-seg-convert --encoder ade20k-resnet50-upernet/encoder_epoch_30.pth \\
        --decoder ade20k-resnet50-upernet/decoder_epoch_30.pth --output weights/upernet50_csail.pth
"""

from __future__ import annotations

from pathlib import Path

from carafe_engine import CommandLineParser, report_user_errors

from ..convert import PAPER_BASELINE_CONFIG, convert_csail_upernet


def main(argv=None) -> int:
    parser = CommandLineParser(prog="carafe-seg-convert", description=__doc__)
    parser.add_argument("--encoder", type=Path, required=True, help="CSAIL's encoder state dict (encoder_epoch_30.pth)")
    parser.add_argument("--decoder", type=Path, required=True, help="CSAIL's decoder state dict (decoder_epoch_30.pth)")
    parser.add_argument("--output", type=Path, required=True, help="the carafe-seg checkpoint to write")
    parser.add_argument("--config-file", default=PAPER_BASELINE_CONFIG, metavar="FILE",
                        help=f"the config stored with the weights (default: {PAPER_BASELINE_CONFIG})")
    parser.add_argument("opts", nargs="*", metavar="KEY VALUE", help="config overrides (e.g. INPUT.TEST_SHORT_SIZE 450)")
    args = parser.parse_args(argv)

    def convert():
        path = convert_csail_upernet(args.encoder, args.decoder, args.output, args.config_file, args.opts)
        print(f"wrote {path} (config {args.config_file}); evaluate it with carafe-seg-train --config-file "
              f"{args.config_file} --eval-only MODEL.WEIGHTS {path} DATASETS.ROOT ...")

    return report_user_errors("carafe-seg-convert", convert)


if __name__ == "__main__":
    raise SystemExit(main())
