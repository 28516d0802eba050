"""carafe-engine: configs, checkpoints, progress lines, and a 2-process gloo launch."""

from __future__ import annotations

import io
import json

import pytest
import torch

from carafe_engine import (CheckpointError, ConfigError, ProgressLogger, all_reduce_mean, all_reduce_sum, get_rank,
                           get_world_size,
                           last_checkpoint, launch, load_checkpoint, load_config, save_and_point, save_checkpoint)
from carafe_engine.cli import default_argument_parser

DEFAULTS = {"MODEL": {"UPSAMPLER": "nearest", "WIDTH": 32, "PLACES": ["ppm", "fpn"]},
            "SOLVER": {"LR": 0.02, "AMP": False}, "OUTPUT_DIR": "out"}


def test_config_base_file_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("MODEL:\n  WIDTH: 64\nSOLVER:\n  LR: 0.1\n")
    (tmp_path / "child.yaml").write_text("_BASE_: base.yaml\nMODEL:\n  UPSAMPLER: carafe\n")
    cfg = load_config(DEFAULTS, tmp_path / "child.yaml", ["SOLVER.LR", "1", "MODEL.PLACES", "[fusion]"])
    assert cfg.MODEL.UPSAMPLER == "carafe" and cfg.MODEL.WIDTH == 64
    assert cfg.SOLVER.LR == 1.0 and isinstance(cfg.SOLVER.LR, float)
    assert cfg.MODEL.PLACES == ["fusion"] and cfg.OUTPUT_DIR == "out"
    assert DEFAULTS["MODEL"]["WIDTH"] == 32  # defaults untouched
    assert "UPSAMPLER: carafe" in cfg.dump()


@pytest.mark.parametrize(
    "text, opts, words",
    [
        ("MODEL:\n  UPSAMPLR: carafe\n", [], "unknown config key 'MODEL.UPSAMPLR'"),
        ("", ["SOLVER.MOMENTUM", "0.9"], "unknown config key 'SOLVER.MOMENTUM'"),
        ("", ["SOLVER.AMP", "yes please"], "'SOLVER.AMP' must be true or false"),
        ("", ["MODEL.WIDTH", "wide"], "'MODEL.WIDTH' must be int"),
        ("", ["SOLVER.LR"], "KEY VALUE pairs"),
        ("MODEL: [1, 2]\n", [], "'MODEL' is a section"),
        ("- a list\n", [], "must hold a mapping"),
        ("MODEL: {WIDTH: [unclosed\n", [], "not valid YAML"),
    ],
)
def test_config_errors_name_the_key(tmp_path, text, opts, words):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("(", r"\(")):
        load_config(DEFAULTS, path, opts)


def test_config_missing_file_and_base_cycle(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(DEFAULTS, tmp_path / "nope.yaml")
    (tmp_path / "a.yaml").write_text("_BASE_: b.yaml\n")
    (tmp_path / "b.yaml").write_text("_BASE_: a.yaml\n")
    with pytest.raises(ConfigError, match="_BASE_ cycle"):
        load_config(DEFAULTS, tmp_path / "a.yaml")


def test_checkpoints_are_atomic_and_checked(tmp_path):
    state = {"kind": "carafe-seg", "model": {"w": torch.ones(3)}, "iteration": 7}
    save_and_point(tmp_path, "model_0000007.pt", state)
    assert last_checkpoint(tmp_path) == tmp_path / "model_0000007.pt"
    assert not list(tmp_path.glob(".*.tmp"))
    loaded = load_checkpoint(last_checkpoint(tmp_path), kind="carafe-seg")
    assert loaded["iteration"] == 7 and torch.equal(loaded["model"]["w"], torch.ones(3))
    with pytest.raises(CheckpointError, match="checkpoint of 'carafe-seg', expected 'carafe-inpaint'"):
        load_checkpoint(tmp_path / "model_0000007.pt", kind="carafe-inpaint")
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="broken.pt is not a readable checkpoint"):
        load_checkpoint(tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")
    assert last_checkpoint(tmp_path / "empty") is None
    save_checkpoint(tmp_path / "plain.pt", {"x": 1})
    assert load_checkpoint(tmp_path / "plain.pt") == {"x": 1}


def test_progress_prints_eta_and_writes_metrics(tmp_path):
    stream = io.StringIO()
    progress = ProgressLogger(total_iters=10, every=5, output_dir=tmp_path, prefix="seg", stream=stream)
    for it in range(10):
        progress.step(it, loss=float(it), lr=0.1)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("[seg] iter 5/10  loss 2  lr 0.1") and "ETA" in lines[0]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records] == [5, 10] and records[1]["loss"] == 7.0


