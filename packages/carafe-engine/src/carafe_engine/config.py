"""YAML configs on fvcore's CfgNode (the config detectron2 is built on): `_BASE_` inheritance, `KEY VALUE`
command-line overrides, keys that take one of a fixed set of values, and one-line errors naming the key.

    cfg = get_cfg()                          # a fresh copy of the engine's base tree (below)
    add_seg_config(cfg)                      # a task's own keys, detectron2-style: cfg.MODEL.FPN = CfgNode() ...
    set_choices(cfg, "MODEL.FPN.UPSAMPLE", ("nearest", "deconv", "carafe"))
    cfg = load_config(cfg, "configs/upernet.yaml", ["SOLVER.BASE_LR", "0.01"])

A config file may only set keys the tree has; `_BASE_: other.yaml` (a path relative to the file, or a list of
them) is merged first. Overrides are dotted keys with YAML-parsed values (`SOLVER.BASE_LR 0.01
MODEL.FPN.UPSAMPLE carafe`). The merging and its type rules are yacs's (through fvcore's CfgNode: lists and tuples
are interchangeable, a None default takes any plain value, text such as `1e-4` is read as a Python literal), plus
one: an int is accepted where the default is a float. Every mistake is a ConfigError of one line naming the file
(or 'command-line override') and the key; an unknown key comes with the closest valid keys. Choices (set_choices)
are checked after each file and after the overrides; they are kept by clone(), deepcopy and pickle.

The engine's base tree, which every task shares (get_cfg()), is _BASE_TREE at the end of this file. MODEL.CARAFE
holds CARAFEPack's arguments under mmcv's names (carafe_ops.CARAFEPack(channels, scale_factor, up_kernel, up_group,
encoder_kernel, encoder_dilation, compressed_channels)), with the paper's defaults.
"""

from __future__ import annotations

import copy
import difflib
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import yaml
from fvcore.common.config import BASE_KEY
from fvcore.common.config import CfgNode as _FvcoreCfgNode

# where a node keeps the choices of its own keys ({leaf name: allowed values}); in the node's __dict__, so that
# clone(), deepcopy and pickle keep it, as they keep yacs's own state (frozen, renamed keys)
_CHOICES = "__choices__"
_RENAMED = re.compile(r"Key (\S+) was renamed to .*")


class ConfigError(ValueError):
    """A config file or override that does not fit the config tree (one line: where, the key, what is wrong)."""


class CfgNode(_FvcoreCfgNode):
    """fvcore's CfgNode whose merges raise one-line ConfigErrors and check choices, with to_dict() for checkpoints
    and spawned processes."""

    @classmethod
    def from_dict(cls, nested: Mapping, where: str = "config") -> "CfgNode":
        """A tree of nodes from nested mappings (leaves: str, int, float, bool, None, lists, tuples)."""
        try:
            return cls(copy.deepcopy(dict(nested)))
        except AssertionError as error:  # yacs: a leaf of another type
            raise ConfigError(f"{where}: {error}") from None

    def to_dict(self) -> dict:
        """Plain nested dicts and lists (tuples become lists): picklable, YAML-safe, for checkpoints and spawn."""
        return _plain(self)

    def dump(self, **kwargs) -> str:
        """The tree as YAML, keys in their order (sort_keys=False unless given)."""
        kwargs.setdefault("sort_keys", False)
        return yaml.safe_dump(self.to_dict(), **kwargs)

    def merge_from_file(self, cfg_filename: str | Path, allow_unsafe: bool = False) -> None:
        """Merges the file's _BASE_ chain (bases first), then the file; errors name the file that set the key."""
        for where, mapping in _yaml_chain(Path(cfg_filename), str(cfg_filename), allow_unsafe, ()):
            self._merge(mapping, where)

    def merge_from_list(self, cfg_list: Iterable) -> None:
        """KEY VALUE pairs; values given as text are parsed as YAML ('0.01', '[1, 2]', 'true', 'carafe')."""
        cfg_list = list(cfg_list)
        if len(cfg_list) % 2:
            raise ConfigError(f"overrides come in KEY VALUE pairs; got an odd number: {cfg_list}")
        for key, value in zip(cfg_list[::2], cfg_list[1::2]):
            try:
                nested = yaml.safe_load(value) if isinstance(value, str) else value
            except yaml.YAMLError:
                nested = value  # e.g. 'a: b: c', kept as text
            for part in reversed(str(key).split(".")):
                nested = {part: nested}
            self._merge(nested, "command-line override", str(key))

    def merge_from_other_cfg(self, cfg_other: Mapping) -> None:
        """Merges another tree (or nested mapping) under the same rules as a file."""
        self._merge(cfg_other, "merged config")

    def _merge(self, mapping: Mapping, where: str, override: str | None = None) -> None:
        """yacs's merge of mapping into this tree, its errors as ConfigErrors; then the choices are checked."""
        if BASE_KEY in mapping:
            raise ConfigError(f"{where}: the reserved key {BASE_KEY!r} can only be used at the top of a file")
        updates = CfgNode.from_dict(_floats_where_floats(mapping, self), where)  # its own ConfigError, not yacs's
        try:
            _FvcoreCfgNode.merge_from_other_cfg(self, updates)
        except KeyError as error:  # yacs: a key the tree does not have, or one registered as renamed
            renamed = _RENAMED.fullmatch(str(error.args[0]))
            key = renamed[1] if renamed else str(error.args[0]).rpartition(": ")[2]
            if override and (self.key_is_renamed(override) or not renamed):
                key = override  # the whole dotted key, not the first section yacs did not find
            if not self.key_is_renamed(key):
                raise _unknown_key(self, key, where) from None
            new = self.__dict__[CfgNode.RENAMED_KEYS][key]  # yacs: the new key, or (the new key, a note)
            new, note = (new[0], f"; {new[1]}") if isinstance(new, tuple) else (new, "")
            raise ConfigError(f"{where}: config key {key!r} was renamed to {new!r}{note}") from None
        except ValueError as error:  # yacs: "Type mismatch (...) for config key: KEY"
            raise _type_error(self, mapping, str(error).rpartition("config key: ")[2], where) from None
        _check_choices(self, where)

    def get_choices(self, key: str) -> tuple | None:
        """The values declared for dotted `key` with set_choices, or None."""
        parent, leaf = _parent_of(self, key, "get_choices")
        return parent.__dict__.get(_CHOICES, {}).get(leaf)


