"""YAML configs on fvcore's CfgNode (the config detectron2 is built on): `_BASE_` inheritance, `KEY VALUE`
command-line overrides, keys that take one of a fixed set of values, and one-line errors naming the key.

    cfg = get_cfg()                          # a fresh copy of the engine's base tree (below)
    add_seg_config(cfg)                      # a task's own keys, detectron2-style: cfg.MODEL.FPN = CfgNode() ...
    set_choices(cfg, "MODEL.FPN.UPSAMPLE", ("nearest", "deconv", "carafe"))
    cfg = load_config(cfg, "configs/upernet.yaml", ["SOLVER.BASE_LR", "0.01"])

A config file may only set keys the tree has; `_BASE_: other.yaml` (a path relative to the file, or a list of
them) is merged first. Overrides are dotted keys with YAML-parsed values (`SOLVER.BASE_LR 0.01
MODEL.FPN.UPSAMPLE carafe`). A value keeps its key's type: ints are accepted where the default is a float (so are
float strings such as `1e-4`, which YAML reads as text), lists and tuples are interchangeable, a None default takes
any value, booleans take only true/false. Every mistake is a ConfigError of one line naming the file (or
'command-line override') and the key; an unknown key comes with the closest valid keys. Choices (set_choices) are
checked after each file and after the overrides; they are kept by clone(), deepcopy and pickle.

The engine's base tree, which every task shares (get_cfg()):

    MODEL.DEVICE                     "auto"   auto (CUDA where available), cpu, cuda or cuda:N
    MODEL.WEIGHTS                    ""       a checkpoint to start from (training) or to evaluate; "" = none
    MODEL.CARAFE.SCALE_FACTOR        2        sigma, the upsampling ratio (where the architecture leaves it free)
    MODEL.CARAFE.UP_KERNEL           5        k_up, the reassembly kernel size (odd)
    MODEL.CARAFE.UP_GROUP            1        G, channel groups sharing one reassembly kernel
    MODEL.CARAFE.ENCODER_KERNEL      3        k_enc, the content encoder's kernel size
    MODEL.CARAFE.ENCODER_DILATION    1        the content encoder's dilation
    MODEL.CARAFE.COMPRESSED_CHANNELS 64       C_m, the channel compressor's output channels
    SOLVER.IMS_PER_BATCH             16       images per iteration over all processes
    SOLVER.BASE_LR                   0.02
    SOLVER.MOMENTUM                  0.9
    SOLVER.WEIGHT_DECAY              0.0001
    SOLVER.MAX_ITER                  0        training iterations; 0 = the task's schedule decides (e.g. epochs)
    SOLVER.CHECKPOINT_PERIOD         5000     iterations between checkpoints
    SOLVER.LOG_PERIOD                20       iterations between log lines
    SOLVER.AMP                       False    mixed precision on CUDA
    DATALOADER.NUM_WORKERS           4        loader processes per training process
    DATALOADER.ASPECT_RATIO_GROUPING False    batch images of like aspect ratio together
    TEST.EVAL_PERIOD                 0        iterations between evaluations; 0 = at the end only
    OUTPUT_DIR                       "output" checkpoints, metrics.jsonl, config.yaml and logs
    SEED                             0

MODEL.CARAFE holds CARAFEPack's arguments under mmcv's names (carafe_ops.CARAFEPack(channels, scale_factor,
up_kernel, up_group, encoder_kernel, encoder_dilation, compressed_channels)), with the paper's defaults.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import yaml
from fvcore.common.config import BASE_KEY
from fvcore.common.config import CfgNode as _FvcoreCfgNode

# where a node keeps the choices of its own keys ({leaf name: allowed values}); in the node's __dict__, so that
# clone(), deepcopy and pickle keep it, as they keep yacs's own state (frozen, renamed keys)
_CHOICES = "__choices__"
_STORABLE = (str, int, float, bool, list, tuple, type(None))
_FLOAT_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


class ConfigError(ValueError):
    """A config file or override that does not fit the config tree (one line: where, the key, what is wrong)."""


class CfgNode(_FvcoreCfgNode):
    """fvcore's CfgNode whose merges follow the rules of this module and raise ConfigError, with to_dict() for
    checkpoints and spawned processes, and choices."""

    @classmethod
    def from_dict(cls, nested: Mapping) -> "CfgNode":
        """A tree of nodes from nested mappings (leaves: str, int, float, bool, None, lists, tuples)."""
        _check_storable(nested, "")
        return cls(copy.deepcopy(dict(nested)))

    @classmethod
    def wrap(cls, value: Any) -> Any:
        """The old Config.wrap: a mapping becomes a CfgNode, anything else is returned as it is."""
        return cls.from_dict(value) if isinstance(value, Mapping) else value

    def to_dict(self) -> dict:
        """Plain nested dicts and lists (tuples become lists): picklable, YAML-safe, for checkpoints and spawn."""
        return {key: _plain(value) for key, value in self.items()}

    def dump(self, **kwargs) -> str:
        """The tree as YAML, keys in their order (sort_keys=False unless given)."""
        kwargs.setdefault("sort_keys", False)
        return yaml.safe_dump(self.to_dict(), **kwargs)

    # -- merging -------------------------------------------------------------------------------------------------

    @classmethod
    def load_yaml_with_base(cls, filename: str | Path, allow_unsafe: bool = False) -> dict:
        """The file's mapping with its _BASE_ chain merged in, bases first (fvcore's method, with ConfigErrors)."""
        merged: dict = {}
        for _, mapping in _yaml_chain(Path(filename), str(filename), allow_unsafe, ()):
            _deep_update(merged, mapping)
        return merged

    def merge_from_file(self, cfg_filename: str | Path, allow_unsafe: bool = False) -> None:
        """Merges the file's _BASE_ chain (bases first), then the file; errors name the file that set the key."""
        for where, mapping in _yaml_chain(Path(cfg_filename), str(cfg_filename), allow_unsafe, ()):
            _merge_mapping(self, mapping, where, self, "")
            _check_choices(self, where)

    def merge_from_list(self, cfg_list: Iterable) -> None:
        """KEY VALUE pairs; values given as text are parsed as YAML ('0.01', '[1, 2]', 'true', 'carafe')."""
        cfg_list = list(cfg_list)
        where = "command-line override"
        if len(cfg_list) % 2:
            raise ConfigError(f"overrides come in KEY VALUE pairs; got an odd number: {cfg_list}")
        for key, text in zip(cfg_list[::2], cfg_list[1::2]):
            _merge_override(self, str(key), _parse_value(text), where)
        _check_choices(self, where)

    def merge_from_other_cfg(self, cfg_other: Mapping) -> None:
        """Merges another tree (or nested mapping) under the same rules as a file."""
        where = "merged config"
        _merge_mapping(self, cfg_other, where, self, "")
        _check_choices(self, where)

    # -- choices -------------------------------------------------------------------------------------------------

    def set_choices(self, key: str, choices: Iterable) -> None:
        """Declares that dotted `key` takes one of `choices` (for a list-valued key: each of its elements)."""
        set_choices(self, key, choices)

    def get_choices(self, key: str) -> tuple | None:
        """The values declared for dotted `key` with set_choices, or None."""
        parent, leaf = _parent_of(self, key, "get_choices")
        return parent.__dict__.get(_CHOICES, {}).get(leaf)


