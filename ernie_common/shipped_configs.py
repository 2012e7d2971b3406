"""The configs shipped with the package. In a checkout they are the repository's `configs/`;
after `pip install .` the package `ernie_configs` (setup.py installs `configs/` under that name).
A config path a command is given (`--config configs/model/tiny.yaml`) is relative to the directory
it runs in; where a `configs/...` path does not exist there, `find` takes the shipped copy, so the
shipped configs work from any directory. How the paths inside a config are read:
`ernie_common.configfile.config_path`."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Optional

PREFIX = "configs"


def shipped_dir() -> Path:
    """Where the shipped configs are: the installed `ernie_configs`, else the checkout's."""
    spec = importlib.util.find_spec("ernie_configs")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parents[1] / PREFIX


def find(path) -> Path:
    """`path` where it exists; a missing `configs/...` path in the shipped configs."""
    path = Path(path)
    if path.exists() or path.is_absolute() or not path.parts or path.parts[0] != PREFIX:
        return path
    shipped = shipped_dir().joinpath(*path.parts[1:])
    return shipped if shipped.exists() else path


def shipped(*parts: str) -> Path:
    """A shipped config by its path under `configs/` (`shipped("finetune", "SST-2.yaml")`)."""
    return shipped_dir().joinpath(*parts)


def is_shipped(path) -> bool:
    """Whether the config file `path` is one of the shipped configs."""
    return Path(path).resolve().is_relative_to(shipped_dir().resolve())


def repository_root() -> Optional[Path]:
    """The checkout the shipped configs are in (the folder holding `configs/`; editable installs
    included), where every config, script and document of the repository writes its paths from.
    None for a plain install, which has no repository."""
    folder = shipped_dir()
    return folder.parent if folder.name == PREFIX else None
