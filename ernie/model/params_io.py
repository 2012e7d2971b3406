"""Moves named parameter arrays into and out of a dygraph layer or a static program's scope."""
from __future__ import annotations

from typing import Dict, Iterable, Mapping

import numpy as np
import paddle

from ernie.model.errors import CheckpointError


def layer_params(layer: paddle.nn.Layer) -> Dict[str, np.ndarray]:
    """{original name: array} of a dygraph layer's parameters."""
    return {p.name: p.numpy() for p in layer.parameters()}


def _check_fit(name: str, have_shape, value: np.ndarray) -> None:
    if tuple(have_shape) != tuple(value.shape):
        raise CheckpointError(f"parameter {name}: model has shape {tuple(have_shape)}, "
                              f"checkpoint has {tuple(value.shape)}")


def assign_layer_params(layer: paddle.nn.Layer, params: Mapping[str, np.ndarray]) -> None:
    """Sets every parameter of `layer` from `params`; a parameter missing there is an error."""
    for p in layer.parameters():
        if p.name not in params:
            raise CheckpointError(f"checkpoint has no parameter {p.name}")
        _check_fit(p.name, p.shape, params[p.name])
        p.set_value(params[p.name].astype(p.numpy().dtype, copy=False))


def scope_params(names: Iterable[str], scope=None) -> Dict[str, np.ndarray]:
    scope = scope or paddle.static.global_scope()
    return {name: np.array(scope.find_var(name).get_tensor()) for name in names}


def assign_scope_params(names: Iterable[str], params: Mapping[str, np.ndarray], place,
                        scope=None) -> None:
    """Sets the named variables of a static scope (after the startup program ran)."""
    scope = scope or paddle.static.global_scope()
    for name in names:
        if name not in params:
            raise CheckpointError(f"checkpoint has no parameter {name}")
        tensor = scope.find_var(name).get_tensor()
        current = np.array(tensor)
        _check_fit(name, current.shape, params[name])
        tensor.set(params[name].astype(current.dtype, copy=False), place)