# the name the task packages used for the home-made config this module replaced
Config = CfgNode


def set_choices(cfg: CfgNode, key: str, choices: Iterable) -> None:
    """Declares that dotted `key` of `cfg` takes one of `choices` (checked after every merge). Its current value
    must be one of them."""
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
    for key, value in defaults.items():
        if isinstance(value, Mapping):
            if not isinstance(cfg.get(key), CfgNode):
                cfg[key] = CfgNode()
            add_defaults(cfg[key], value)
        else:
            _check_storable({key: value}, "")
            cfg[key] = _stored(value)
    return cfg


def get_cfg() -> CfgNode:
    """A fresh copy of the engine's base tree (see the module's docstring); tasks add their keys to it."""
    return _BASE_TREE.clone()


def load_config(cfg_or_defaults: CfgNode | Mapping, path: str | Path | None = None,
                opts: Iterable = ()) -> CfgNode:
    """cfg_or_defaults <- the YAML file (with its _BASE_ chain) <- KEY VALUE overrides, as a new CfgNode.

    cfg_or_defaults: a CfgNode (get_cfg() with a task's keys and choices), which is not modified, or a nested
    mapping of defaults (a checkpoint's config, older callers)."""
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


# -- reading files ------------------------------------------------------------------------------------------------

def _yaml_chain(path: Path, where: str, allow_unsafe: bool, stack: tuple[Path, ...]) -> list[tuple[str, dict]]:
    """[(where, mapping)] of the file's _BASE_ chain, bases first, the file last; `stack` finds cycles (two files
    may share a base)."""
    resolved = path.expanduser().resolve()
    if resolved in stack:
        chain = " -> ".join(str(p) for p in stack + (resolved,))
        raise ConfigError(f"{where}: _BASE_ cycle: {chain}")
    data = _read_yaml(resolved, where, allow_unsafe)
    bases = data.pop(BASE_KEY, None)
    if bases is None:
        return [(where, data)]
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(base, str) for base in bases):
        raise ConfigError(f"{where}: _BASE_ must be a file name or a list of file names, got {bases!r}")
    chain = []
    for base in bases:
        base_path = Path(os.path.expanduser(base))
        if not base_path.is_absolute():
            base_path = path.parent / base_path  # relative to the file that names it
        chain += _yaml_chain(base_path, str(base_path), allow_unsafe, stack + (resolved,))
    return chain + [(where, data)]


