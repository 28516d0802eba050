"""carafe_engine.config: fvcore CfgNode trees, _BASE_ files, overrides, choices and their one-line errors."""

from __future__ import annotations

import copy
import pickle

import pytest
from fvcore.common.config import CfgNode as FvcoreCfgNode

from carafe_engine import (CfgNode, ConfigError, config_from_checkpoint, get_cfg, load_config, resolve_config_file,
                           set_choices)

UPSAMPLERS = ("nearest", "deconv", "pixel_shuffle", "carafe")


def task_cfg() -> CfgNode:
    """The base tree with a task's keys, the way an add_<task>_config adds them."""
    cfg = get_cfg()
    cfg.MODEL.FPN = CfgNode()
    cfg.MODEL.FPN.UPSAMPLE = "nearest"
    cfg.MODEL.FPN.DIM = 256
    cfg.MODEL.FPN.PLACES = ["top_down"]
    cfg.MODEL.FPN.EXTRA = None
    set_choices(cfg, "MODEL.FPN.UPSAMPLE", UPSAMPLERS)
    set_choices(cfg, "MODEL.FPN.PLACES", ("top_down", "lateral"))
    return cfg


def write(path, text):
    path.write_text(text)
    return path


def test_base_tree_holds_what_every_task_shares():
    cfg = get_cfg()
    assert isinstance(cfg, FvcoreCfgNode)
    assert (cfg.MODEL.DEVICE, cfg.MODEL.WEIGHTS, cfg.OUTPUT_DIR) == ("auto", "", "output")
    assert dict(cfg.MODEL.CARAFE) == {"SCALE_FACTOR": 2, "UP_KERNEL": 5, "UP_GROUP": 1, "ENCODER_KERNEL": 3,
                                      "ENCODER_DILATION": 1, "COMPRESSED_CHANNELS": 64}
    for key in ("IMS_PER_BATCH", "BASE_LR", "MOMENTUM", "WEIGHT_DECAY", "MAX_ITER", "CHECKPOINT_PERIOD", "LOG_PERIOD"):
        assert key in cfg.SOLVER
    assert cfg.DATALOADER.ASPECT_RATIO_GROUPING is False and "NUM_WORKERS" in cfg.DATALOADER
    assert "EVAL_PERIOD" in cfg.TEST and "SEED" in cfg


def test_get_cfg_returns_independent_trees():
    first, second = get_cfg(), get_cfg()
    first.SOLVER.BASE_LR = 0.5
    first.MODEL.CARAFE.UP_KERNEL = 3
    first.MODEL.NEW = CfgNode({"X": 1})
    assert second.SOLVER.BASE_LR == 0.02 and second.MODEL.CARAFE.UP_KERNEL == 5 and "NEW" not in second.MODEL
    assert get_cfg() == second and first.MODEL.CARAFE is not second.MODEL.CARAFE


def test_base_chain_file_and_overrides(tmp_path):
    (tmp_path / "configs").mkdir()
    write(tmp_path / "Base.yaml", "SOLVER:\n  BASE_LR: 0.1\n  MAX_ITER: 100\nMODEL:\n  FPN:\n    DIM: 128\n")
    write(tmp_path / "configs" / "mid.yaml", "_BASE_: ../Base.yaml\nSOLVER:\n  MAX_ITER: 200\n")
    child = write(tmp_path / "configs" / "child.yaml",
                  "_BASE_: mid.yaml\nMODEL:\n  FPN:\n    UPSAMPLE: carafe\nSOLVER:\n  WEIGHT_DECAY: 1e-4\n")
    defaults = task_cfg()
    cfg = load_config(defaults, child, ["SOLVER.BASE_LR", "1", "MODEL.FPN.PLACES", "[lateral, top_down]",
                                        "MODEL.FPN.EXTRA", "[1, 2]", "SOLVER.AMP", "true"])
    assert isinstance(cfg, CfgNode) and not cfg.is_frozen()
    assert cfg.MODEL.FPN.UPSAMPLE == "carafe" and cfg.MODEL.FPN.DIM == 128 and cfg.SOLVER.MAX_ITER == 200
    assert cfg.SOLVER.BASE_LR == 1.0 and isinstance(cfg.SOLVER.BASE_LR, float)  # an int where a float is wanted
    assert cfg.SOLVER.WEIGHT_DECAY == 0.0001 and isinstance(cfg.SOLVER.WEIGHT_DECAY, float)  # YAML reads 1e-4 as text
    assert cfg.MODEL.FPN.PLACES == ["lateral", "top_down"] and cfg.SOLVER.AMP is True
    assert cfg.MODEL.FPN.EXTRA == [1, 2]  # a None default takes any plain value
    assert defaults.MODEL.FPN.UPSAMPLE == "nearest" and defaults.SOLVER.BASE_LR == 0.02  # the argument untouched
    assert CfgNode.load_yaml_with_base(str(child))["SOLVER"] == {"BASE_LR": 0.1, "MAX_ITER": 200,
                                                                 "WEIGHT_DECAY": "1e-4"}