def _average_ranks(path):
    value = all_reduce_mean(torch.tensor([float(get_rank())]))
    total = all_reduce_sum(torch.tensor([float(get_rank() + 1)]))
    if get_rank() == 0:
        path.write_text(f"{get_world_size()} {value.item()} {total.item()}")


def test_launch_two_cpu_processes(tmp_path):
    out = tmp_path / "result.txt"
    launch(_average_ranks, num_gpus_per_machine=2, args=(out,))
    assert out.read_text() == "2 0.5 3.0"


def test_argument_parser_conventions():
    args = default_argument_parser("x").parse_args(
        ["--config-file", "a.yaml", "--num-gpus", "2", "--resume", "SOLVER.LR", "0.1"])
    assert args.config_file == "a.yaml" and args.num_gpus == 2 and args.resume and args.opts == ["SOLVER.LR", "0.1"]


def test_time_steps_counts_the_measured_steps():
    from carafe_engine import time_steps

    calls = []
    result = time_steps(lambda i: calls.append(i) or i * 2, "cpu", warmup=2, steps=3)
    assert calls == [0, 1, 2, 3, 4] and len(result["step_times_s"]) == 3 and result["last"] == 8
    assert result["median_step_s"] >= 0 and result["peak_memory_gib"] is None


def test_load_pretrained_checks_file_keys_and_shapes(tmp_path):
    from carafe_engine import load_pretrained

    source = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": {**source.state_dict(), "fc.weight": torch.ones(2)}}, path)
    target = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    load_pretrained(target, path, what="MODEL.WEIGHTS")
    assert torch.equal(target[0].weight, source[0].weight)
    with pytest.raises(CheckpointError, match="MODEL.WEIGHTS: .*weights.pth does not fit a Sequential: lacks 2"):
        load_pretrained(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 4, 1)),
                        path, "MODEL.WEIGHTS")
    with pytest.raises(CheckpointError, match="has tensors of other shapes: 0.weight"):
        load_pretrained(torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3), torch.nn.BatchNorm2d(4)), path)
    with pytest.raises(CheckpointError, match="file not found"):
        load_pretrained(target, tmp_path / "nope.pth")
    # every tensor of the file is used (here the second conv would be dropped) and a DataParallel's names load
    bigger = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 4, 1))
    torch.save(bigger.state_dict(), path)
    with pytest.raises(CheckpointError, match="has 2 tensors it does not use \\(first: 2.bias, 2.weight\\)"):
        load_pretrained(target, path)
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, path)
    fresh = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    load_pretrained(fresh, path)
    assert torch.equal(fresh[0].weight, source[0].weight)
    # BatchNorm's num_batches_tracked is not needed by a FrozenBatchNorm2d, which has none
    from torchvision.ops import FrozenBatchNorm2d
    frozen = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), FrozenBatchNorm2d(4))
    load_pretrained(frozen, path)
    assert torch.equal(frozen[0].weight, source[0].weight)


def test_resume_finds_the_newest_checkpoint_when_the_named_one_is_gone(tmp_path):
    from carafe_engine import CheckpointError, find_resume_checkpoint, save_and_point

    assert find_resume_checkpoint(tmp_path) is None  # nothing there: a fresh start
    for name in ("model_0000002.pth", "model_0000004.pth"):
        save_and_point(tmp_path, name, {"iteration": int(name[6:13])})
    assert find_resume_checkpoint(tmp_path) == tmp_path / "model_0000004.pth"
    (tmp_path / "model_0000004.pth").unlink()
    notes = []
    assert find_resume_checkpoint(tmp_path, log=notes.append) == tmp_path / "model_0000002.pth"
    assert "model_0000004.pth, which is missing" in notes[0]
    (tmp_path / "model_0000002.pth").unlink()
    with pytest.raises(CheckpointError, match="names model_0000004.pth, which is missing.*holds no other checkpoint"):
        find_resume_checkpoint(tmp_path)


def test_training_refuses_to_overwrite_another_runs_checkpoints(tmp_path):
    from carafe_engine import CheckpointError, check_training_output_dir, save_and_point

    check_training_output_dir(tmp_path / "new", resume=False)  # a new folder is fine
    save_and_point(tmp_path, "model_0000004.pth", {})
    with pytest.raises(CheckpointError, match=rf"{tmp_path} holds the checkpoints .*model_0000004.pth.*--resume"):
        check_training_output_dir(tmp_path, resume=False)
    check_training_output_dir(tmp_path, resume=True)


