"""CSAIL's layouts: its ImageNet ResNet-50 file loads strictly into the paper configs' backbone, and
carafe-seg-convert turns its trained UperNet-50 (encoder + decoder files) into a checkpoint whose class scores are
those of the official model with the same weights. The official layout is tests/csail_layout.py."""

from __future__ import annotations

import json
import re

import pytest
import torch
import torchvision
from csail_layout import UPerNet, Resnet, randomize

from carafe_seg.cli.convert import main as convert_main
from carafe_seg.config import load_seg_config
from carafe_seg.inference import load_predictor
from carafe_seg.modeling import BackboneWeightsError, DeepStemResNet, build_model


def paper_model(weights):
    return build_model(load_seg_config("upernet_r50_ade20k.yaml", ["MODEL.BACKBONE.WEIGHTS", str(weights)]))


def test_csail_imagenet_weights_load_strictly_into_the_paper_backbone(tmp_path):
    official = randomize(Resnet(with_fc=True), seed=1)
    path = tmp_path / "resnet50-imagenet.pth"
    torch.save(official.state_dict(), path)
    backbone = paper_model(path).backbone.eval()
    assert isinstance(backbone, DeepStemResNet)
    expected = {k: v for k, v in official.state_dict().items() if not k.startswith("fc.")}
    assert backbone.state_dict().keys() == expected.keys()
    assert all(torch.equal(backbone.state_dict()[k], v) for k, v in expected.items())
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        for ours, theirs in zip(backbone(x), official(x)):
            torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_backbone_weights_of_another_layout_are_named(tmp_path):
    state = Resnet(with_fc=True).state_dict()
    lacking = tmp_path / "lacking.pth"
    torch.save({k: v for k, v in state.items() if k != "layer4.2.bn3.weight"}, lacking)
    with pytest.raises(BackboneWeightsError, match="lacking.pth does not fit a DeepStemResNet: lacks 1 tensors "
                                                   r"\(first: layer4.2.bn3.weight\)"):
        paper_model(lacking)
    torchvision_file = tmp_path / "resnet50-0676ba61.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), torchvision_file)
    with pytest.raises(BackboneWeightsError, match=r"does not fit a DeepStemResNet: lacks 10 tensors .*; has tensors of other shapes: "
                                                   r"conv1.weight \(64, 3, 7, 7\) != \(64, 3, 3, 3\)"):
        paper_model(torchvision_file)
    # torchvision's ResNet-50 stays an option, with its own file
    model = build_model(load_seg_config("upernet_r50_ade20k.yaml", ["MODEL.BACKBONE.NAME", "torchvision_resnet50",
                                                                    "MODEL.BACKBONE.WEIGHTS", str(torchvision_file)]))
    assert model.backbone.stem[0].weight.shape == (64, 3, 7, 7)


@pytest.fixture(scope="module")
def csail_files(tmp_path_factory):
    """The official UperNet-50 with random weights, saved as CSAIL's train.py saves it."""
    folder = tmp_path_factory.mktemp("ade20k-resnet50-upernet")
    encoder, decoder = randomize(Resnet(), seed=2), randomize(UPerNet(), seed=3)
    torch.save(encoder.state_dict(), folder / "encoder_epoch_30.pth")
    torch.save(decoder.state_dict(), folder / "decoder_epoch_30.pth")
    return folder, encoder, decoder


def test_converted_upernet_gives_the_official_class_scores(csail_files, tmp_path, capsys):
    folder, encoder, decoder = csail_files
    output = tmp_path / "upernet50_csail.pth"
    assert convert_main(["--encoder", str(folder / "encoder_epoch_30.pth"), "--decoder",
                         str(folder / "decoder_epoch_30.pth"), "--output", str(output)]) == 0
    assert "--eval-only MODEL.WEIGHTS" in capsys.readouterr().out
    model, cfg = load_predictor(output, torch.device("cpu"))
    assert cfg.MODEL.BACKBONE.NAME == "csail_resnet50" and set(cfg.MODEL.UPSAMPLER.values()) == {"bilinear"}
    x = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        official = decoder(encoder(x), seg_size=(96, 64))
        ours = model.segment(x).softmax(1)
    assert official.shape == ours.shape == (2, 150, 96, 64)
    torch.testing.assert_close(ours, official, rtol=1e-4, atol=1e-6)
    assert torch.equal(ours.argmax(1), official.argmax(1))


def test_converted_checkpoint_evaluates_with_eval_only(csail_files, tmp_path):
    from carafe_seg.cli.train import main as train_main
    from carafe_seg.data.synthetic import make_synthetic_ade20k

    folder, _, _ = csail_files
    output = tmp_path / "upernet50_csail.pth"
    convert_main(["--encoder", str(folder / "encoder_epoch_30.pth"), "--decoder",
                  str(folder / "decoder_epoch_30.pth"), "--output", str(output)])
    make_synthetic_ade20k(tmp_path / "data", 1, 2, 0, 64, 96)
    assert train_main(["--config-file", "upernet_r50_ade20k.yaml", "--eval-only", "MODEL.WEIGHTS", str(output),
                       "DATASETS.ROOT", str(tmp_path / "data"), "MODEL.SYNC_BN", "False", "DATALOADER.NUM_WORKERS", "0",
                       "INPUT.TEST_SHORT_SIZE", "64", "OUTPUT_DIR", str(tmp_path / "eval")]) in (0, None)
    result = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert 0 <= result["mIoU"] <= 100


def test_convert_errors_are_one_line(csail_files, tmp_path, capsys):
    folder, _, decoder = csail_files
    encoder_file = str(folder / "encoder_epoch_30.pth")
    # a decoder whose fpn_out nests one level less than the official one (carafe-seg's former layout)
    flat = {k.replace("fpn_out.0.0.", "fpn_out.0."): v for k, v in decoder.state_dict().items()}
    torch.save(flat, tmp_path / "flat_decoder.pth")
    cases = [
        (["--decoder", str(tmp_path / "flat_decoder.pth")], "--decoder: .*flat_decoder.pth does not fit a "
                                                           "UPerNetDecoder: lacks 5 tensors"),
        (["--decoder", encoder_file], "--decoder: .* does not fit a UPerNetDecoder: lacks"),
        (["--decoder", str(folder / "decoder_epoch_30.pth"), "--config-file", "upernet_r50_ade20k_carafe.yaml"],
         "--config-file upernet_r50_ade20k_carafe.yaml: CSAIL's UperNet needs .* bilinear"),
    ]
    for flags, message in cases:
        status = convert_main(["--encoder", encoder_file, "--output", str(tmp_path / "out.pth"), *flags])
        err = capsys.readouterr().err
        assert status == 2 and len(err.strip().splitlines()) == 1, err
        assert re.search(f"carafe-seg-convert: error: {message}", err), err
    assert not (tmp_path / "out.pth").exists()
