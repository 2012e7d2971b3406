"""One way to read every config of the framework: model presets (`ernie.model.config`), data
configs (`data_gen.config`), pre-training configs (`ernie.pretrain.config`) and fine-tuning
settings (`ernie.finetune.settings`). A dataclass declares the keys and their types; a YAML (or
JSON) file and `key=value` overrides from the command line (`--set`, dotted for a nested key:
`--set optimization.learning_rate=1e-3`) fill it. An unknown key, a value of the wrong type or a
value its dataclass refuses is an error that names the file and the key.

Values are read as YAML, with YAML 1.2's booleans: only `true` and `false` (PyYAML follows YAML
1.1, where `off`, `on`, `yes` and `no` are booleans too: `amp: off` would be False, not the word),
and converted to the declared type where that loses nothing (YAML reads
`1e-3` as a string, `3` as an int where a float is declared). Types understood: int, float, bool,
str, Optional, List, Tuple of one type, Dict with str keys, nested dataclasses, and Any; one
value where a list is declared is a list of one.

Paths (`config_path`). A relative path in a config file is read from the file's folder, so a
config and the files it names move together and a job may start in any directory; in a config
file inside the repository's checkout (configs/, examples/, a run's saved config under output/,
your own), from the repository root, as every config, script and document of the repository
writes them. A path that begins with `configs/` names a shipped config (found from any directory
when it is opened: `shipped_configs.find`). A path typed on the command line (`--set data=...`, a
command's `--output`) is the working directory's. So no config means another thing in another
working directory, except the shipped configs of a plain install (no repository), whose paths are
the working directory's, as they always were. A config class names its path keys in `path_keys`.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import typing
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

import yaml

from .shipped_configs import PREFIX, find, is_shipped, repository_root


class ConfigError(ValueError):
    """A config that cannot be read, or a key or value it does not accept."""


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's booleans (module docstring)."""


_BOOL = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def _load_yaml(text: str):
    return yaml.load(text, Loader=_Loader)


def read(path) -> Dict[str, Any]:
    """The mapping a YAML or JSON config file holds (a shipped `configs/...` path found from anywhere)."""
    path = find(path)
    try:
        text = path.read_text(encoding="utf-8")
        values = json.loads(text) if path.suffix == ".json" else _load_yaml(text)
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason})") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not valid JSON: {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(err)}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(values).__name__}")
    return values