def set_choices(cfg: CfgNode, key: str, choices: Iterable) -> None:
    """Declares that dotted `key` of `cfg` takes one of `choices` (for a list-valued key: each of its elements;
    checked after every merge). Its current value must be one of them."""
    parent, leaf = _parent_of(cfg, key, "set_choices")
    choices = tuple(choices)
    if not choices:
        raise ConfigError(f"set_choices: no choices given for {key}")
    if isinstance(parent[leaf], CfgNode):
        raise ConfigError(f"set_choices: {key} is a section, not a value")
    _check_value_choices(key, parent[leaf], choices, "set_choices (the current value)")
    parent.__dict__.setdefault(_CHOICES, {})[leaf] = choices


def add_defaults(cfg: CfgNode, defaults: Mapping) -> CfgNode:
    """A task's keys on the base tree (what an add_<task>_config does): new sections and keys are added, keys the
    tree has take the task's default. Returns cfg."""
    for key, value in CfgNode.from_dict(defaults).items():
        if isinstance(value, CfgNode) and isinstance(cfg.get(key), CfgNode):
            add_defaults(cfg[key], value)
        else:
            cfg[key] = value
    return cfg


def check_values(cfg: CfgNode, rules: Mapping[str, tuple[Callable[[Any], Any], str]]) -> CfgNode:
    """A task's checks of what types and choices cannot express, {dotted key: (test, what the value must be)}: the
    first value that fails its test is a ConfigError '<key> must be <what>, got <value>'. Returns cfg."""
    for key, (test, expected) in rules.items():
        value = _at(cfg, key)
        if not test(value):
            raise ConfigError(f"{key} must be {expected}, got {value!r}")
    return cfg


POSITIVE = (lambda value: value > 0, "> 0")


def get_cfg() -> CfgNode:
    """A fresh copy of the engine's base tree (see the module's docstring); tasks add their keys to it."""
    return _BASE_TREE.clone()


def load_config(cfg_or_defaults: CfgNode | Mapping, path: str | Path | None = None,
                opts: Iterable = ()) -> CfgNode:
    """cfg_or_defaults <- the YAML file (with its _BASE_ chain) <- KEY VALUE overrides, as a new CfgNode.

    cfg_or_defaults: a CfgNode (get_cfg() with a task's keys and choices), which is not modified, or a nested
    mapping of defaults (a checkpoint's config)."""
    if isinstance(cfg_or_defaults, CfgNode):
        cfg = cfg_or_defaults.clone()
    elif isinstance(cfg_or_defaults, Mapping):
        cfg = CfgNode.from_dict(cfg_or_defaults)
    else:
        raise TypeError(f"load_config takes a CfgNode or a mapping of defaults, not {type(cfg_or_defaults).__name__}")
    if path is not None:
        cfg.merge_from_file(path)
    cfg.merge_from_list(opts)
    return cfg