def _read_yaml(path: Path, where: str, allow_unsafe: bool) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file not found: {where}")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{where}: cannot read the file: {error}") from None
    try:
        try:
            data = yaml.safe_load(text)
        except yaml.constructor.ConstructorError:
            if not allow_unsafe:
                raise
            data = yaml.unsafe_load(text)  # fvcore's allow_unsafe: python tags, for trusted files only
    except yaml.YAMLError as error:
        raise ConfigError(f"{where}: not valid YAML: {_yaml_problem(error)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a config file must hold a mapping, got {type(data).__name__}")
    return data


def _yaml_problem(error: yaml.YAMLError) -> str:
    problem = getattr(error, "problem", None)
    mark = getattr(error, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(error).split())


def _deep_update(target: dict, updates: Mapping) -> None:
    for key, value in updates.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _parse_value(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


# -- merging ------------------------------------------------------------------------------------------------------

def _merge_mapping(node: CfgNode, updates: Mapping, where: str, root: CfgNode, prefix: str) -> None:
    for key, value in updates.items():
        _put(node, key, value, f"{prefix}{key}", where, root)


def _merge_override(root: CfgNode, key: str, value: Any, where: str) -> None:
    node, parts = root, key.split(".")
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part) if part else None
        if not isinstance(child, CfgNode):
            if part in node:
                raise ConfigError(f"{where}: {'.'.join(parts[:depth + 1])!r} is a value, not a section "
                                  f"(in {key!r})")
            if root.key_is_deprecated(key):
                return
            raise _unknown_key(root, key, where)
        node = child
    _put(node, parts[-1], value, key, where, root)


def _put(node: CfgNode, key: str, value: Any, dotted: str, where: str, root: CfgNode) -> None:
    """node[key] = value under the rules: a known key (a section takes a mapping, a value keeps its type), or a
    new key where the node allows them; a deprecated key is ignored."""
    if key == BASE_KEY:
        raise ConfigError(f"{where}: the reserved key {BASE_KEY!r} can only be used at the top of a file")
    if key not in node:
        if node.is_new_allowed() and key:
            node[key] = _stored(value, dotted, where)
        elif not root.key_is_deprecated(dotted):
            raise _unknown_key(root, dotted, where)
        return
    current = node[key]
    if isinstance(current, CfgNode):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: {dotted!r} is a section; expected a mapping, got {value!r}")
        _merge_mapping(current, value, where, root, dotted + ".")
    else:
        node[key] = _coerce(current, value, dotted, where)


def _coerce(default: Any, value: Any, key: str, where: str) -> Any:
    """The value in the default's type, or a ConfigError naming the key, the type wanted and the value."""
    if value is None:
        return None
    if default is None:
        return _stored(value, key, where)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {key!r} must be true or false, got {value!r}")
        return value
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: {key!r} must be a list, got {value!r}")
        return type(default)(copy.deepcopy(value))
    if isinstance(default, float):
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads 1e-4 (no dot) as text
    if isinstance(value, bool) and not isinstance(default, bool):
        raise ConfigError(f"{where}: {key!r} must be {type(default).__name__}, got {value!r}")
    if not isinstance(value, type(default)):
        raise ConfigError(f"{where}: {key!r} must be {type(default).__name__}, got {value!r}")
    return copy.deepcopy(value)


def _stored(value: Any, key: str = "", where: str = "") -> Any:
    """A value as a tree holds it: mappings become CfgNodes."""
    if isinstance(value, Mapping):
        return CfgNode.from_dict(value)
    if not isinstance(value, _STORABLE):
        raise ConfigError(f"{where}: {key!r} cannot hold a {type(value).__name__} ({value!r})")
    return copy.deepcopy(value)


def _check_storable(nested: Mapping, prefix: str) -> None:
    for key, value in nested.items():
        if isinstance(value, Mapping):
            _check_storable(value, f"{prefix}{key}.")
        elif not isinstance(value, _STORABLE):
            raise ConfigError(f"config key '{prefix}{key}' cannot hold a {type(value).__name__} ({value!r}); "
                              f"values are str, int, float, bool, None or lists of them")


def _plain(value: Any) -> Any:
    if isinstance(value, CfgNode):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return copy.deepcopy(value)


# -- keys, suggestions, choices -----------------------------------------------------------------------------------

def _dotted_keys(node: CfgNode, prefix: str = "") -> Iterator[str]:
    for key, value in node.items():
        yield f"{prefix}{key}"
        if isinstance(value, CfgNode):
            yield from _dotted_keys(value, f"{prefix}{key}.")


