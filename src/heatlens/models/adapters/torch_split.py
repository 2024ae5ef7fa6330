"""The rest of a torch network after a layer, as its own module (torch.fx), so methods that perturb a
layer's activation (Ablation-CAM, expected gradients at a layer) run only what follows the layer.

The layer is traced as a leaf; the cut is clean when its output is the only value that crosses it
(true of sequential CNNs and of residual networks cut between stages). Otherwise, or when the model
cannot be traced symbolically, there is no fast tail and the caller falls back to full passes.
"""

from __future__ import annotations

import logging

import torch
from torch import fx

log = logging.getLogger(__name__)


class _CutTracer(fx.Tracer):
    """Traces into the model's own modules, keeping torch's layers, childless modules and the cut layer whole."""

    def __init__(self, cut: str) -> None:
        super().__init__()
        self.cut = cut

    def is_leaf_module(self, module: torch.nn.Module, qualified_name: str) -> bool:
        return qualified_name == self.cut or not any(module.children()) or super().is_leaf_module(
            module, qualified_name)


def rest_of_network(model: torch.nn.Module, layer: str) -> torch.nn.Module | None:
    """A module mapping the layer's output to the model's output, or None (with the reason logged).
    The model is left as it came: attributes the tracer stores on it (tensor constants) are moved to the tail."""
    before = set(vars(model))
    try:
        graph = _CutTracer(layer).trace(model)
        return _tail_after(model, graph, layer)
    except Exception as exc:  # symbolic tracing fails on data-dependent Python control flow
        log.info("no fast tail after '%s': the model cannot be traced symbolically (%s)", layer, exc)
        return None
    finally:
        for added in set(vars(model)) - before:
            delattr(model, added)


def _tail_after(model: torch.nn.Module, graph: fx.Graph, layer: str) -> torch.nn.Module | None:
    """The graph's nodes after the cut layer as a module of their own, or None where the cut is not clean."""
    nodes = list(graph.nodes)
    cuts = [i for i, node in enumerate(nodes) if node.op == "call_module" and node.target == layer]
    if len(cuts) != 1:
        log.info("no fast tail after '%s': the layer is called %d times", layer, len(cuts))
        return None
    after = nodes[cuts[0] + 1 :]
    crossing = {node for node in nodes[: cuts[0] + 1] if any(user in set(after) for user in node.users)}
    if crossing != {nodes[cuts[0]]}:
        log.info("no fast tail after '%s': other values cross the cut (skip connections)", layer)
        return None
    tail = fx.Graph()
    mapping = {nodes[cuts[0]]: tail.placeholder("activation")}
    for node in after:
        mapping[node] = tail.node_copy(node, lambda n: mapping[n])
    return fx.GraphModule(model, tail)