def resolve_config_file(name: str | Path, config_dir: Path) -> Path:
    """A config file as given, or, where no such file exists, the shipped config of that name under config_dir
    (with or without '.yaml'), so that an installed package runs `--config-file tiny_carafe.yaml` from any folder."""
    path = Path(name)
    if path.is_file():
        return path
    for candidate in (config_dir / path, config_dir / f"{path}.yaml"):
        if candidate.is_file():
            return candidate
    shipped = sorted(str(p.relative_to(config_dir)) for p in config_dir.rglob("*.yaml"))
    raise ConfigError(f"config file not found: {name} (shipped configs: {', '.join(shipped)})")


def config_from_checkpoint(cfg: CfgNode, state: Mapping, source: str) -> CfgNode:
    """The config a checkpoint was trained with (the trainer stores it) over today's tree `cfg` (not modified):
    keys added since keep their defaults."""
    if not isinstance(state.get("config"), Mapping):
        raise ConfigError(f"{source}: checkpoint has no 'config' entry")
    cfg = cfg.clone()
    try:
        cfg.merge_from_other_cfg(state["config"])
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None
    return cfg


# -- reading files ------------------------------------------------------------------------------------------------

def _yaml_chain(path: Path, where: str, allow_unsafe: bool, stack: tuple[Path, ...]) -> list[tuple[str, dict]]:
    """[(where, mapping)] of the file's _BASE_ chain, bases first, the file last; `stack` finds cycles (two files
    may share a base)."""
    resolved = path.expanduser().resolve()
    if resolved in stack:
        raise ConfigError(f"{where}: _BASE_ cycle: {' -> '.join(str(p) for p in stack + (resolved,))}")
    data = _read_yaml(resolved, where, allow_unsafe)
    bases = data.pop(BASE_KEY, [])
    bases = [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, list) or not all(isinstance(base, str) for base in bases):
        raise ConfigError(f"{where}: _BASE_ must be a file name or a list of file names, got {bases!r}")
    chain = []
    for base in bases:
        base_path = path.parent / Path(base).expanduser()  # relative to the file that names it (or absolute)
        chain += _yaml_chain(base_path, str(base_path), allow_unsafe, stack + (resolved,))
    return chain + [(where, data)]


def _read_yaml(path: Path, where: str, allow_unsafe: bool) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file not found: {where}")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{where}: cannot read the file: {error}") from None
    try:  # fvcore's allow_unsafe: python tags, for trusted files only
        data = yaml.unsafe_load(text) if allow_unsafe else yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = (f"{error.problem} (line {mark.line + 1}, column {mark.column + 1})"
                   if getattr(error, "problem", None) and mark else " ".join(str(error).split()))
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    if not isinstance(data, (dict, type(None))):
        raise ConfigError(f"{where}: a config file must hold a mapping, got {type(data).__name__}")
    return data or {}


# -- merging ------------------------------------------------------------------------------------------------------

def _floats_where_floats(updates: Mapping, node: Any) -> dict:
    """updates with an int made a float where the tree holds a float (yacs would refuse 1 for 0.02)."""
    result = {}
    for key, value in updates.items():
        current = node.get(key) if isinstance(node, Mapping) else None
        if isinstance(value, Mapping):
            value = _floats_where_floats(value, current)
        elif isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        result[key] = value
    return result