def _unknown_key(root: CfgNode, dotted: str, where: str) -> ConfigError:
    if root.key_is_renamed(dotted):
        renamed = root.__dict__[CfgNode.RENAMED_KEYS][dotted]
        new, note = (renamed if isinstance(renamed, tuple) else (renamed, None))
        return ConfigError(f"{where}: config key {dotted!r} was renamed to {new!r}" + (f"; {note}" if note else ""))
    matches = _suggestions(root, dotted)
    if matches:
        listed = ", ".join(matches[:-1]) + " or " + matches[-1] if len(matches) > 1 else matches[0]
        hint = f"did you mean {listed}?"
    else:
        parent = _node_at(root, dotted.rpartition(".")[0])
        if parent is not root and parent is not None:
            hint = f"known keys under {dotted.rpartition('.')[0]}: {', '.join(parent) or 'none'}"
        else:
            hint = f"known top-level keys: {', '.join(root) or 'none'}"
    return ConfigError(f"{where}: unknown config key {dotted!r} ({hint})")


def _suggestions(root: CfgNode, dotted: str) -> list[str]:
    """Up to three valid dotted keys for a mistyped one: a sibling of a similar name or holding its words, a key
    of the same name in another section, a key whose dotted name is close (difflib's ratios; case is ignored)."""
    keys = list(_dotted_keys(root))
    parent_key, _, leaf = dotted.upper().rpartition(".")
    parent = _node_at(root, dotted.rpartition(".")[0])
    prefix = dotted.rpartition(".")[0] + "." if parent_key else ""
    names = list(parent) if parent is not None else []
    siblings = _closest(leaf, names, 0.6) + [name for name in names  # LR -> BASE_LR
                                              if set(leaf.split("_")) <= set(name.upper().split("_"))]
    siblings = [f"{prefix}{name}" for name in siblings]
    same_name = [key for key in keys if key.upper() == dotted.upper() or key.upper().rsplit(".", 1)[-1] == leaf]
    ancestors = {".".join(dotted.split(".")[:depth]) for depth in range(1, dotted.count(".") + 1)}
    close = _closest(dotted, [key for key in keys if key not in ancestors], 0.8)
    return list(dict.fromkeys(siblings + same_name + close))[:3]


def _closest(key: str, candidates: list[str], cutoff: float) -> list[str]:
    """The candidates whose difflib ratio to key (ignoring case) is >= cutoff and within 0.1 of the best, best
    first, at most three."""
    scored = []
    for candidate in candidates:
        ratio = difflib.SequenceMatcher(None, key.upper(), candidate.upper()).ratio()
        if ratio >= cutoff:
            scored.append((ratio, candidate))
    scored.sort(key=lambda item: -item[0])
    return [candidate for ratio, candidate in scored[:3] if ratio >= scored[0][0] - 0.1]


def _node_at(root: CfgNode, dotted: str) -> CfgNode | None:
    """The section at dotted (root for ''), or None."""
    node: Any = root
    for part in dotted.split(".") if dotted else []:
        node = node.get(part) if isinstance(node, CfgNode) else None
    return node if isinstance(node, CfgNode) else None


def _parent_of(cfg: CfgNode, key: str, what: str) -> tuple[CfgNode, str]:
    parent, _, leaf = key.rpartition(".")
    node = _node_at(cfg, parent)
    if node is None or leaf not in node:
        raise _unknown_key(cfg, key, what)
    return node, leaf


def _is_choice(value: Any, choices: tuple) -> bool:
    return any(value == choice and isinstance(value, bool) == isinstance(choice, bool) for choice in choices)


def _check_value_choices(key: str, value: Any, choices: tuple, where: str) -> None:
    for item in value if isinstance(value, (list, tuple)) else [value]:
        if not _is_choice(item, choices):
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
        "DEVICE": "auto",
        "WEIGHTS": "",
        "CARAFE": {
            "SCALE_FACTOR": 2,
            "UP_KERNEL": 5,
            "UP_GROUP": 1,
            "ENCODER_KERNEL": 3,
            "ENCODER_DILATION": 1,
            "COMPRESSED_CHANNELS": 64,
        },
    },
    "SOLVER": {
        "IMS_PER_BATCH": 16,
        "BASE_LR": 0.02,
        "MOMENTUM": 0.9,
        "WEIGHT_DECAY": 0.0001,
        "MAX_ITER": 0,
        "CHECKPOINT_PERIOD": 5000,
        "LOG_PERIOD": 20,
        "AMP": False,
    },
    "DATALOADER": {"NUM_WORKERS": 4, "ASPECT_RATIO_GROUPING": False},
    "TEST": {"EVAL_PERIOD": 0},
    "OUTPUT_DIR": "output",
    "SEED": 0,
})