def test_output_files_get_the_folders_file_mode(tmp_path):
    from carafe_engine import save_and_point
    from carafe_engine.progress import append_metrics, truncate_metrics, write_json_atomic

    save_and_point(tmp_path, "model_final.pth", {})
    write_json_atomic(tmp_path / "eval.json", {"iteration": 1})
    append_metrics(tmp_path, {"iteration": 1})
    append_metrics(tmp_path, {"iteration": 2})
    truncate_metrics(tmp_path, 1)  # rewritten on resume
    other = tmp_path / "log.txt"
    other.write_text("")
    for name in ("model_final.pth", "last_checkpoint", "eval.json", "metrics.jsonl"):
        assert (tmp_path / name).stat().st_mode & 0o777 == other.stat().st_mode & 0o777, name


def test_metrics_after_the_resumed_iteration_are_dropped(tmp_path):
    import json

    from carafe_engine import append_metrics, truncate_metrics

    for iteration in (2, 4, 6):
        append_metrics(tmp_path, {"iteration": iteration, "loss": 1.0})
    truncate_metrics(tmp_path, 4)
    assert [json.loads(l)["iteration"] for l in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [2, 4]


def test_checkpoint_labels_tell_checkpoints_apart(tmp_path):
    from carafe_engine import checkpoint_labels

    assert checkpoint_labels(["out/a/model_final.pth", "out/b/model_final.pth"]) == ["a", "b"]
    assert checkpoint_labels(["run/model_0000050.pth", "run/model_final.pth"]) == ["run/model_0000050",
                                                                                  "run/model_final"]
    assert checkpoint_labels(["x/run/model_final.pth", "y/run/model_final.pth"]) == ["x/run/model_final",
                                                                                    "y/run/model_final"]
    twice = checkpoint_labels(["run/m.pth", "run/m.pth"])
    assert len(set(twice)) == 2 and all(label.endswith(("(1)", "(2)")) for label in twice)


def test_select_device_names_the_key_it_came_from():
    from carafe_engine import ConfigError, select_device

    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert select_device(None) == select_device("auto")
    with pytest.raises(ConfigError, match="DEVICE must be auto, cpu, cuda or cuda:N; got 'tpu'"):
        select_device("tpu", "DEVICE")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="MODEL.DEVICE is 'cuda' but this machine has no CUDA GPU"):
            select_device("cuda")


def test_training_curves_are_drawn_from_each_runs_metrics(tmp_path):
    from PIL import Image

    from carafe_engine import append_metrics, plot_training_curves, read_metrics

    runs = {}
    for name, scale in (("baseline", 1.0), ("carafe", 0.5)):
        runs[name] = tmp_path / name
        for iteration in (10, 20, 30):
            append_metrics(runs[name], {"iteration": iteration, "loss": scale / iteration})
        append_metrics(runs[name], {"iteration": 30, "psnr": 20 + scale})
    assert [r["iteration"] for r in read_metrics(runs["carafe"])] == [10, 20, 30, 30]
    path = tmp_path / "curves.png"
    plot_training_curves(runs, path, [("loss", "loss"), ("psnr", "PSNR (dB)")], title="two runs", log_scale=True)
    with Image.open(path) as image:
        assert image.width > 2 * image.height > 0  # two panels side by side


def test_load_model_state_refuses_another_model_naming_its_settings(tmp_path):
    from carafe_engine import load_model_state

    small, wide = torch.nn.Linear(2, 3), torch.nn.Linear(2, 4)
    state = {"model": small.state_dict(), "config": {"MODEL": {"WIDTH": 3, "KIND": "small"}}}
    copy = torch.nn.Linear(2, 3)
    load_model_state(copy, state, "small.pth")
    assert torch.equal(copy.weight, small.weight)
    with pytest.raises(CheckpointError, match=r"small.pth holds weights of another model \(MODEL.WIDTH 3, MODEL.KIND "
                                              r"'small'\): missing \[\], unexpected \[\], wrong shape \['weight', 'bias'\]"):
        load_model_state(wide, state, "small.pth", described=("MODEL.WIDTH", "MODEL.KIND"))
    with pytest.raises(CheckpointError, match=r"small.pth holds no 'generator' weights"):
        load_model_state(wide, state, "small.pth", "generator")
