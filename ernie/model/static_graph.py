"""Building and running the encoder as a Paddle static (PIR) program."""
from __future__ import annotations

from typing import Dict, Mapping, Optional

import numpy as np
import paddle

from ernie.model.config import ErnieConfig
from ernie.model.modeling import ErnieModel
from ernie.model.params_io import assign_scope_params
from propeller.static_runner import InferenceProgram

ID_FEEDS = ("src_ids", "sent_ids", "pos_ids", "task_ids")
FEED_NAMES = ("src_ids", "sent_ids", "pos_ids", "input_mask", "task_ids")


def feed_names(config: ErnieConfig):
    return tuple(n for n in FEED_NAMES if n != "task_ids" or config.use_task_id)


def encoder_feeds(config: ErnieConfig) -> Dict[str, paddle.Tensor]:
    """`paddle.static.data` inputs of shape [batch, seq_len] (both dynamic)."""
    return {name: paddle.static.data(name, [-1, -1], "float32" if name == "input_mask" else "int64")
            for name in feed_names(config)}


class StaticEncoder:
    """The encoder's inference program in its own scope, parameters loaded, ready to run."""

    def __init__(self, config: ErnieConfig, params: Optional[Mapping[str, np.ndarray]] = None,
                 place=None):
        self.config = config

        def model_fn():
            feeds = encoder_feeds(config)
            self.model = ErnieModel(config)
            self.model.eval()
            sequence_output, pooled_output = self.model(**feeds)
            return feeds, {"sequence_output": sequence_output, "pooled_output": pooled_output}

        self.program = InferenceProgram(model_fn, place=place)
        self.param_names = [p.name for p in self.model.parameters()]
        if params is not None:
            assign_scope_params(self.param_names, params, self.program.place, self.program.scope)

    def run(self, batch: Mapping[str, np.ndarray]):
        """Returns (sequence_output, pooled_output) as numpy arrays for a batch of feeds."""
        out = self.program.run(batch)
        return out["sequence_output"], out["pooled_output"]