def _at(tree: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree.get(part) if isinstance(tree, Mapping) else None
    return tree


def _type_error(root: CfgNode, updates: Mapping, key: str, where: str) -> ConfigError:
    default, value = _at(root, key), _at(updates, key)
    if isinstance(default, CfgNode):
        return ConfigError(f"{where}: {key!r} is a section; expected a mapping, got {value!r}")
    if isinstance(value, Mapping):
        return ConfigError(f"{where}: {key!r} is a value, not a section")
    wanted = {bool: "true or false", list: "a list", tuple: "a list"}.get(type(default), type(default).__name__)
    return ConfigError(f"{where}: {key!r} must be {wanted}, got {value!r}")


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value  # str, int, float, bool or None: the leaves a CfgNode holds


# -- keys, suggestions, choices -----------------------------------------------------------------------------------

def _dotted_keys(node: CfgNode, prefix: str = "") -> Iterator[str]:
    for key, value in node.items():
        yield f"{prefix}{key}"
        if isinstance(value, CfgNode):
            yield from _dotted_keys(value, f"{prefix}{key}.")


def _unknown_key(root: CfgNode, dotted: str, where: str) -> ConfigError:
    """The error of a key the tree does not have, with up to three valid keys of the same name in another section
    or of a close dotted name at the same depth (case ignored), else the keys of its section."""
    keys = {key.upper(): key for key in _dotted_keys(root)}
    leaf = dotted.upper().rpartition(".")[2]
    matches = [key for upper, key in keys.items() if upper.rpartition(".")[2] == leaf]
    level = [upper for upper in keys if upper.count(".") == dotted.count(".")]
    matches += [keys[m] for m in difflib.get_close_matches(dotted.upper(), level, n=3, cutoff=0.75)]
    matches = list(dict.fromkeys(matches))[:3]
    if matches:
        hint = "did you mean " + (", ".join(matches[:-1]) + " or " if len(matches) > 1 else "") + matches[-1] + "?"
    else:
        section = dotted.rpartition(".")[0]
        parent = _at(root, section) if section else None
        hint = (f"known keys under {section}: {', '.join(parent)}" if isinstance(parent, CfgNode)
                else f"known top-level keys: {', '.join(root)}")
    return ConfigError(f"{where}: unknown config key {dotted!r} ({hint})")


def _parent_of(cfg: CfgNode, key: str, what: str) -> tuple[CfgNode, str]:
    parent, _, leaf = key.rpartition(".")
    node = _at(cfg, parent) if parent else cfg
    if not isinstance(node, CfgNode) or leaf not in node:
        raise _unknown_key(cfg, key, what)
    return node, leaf


def _check_value_choices(key: str, value: Any, choices: tuple, where: str) -> None:
    for item in value if isinstance(value, (list, tuple)) else [value]:
        if not any(item == choice and isinstance(item, bool) == isinstance(choice, bool) for choice in choices):
            raise ConfigError(f"{where}: {key} {item!r} is not one of {', '.join(map(str, choices))}")


def _check_choices(node: CfgNode, where: str, prefix: str = "") -> None:
    for leaf, choices in node.__dict__.get(_CHOICES, {}).items():
        if leaf in node:
            _check_value_choices(f"{prefix}{leaf}", node[leaf], choices, where)
    for key, value in node.items():
        if isinstance(value, CfgNode):
            _check_choices(value, where, f"{prefix}{key}.")


# -- the base tree (get_cfg) -------------------------------------------------------------------------------------

_BASE_TREE = CfgNode.from_dict({
    "MODEL": {
        "DEVICE": "auto",  # auto (CUDA where available), cpu, cuda or cuda:N
        "WEIGHTS": "",  # a checkpoint to start from (training) or to evaluate; "" = none
        "CARAFE": {
            "SCALE_FACTOR": 2,  # sigma, the upsampling ratio (where the architecture leaves it free)
            "UP_KERNEL": 5,  # k_up, the reassembly kernel size (odd)
            "UP_GROUP": 1,  # G, channel groups sharing one reassembly kernel
            "ENCODER_KERNEL": 3,  # k_enc, the content encoder's kernel size
            "ENCODER_DILATION": 1,
            "COMPRESSED_CHANNELS": 64,  # C_m, the channel compressor's output channels
        },
    },
    "SOLVER": {
        "IMS_PER_BATCH": 16,  # images per iteration over all processes
        "BASE_LR": 0.02,
        "MOMENTUM": 0.9,
        "WEIGHT_DECAY": 0.0001,
        "MAX_ITER": 0,  # training iterations; 0 = the task's schedule decides (e.g. epochs)
        "CHECKPOINT_PERIOD": 5000,
        "LOG_PERIOD": 20,
        "AMP": False,  # mixed precision on CUDA
    },
    "DATALOADER": {"NUM_WORKERS": 4, "ASPECT_RATIO_GROUPING": False},  # loader processes per training process
    "TEST": {"EVAL_PERIOD": 0},  # iterations between evaluations; 0 = at the end only
    "OUTPUT_DIR": "output",  # checkpoints, metrics.jsonl, config.yaml and logs
    "SEED": 0,
})