def _yaml_problem(err: yaml.YAMLError) -> str:
    """PyYAML's error on one line: where (its marks print the offending line and a caret) and what."""
    mark = getattr(err, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return where + (getattr(err, "problem", None) or str(err).splitlines()[0])


def apply_overrides(values: Dict[str, Any], overrides: Sequence[str], source: str = "--set") -> Dict[str, Any]:
    """`values` with each `key=value` (value read as YAML; a dotted key reaches into a mapping)."""
    values = json.loads(json.dumps(values, default=str)) if values else {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{source}: {item!r} is not key=value")
        *path, leaf = key.split(".")
        node = values
        for part in path:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{source}: {key}: {part} is not a mapping")
        try:
            node[leaf] = _load_yaml(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"{source}: {key}: cannot read {text!r}: {_yaml_problem(err)}") from None
    return values


def build(cls, values: Mapping[str, Any], where: str):
    """An instance of the dataclass `cls` from `values`, every value converted to its field's type.
    Errors are `cls.config_error` where the class names one (a `ConfigError` of its own)."""
    error = getattr(cls, "config_error", ConfigError)
    if not isinstance(values, Mapping):
        raise error(f"{where}: expected a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise error(f"{where}: unknown key(s) {unknown}; known: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    try:
        kwargs = {name: _convert(value, hints[name], f"{where}: {name}") for name, value in values.items()}
    except ConfigError as err:
        raise err if isinstance(err, error) else error(str(err)) from None
    missing = sorted(name for name, f in fields.items() if name not in kwargs
                     and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
    if missing:
        raise error(f"{where}: missing key(s) {missing}")
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise type(err)(f"{where}: {err}") from None
    except (TypeError, ValueError) as err:
        raise error(f"{where}: {err}") from None


def load(cls, path=None, overrides: Sequence[str] = (), extra: Mapping[str, Any] = None):
    """`cls` from a config file (or none), `extra` values (set by a command's own options) and
    `key=value` overrides, in that order; the file's paths (`cls.path_keys`) read from its folder,
    the others' from the working directory."""
    values = resolve_paths(read(path), getattr(cls, "path_keys", ()), path) if path is not None else {}
    values.update({k: v for k, v in (extra or {}).items() if v is not None})
    return build(cls, apply_overrides(values, overrides), str(path) if path is not None else "config")


def config_path(value: str, config_file) -> str:
    """The path `value` in the config file `config_file`, as a command opens it (the module's
    docstring: from the file's folder, or the repository root for a file inside the checkout; a
    `configs/...` path and an absolute one as they are). Written relative to the working directory
    where it lies under it, else absolute: the resolved config a run saves, and the fingerprint a
    resumed run checks, stay what they were for the repository's configs run from its root."""
    path = Path(value)
    if path.is_absolute() or path.parts[:1] == (PREFIX,):
        return value
    base = _base_folder(find(config_file))
    if base is None:
        return value
    return _from_working_directory(os.path.normpath(base / path))


def _base_folder(config_file: Path) -> Optional[Path]:
    """The folder the relative paths of `config_file` are read from: the repository root for a
    file inside the checkout, the file's own folder for one elsewhere; None (the working
    directory) for a shipped config of a plain install, which has no repository."""
    root = repository_root()
    if root is not None and config_file.resolve().is_relative_to(root.resolve()):
        return root.resolve()
    if root is None and is_shipped(config_file):
        return None
    return config_file.absolute().parent.resolve()


def _from_working_directory(path: str) -> str:
    """An absolute `path`, relative to the working directory where it lies under it."""
    relative = os.path.relpath(path)
    return path if relative == os.pardir or relative.startswith(os.pardir + os.sep) else relative


TASK_MODULES = "task_modules"  # importable module names and .py files: only the files are paths


def resolve_paths(values: Mapping[str, Any], keys: Sequence[str], config_file) -> Dict[str, Any]:
    """The values of the config file `config_file`, each of `keys` it sets (a path, or a list of
    them) read by `config_path`; of `task_modules`, the `.py` files."""
    return {key: _resolved(key, value, config_file) if key in keys else value for key, value in values.items()}


def _resolved(key: str, value, config_file):
    if isinstance(value, list):
        return [_resolved(key, item, config_file) for item in value]
    if not isinstance(value, str) or (key == TASK_MODULES and not value.endswith(".py")):
        return value  # not a path: the type check of `build` names what it is
    return config_path(value, config_file)


def to_dict(instance) -> Dict[str, Any]:
    """The plain mapping of a config (as YAML would hold it)."""
    return dataclasses.asdict(instance)


def _convert(value, kind, where: str):
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return value
    if origin is typing.Union:  # Optional[X]
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(value, inner, where)
    if dataclasses.is_dataclass(kind):
        return value if isinstance(value, kind) else build(kind, value if value is not None else {}, where)
    if origin in (list, tuple, Sequence, typing.Sequence):
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]  # one value where a list is declared: a list of one
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        items = [_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)] if args else list(value)
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping, typing.Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        return {k: _convert(v, args[1], f"{where}.{k}") if args else v for k, v in value.items()}
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if kind in (int, float):
        try:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if kind is int:
                if not number.is_integer():
                    raise ValueError
                return int(number)
            return number
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be {'an integer' if kind is int else 'a number'}, got {value!r}") from None
    if kind is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where} must be a string, got {value!r}")
    if kind is Path:
        return Path(value)
    return value