def test_a_base_list_and_a_shared_base_are_no_cycle(tmp_path):
    write(tmp_path / "common.yaml", "SEED: 3\n")
    write(tmp_path / "a.yaml", "_BASE_: common.yaml\nSOLVER:\n  MAX_ITER: 10\n")
    write(tmp_path / "b.yaml", "_BASE_: common.yaml\nSOLVER:\n  CHECKPOINT_PERIOD: 5\n")
    child = write(tmp_path / "child.yaml", "_BASE_: [a.yaml, b.yaml]\n")
    cfg = load_config(get_cfg(), child)
    assert (cfg.SEED, cfg.SOLVER.MAX_ITER, cfg.SOLVER.CHECKPOINT_PERIOD) == (3, 10, 5)


def test_tuples_and_lists_are_interchangeable():
    defaults = {"INPUT": {"SIZES": (1, 2), "MEAN": [0.5, 0.5]}}
    cfg = load_config(defaults, None, ["INPUT.SIZES", "[3, 4, 5]", "INPUT.MEAN", "[0.1, 0.2]"])
    assert cfg.INPUT.SIZES == (3, 4, 5) and cfg.INPUT.MEAN == [0.1, 0.2]


@pytest.mark.parametrize("text, opts, message", [
    ("SOLVER:\n  BASE_RL: 0.1\n", [], "{file}: unknown config key 'SOLVER.BASE_RL' (did you mean SOLVER.BASE_LR?)"),
    ("", ["SOLVER.BASE_RL", "0.1"],
     "command-line override: unknown config key 'SOLVER.BASE_RL' (did you mean SOLVER.BASE_LR?)"),
    ("", ["EVAL_PERIOD", "10"], "unknown config key 'EVAL_PERIOD' (did you mean TEST.EVAL_PERIOD?)"),
    ("", ["solver.base_lr", "0.1"], "unknown config key 'solver.base_lr' (did you mean SOLVER.BASE_LR?)"),
    ("MODEL:\n  FPNN:\n    DIM: 1\n", [], "{file}: unknown config key 'MODEL.FPNN' (did you mean MODEL.FPN?)"),
    ("", ["SOLVER.ZZZZ", "1"], "unknown config key 'SOLVER.ZZZZ' (known keys under SOLVER: IMS_PER_BATCH, "),
    ("", ["SOLVER.BASE_LR.X", "1"], "command-line override: 'SOLVER.BASE_LR' is a value, not a section"),
    ("", ["SOLVER.BASE_LR", "fast"], "command-line override: 'SOLVER.BASE_LR' must be float, got 'fast'"),
    ("MODEL:\n  FPN:\n    DIM: wide\n", [], "{file}: 'MODEL.FPN.DIM' must be int, got 'wide'"),
    ("", ["MODEL.FPN.DIM", "true"], "'MODEL.FPN.DIM' must be int, got True"),
    ("", ["SOLVER.AMP", "1"], "'SOLVER.AMP' must be true or false, got 1"),
    ("", ["MODEL.FPN.PLACES", "lateral"], "'MODEL.FPN.PLACES' must be a list, got 'lateral'"),
    ("SOLVER: 3\n", [], "{file}: 'SOLVER' is a section; expected a mapping, got 3"),
    ("", ["SOLVER.BASE_LR"], "overrides come in KEY VALUE pairs; got an odd number"),
    ("", ["_BASE_", "other.yaml"], "the reserved key '_BASE_' can only be used at the top of a file"),
    ("- a list\n", [], "{file}: a config file must hold a mapping, got list"),
    ("MODEL: {FPN: [unclosed\n", [], "{file}: not valid YAML: "),
    ("_BASE_: 3\n", [], "{file}: _BASE_ must be a file name or a list of file names, got 3"),
    ("MODEL:\n  FPN:\n    UPSAMPLE: bilinear\n", [],
     "{file}: MODEL.FPN.UPSAMPLE 'bilinear' is not one of nearest, deconv, pixel_shuffle, carafe"),
    ("", ["MODEL.FPN.UPSAMPLE", "bilinear"],
     "command-line override: MODEL.FPN.UPSAMPLE 'bilinear' is not one of nearest, deconv, pixel_shuffle, carafe"),
    ("", ["MODEL.FPN.UPSAMPLE", "null"], "MODEL.FPN.UPSAMPLE None is not one of nearest"),
    ("", ["MODEL.FPN.PLACES", "[top_down, bottom_up]"], "MODEL.FPN.PLACES 'bottom_up' is not one of top_down, lateral"),
])
def test_errors_are_one_line_naming_where_and_the_key(tmp_path, text, opts, message):
    path = write(tmp_path / "cfg.yaml", text)
    with pytest.raises(ConfigError) as error:
        load_config(task_cfg(), path, opts)
    assert message.format(file=path) in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_file_and_base_cycle(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: .*nope.yaml"):
        load_config(get_cfg(), tmp_path / "nope.yaml")
    write(tmp_path / "child.yaml", "_BASE_: gone.yaml\n")
    with pytest.raises(ConfigError, match="config file not found: .*gone.yaml"):
        load_config(get_cfg(), tmp_path / "child.yaml")
    write(tmp_path / "a.yaml", "_BASE_: b.yaml\n")
    write(tmp_path / "b.yaml", "_BASE_: a.yaml\n")
    with pytest.raises(ConfigError, match=r"_BASE_ cycle: .*a.yaml -> .*b.yaml -> .*a.yaml"):
        load_config(get_cfg(), tmp_path / "a.yaml")


def test_the_file_that_set_a_bad_key_is_named(tmp_path):
    write(tmp_path / "base.yaml", "SOLVER:\n  LR: 0.1\n")
    child = write(tmp_path / "child.yaml", "_BASE_: base.yaml\n")
    with pytest.raises(ConfigError, match=r"base.yaml: unknown config key 'SOLVER.LR' \(did you mean"):
        load_config(get_cfg(), child)


def test_choices_survive_copies_and_check_merges(tmp_path):
    cfg = task_cfg()
    assert cfg.get_choices("MODEL.FPN.UPSAMPLE") == UPSAMPLERS and cfg.get_choices("SOLVER.BASE_LR") is None
    for copied in (cfg.clone(), copy.deepcopy(cfg), pickle.loads(pickle.dumps(cfg)), load_config(cfg)):
        assert copied.get_choices("MODEL.FPN.UPSAMPLE") == UPSAMPLERS
        with pytest.raises(ConfigError, match="MODEL.FPN.UPSAMPLE 'bilinear' is not one of"):
            copied.merge_from_list(["MODEL.FPN.UPSAMPLE", "bilinear"])
    with pytest.raises(ConfigError, match="merged config: MODEL.FPN.UPSAMPLE 'up' is not one of"):
        cfg.merge_from_other_cfg({"MODEL": {"FPN": {"UPSAMPLE": "up"}}})
    cfg.MODEL.FPN.UPSAMPLE = "deconv"  # assignment is the program's business, not checked
    with pytest.raises(ConfigError, match=r"set_choices \(the current value\): MODEL.FPN.DIM 256 is not one of 1, 2"):
        set_choices(cfg, "MODEL.FPN.DIM", (1, 2))
    with pytest.raises(ConfigError, match="unknown config key 'MODEL.FPN.UPSAMPLER' .did you mean"):
        set_choices(cfg, "MODEL.FPN.UPSAMPLER", UPSAMPLERS)
    with pytest.raises(ConfigError, match="MODEL.FPN is a section"):
        set_choices(cfg, "MODEL.FPN", UPSAMPLERS)


def test_renamed_and_deprecated_keys():
    cfg = get_cfg()
    cfg.register_renamed_key("SOLVER.LR", "SOLVER.BASE_LR")
    cfg.register_deprecated_key("SOLVER.OLD")
    with pytest.raises(ConfigError, match="command-line override: config key 'SOLVER.LR' was renamed to "
                                          "'SOLVER.BASE_LR'"):
        load_config(cfg, None, ["SOLVER.LR", "0.1"])
    assert load_config(cfg, None, ["SOLVER.OLD", "1"]) == get_cfg()


def test_to_dict_round_trips_through_pickle_and_dump(tmp_path):
    cfg = load_config(task_cfg(), None, ["MODEL.FPN.EXTRA", "[[1, 2]]", "SOLVER.BASE_LR", "0.005"])
    plain = cfg.to_dict()
    assert type(plain) is dict and type(plain["MODEL"]["FPN"]) is dict
    assert CfgNode.from_dict({"SIZES": (1, 2)}).to_dict() == {"SIZES": [1, 2]}  # YAML-safe: tuples become lists
    restored = pickle.loads(pickle.dumps(plain))
    assert restored == plain and CfgNode.from_dict(restored) == cfg
    path = write(tmp_path / "config.yaml", cfg.dump())
    assert cfg.dump().index("MODEL:") < cfg.dump().index("SOLVER:")  # the tree's order, not sorted
    assert load_config(task_cfg(), path) == cfg
    assert load_config(plain, path) == cfg  # a checkpoint's config as the defaults


def test_from_dict_refuses_values_a_config_cannot_hold(tmp_path):
    with pytest.raises(ConfigError, match="config: Key OUTPUT_DIR with value <class 'pathlib.*PosixPath'> is not a valid type"):
        CfgNode.from_dict({"OUTPUT_DIR": tmp_path})
    with pytest.raises(TypeError, match="takes a CfgNode or a mapping"):
        load_config(["SOLVER"])


def test_shipped_configs_are_found_by_name(tmp_path):
    (tmp_path / "sub").mkdir()
    shipped = write(tmp_path / "sub" / "tiny.yaml", "SEED: 1\n")
    assert resolve_config_file("sub/tiny.yaml", tmp_path) == shipped == resolve_config_file("sub/tiny", tmp_path)
    assert resolve_config_file(shipped, tmp_path / "elsewhere") == shipped  # a path as given
    with pytest.raises(ConfigError, match=r"config file not found: nope.yaml \(shipped configs: sub/tiny.yaml\)"):
        resolve_config_file("nope.yaml", tmp_path)


def test_config_from_checkpoint_keeps_new_keys_and_names_the_file():
    saved = load_config(task_cfg(), None, ["SOLVER.BASE_LR", "0.5"]).to_dict()
    del saved["MODEL"]["FPN"]["DIM"]  # a key added after the checkpoint was written
    cfg = config_from_checkpoint(task_cfg(), {"config": saved}, "old.pth")
    assert cfg.SOLVER.BASE_LR == 0.5 and cfg.MODEL.FPN.DIM == 256
    saved["MODEL"]["FPN"]["UPSAMPLE"] = "bilinear"
    with pytest.raises(ConfigError, match="old.pth: merged config: MODEL.FPN.UPSAMPLE 'bilinear' is not one of"):
        config_from_checkpoint(task_cfg(), {"config": saved}, "old.pth")
    with pytest.raises(ConfigError, match="x.pth: checkpoint has no 'config' entry"):
        config_from_checkpoint(task_cfg(), {}, "x.pth")


def test_a_value_yaml_reads_as_another_type_names_the_file_and_key(tmp_path):
    path = write(tmp_path / "cfg.yaml", "SEED: 2020-01-01\n")  # YAML reads a date
    with pytest.raises(ConfigError, match=r"cfg.yaml: Key SEED with value <class 'datetime.date'> is not a valid"):
        load_config(get_cfg(), path)


def test_check_values_names_the_first_key_that_fails():
    from carafe_engine import POSITIVE, check_values

    cfg = get_cfg()
    rules = {"SOLVER.IMS_PER_BATCH": POSITIVE, "MODEL.CARAFE.UP_KERNEL": (lambda v: v % 2 == 1, "odd")}
    assert check_values(cfg, rules) is cfg
    cfg.MODEL.CARAFE.UP_KERNEL = 4
    with pytest.raises(ConfigError, match="^MODEL.CARAFE.UP_KERNEL must be odd, got 4$"):
        check_values(cfg, rules)
    cfg.SOLVER.IMS_PER_BATCH = 0
    with pytest.raises(ConfigError, match="^SOLVER.IMS_PER_BATCH must be > 0, got 0$"):
        check_values(cfg, rules)
