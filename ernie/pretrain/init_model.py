"""Continuing pre-training from a model (`init_model:` in a pre-training config): the paper's
"continual" in practice, new tasks trained on top of what a model already knows.

Any model directory will do: one that `ernie.pretrain` wrote, a released ERNIE checkpoint or a
Hugging Face one converted with `ernie.convert`. The model's own config decides the encoder's
shape and its vocabulary must be the shards'. Its encoder and every task head it has are loaded;
tasks it has no head for get fresh heads. The task embedding grows when a task's id needs a row
the model lacks: the old rows are kept and the new ones start at zero, so that before the first
update the continued model computes exactly what the model did (a model without a task
embedding, such as the released ERNIE 2.0 checkpoints, gets an all-zero one). The sentence-type
table grows to the types the tasks' examples hold (a BERT model has 2, sentence reordering's
examples up to 4), its new rows copies of its last (`grow_sentence_types` says why). Tasks whose heads
the model has are *learned*: a continual multi-task schedule replays them from its first stage.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

from ernie.formats.checkpoint import CASING_FILE, CheckpointError, load_model_dir, model_lower_cases
from ernie.model import param_names as names
from ernie.model.config import ErnieConfig
from ernie_common.tokenization import load_vocab

# the fields that fix the encoder's parameter shapes; the task embedding's rows may grow
SHAPE_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "max_position_embeddings", "sent_type_vocab_size")


@dataclass
class InitModel:
    path: Path
    config: ErnieConfig          # the config to train with: the model's, the task embedding grown
    params: Dict[str, np.ndarray]
    ignored: List[str] = field(default_factory=list)  # parameters no head of this run uses
    grown: List[str] = field(default_factory=list)    # what grew, said at start-up

    def values_for(self, shapes: Mapping[str, Tuple[int, ...]]) -> Dict[str, np.ndarray]:
        """The model's values for the parameters of the program (`shapes`: name -> shape), the
        task embedding grown with zero rows and the sentence-type table with copies of its last
        row (`grow_sentence_types`); parameters the model lacks are left out (fresh)."""
        values = {}
        for name, shape in shapes.items():
            value = self.params.get(name)
            if name == names.TASK_EMBEDDING:
                grown = np.zeros(shape, np.float32)
                if value is not None:
                    grown[:value.shape[0]] = value
                values[name] = grown
            elif name == names.SENT_EMBEDDING and value is not None and value.shape[0] < shape[0]:
                values[name] = grow_sentence_types(value, shape[0])
            elif value is not None:
                if tuple(value.shape) != tuple(shape):
                    raise CheckpointError(f"init_model {self.path}: parameter {name} has shape {tuple(value.shape)}, "
                                          f"this run's model needs {tuple(shape)} (a head with another number "
                                          "of classes?)")
                values[name] = value
        self.ignored = sorted(set(self.params) - set(shapes))
        return values


def grow_sentence_types(table: np.ndarray, rows: int) -> np.ndarray:
    """The sentence-type embedding with `rows` rows: the new ones copies of the last. A model of
    two sentence types (BERT's A and B) has learned its second row as "a segment after the
    first", which is what the third and fourth segments of sentence reordering are; a zero row
    would instead take away the offset every token of the pre-trained model had (the table is
    added to every token's embedding before the layer norm)."""
    return np.concatenate([table, np.repeat(table[-1:], rows - table.shape[0], axis=0)]).astype(table.dtype)


def load_init_model(path, vocab_file, task_ids: List[int], preset: ErnieConfig = None,
                    sentence_types: int = 1, do_lower_case: Optional[bool] = None) -> InitModel:
    """The model at `path`, checked against the shards' vocabulary (and their casing,
    `do_lower_case`, where the model records its own) and, where the run names a model preset too,
    against its shape; `task_ids` are the ids the run's tasks feed, `sentence_types` how many
    sentence types their examples hold (the table grows to them)."""
    config, params, vocab = load_model_dir(path)
    if vocab is None:
        raise CheckpointError(f"init_model {path} has no vocab.txt")
    if load_vocab(vocab) != load_vocab(vocab_file):
        raise CheckpointError(f"init_model {path}: its vocabulary ({vocab}) is not the shards' ({vocab_file}); "
                              "make the shards with the model's vocab.txt")
    lower = model_lower_cases(path)
    if lower is not None and do_lower_case is not None and lower != do_lower_case:
        raise CheckpointError(f"init_model {path} was trained on {'lower-cased' if lower else 'cased'} text "
                              f"({CASING_FILE}), the shards were made {'lower-cased' if do_lower_case else 'cased'}: "
                              f"set do_lower_case: {str(lower).lower()} in the data config and make them again")
    if preset is not None:
        differ = [f"{f} {getattr(config, f)} (model) vs {getattr(preset, f)} (config)" for f in SHAPE_FIELDS
                  if getattr(config, f) != getattr(preset, f)]
        if differ:
            raise CheckpointError(f"init_model {path} does not have the shape of the config's model: "
                                  + "; ".join(differ))
    rows = max(task_ids, default=0) + 1
    grown = []
    if not config.use_task_id or config.task_type_vocab_size < rows:
        before = config.task_type_vocab_size if config.use_task_id else 0
        config = config.replace(use_task_id=True, task_type_vocab_size=max(rows, config.task_type_vocab_size))
        grown.append(f"task embedding {before} -> {config.task_type_vocab_size} rows (new rows zero)")
    if config.sent_type_vocab_size < sentence_types:
        grown.append(f"sentence types {config.sent_type_vocab_size} -> {sentence_types} "
                     f"(new rows copies of row {config.sent_type_vocab_size - 1})")
        config = config.replace(sent_type_vocab_size=sentence_types)
    return InitModel(Path(path), config, params, grown=grown)


def learned_tasks(tasks, parameter_names) -> List[str]:
    """The tasks (registered classes) whose every head parameter is among `parameter_names` (a model's)."""
    have = set(parameter_names)
    return [t.name for t in tasks if set(t.head_type(t.spec).parameter_names()) <= have]
