"""`finetune.json`, beside a fine-tuned model and in its exports: its task, head, labels and the
settings a prediction needs. One record, written by fine-tuning and read, checked, by export and
prediction."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from ernie.finetune import FINETUNE_FILE
from ernie.finetune.settings import POOLINGS
from ernie.finetune.tasks import KINDS, get_task
from ernie.formats.checkpoint import CheckpointError
from ernie_common.configfile import build


@dataclass(frozen=True)
class Description:
    """A fine-tuned model's `finetune.json` (written by `ernie.finetune`), checked when read: a
    misspelt task or a missing key is an error naming the file and the key, not a KeyError deep
    in an export or a prediction."""
    task: str
    kind: str
    head: str
    labels: List[str]
    max_seq_len: int
    do_lower_case: bool
    task_id: int
    pooling: Optional[str] = None  # sentence heads only
    config_error = CheckpointError  # what `build` raises

    def __post_init__(self):
        try:
            task = get_task(self.task)
        except KeyError as err:
            raise CheckpointError(f"task: {err.args[0]}") from None
        head = KINDS[task.kind].head
        if (self.kind, self.head) != (task.kind, head):
            raise CheckpointError(f"kind and head: {self.kind!r} and {self.head!r}, but a {task.name} model's "
                                  f"are {task.kind!r} and {head!r}")
        if self.pooling is not None and (head != "sentence" or self.pooling not in POOLINGS):
            raise CheckpointError(f"pooling: {self.pooling!r}; a sentence head takes one of {POOLINGS}, "
                                  f"other heads none")

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in dataclasses.asdict(self).items() if v is not None}, indent=1)


def read_description(model_dir) -> Optional[Description]:
    """The description of a fine-tuned model directory or export; None for a pre-trained one."""
    path = Path(model_dir) / FINETUNE_FILE
    if not path.is_file():
        return None
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: not JSON ({err})") from None
    return build(Description, values, str(path))
