"""The Network protocol every model adapter implements; the only interface methods may use.

Arrays cross this boundary as numpy, channels-last: images (N, H, W, 3) uint8, model inputs
(N, H, W, C) float32, spatial activations and their gradients (N, h, w, C). A trace asked with
`keep_on_device=True` may instead hold the adapter's own device arrays, with the `ArrayOps` that reduce them.
"""

from __future__ import annotations

import abc
import copy
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import LayerError, MethodError, ModelError, close_matches, first_line
from ..preprocess import Box, whole_image
from ..targets import TopK, check_ids, check_scores, score_label
from . import layer_choice
from .arrays import NUMPY, ArrayOps
from .objectives import LOGITS, ChannelMax, Custom, Objective, Softmax, channel_layer, check_objective
from .tokens import is_token_count
from .tokens import token_grid as token_grid  # re-exported: methods lay token layers out with it

Preprocess = Callable[[np.ndarray], np.ndarray]
Targets = np.ndarray | Callable[[np.ndarray], np.ndarray] | None
ScoreFunction = Callable[[Any], Any]
log = logging.getLogger(__name__)

LAYER_POSITION = re.compile(r"(?:model\.)?layers\[\s*(-?[0-9]+)\s*\](?:\.(input|output))?")


CHANNELS_FIRST, CHANNELS_LAST = "channels_first", "channels_last"


@dataclass(frozen=True)
class LayerInfo:
    """One layer: its dotted name, its kind (class name), its output shape without the batch axis
    (channels-last), how many times one forward pass calls it, and whether its output is a pooling
    layer's (a pooling layer itself, or a container that ends in one).

    `layout` is how the framework's own tensor orders a 4-D output (torch: CHANNELS_FIRST unless the layer
    computes channels-last); `certain_layout` is False where the probe could not tell. `per_image` is False
    for outputs that are no map per image: windows folded into the batch axis, attention over tokens.
    `token_layout` is a token layer's (prefix tokens, grid height, grid width), read from the patch embedding."""

    name: str
    kind: str
    output_shape: tuple[int, ...] | None
    calls: int = 1
    pooling: bool = False
    layout: str = CHANNELS_LAST
    certain_layout: bool = True
    per_image: bool = True
    token_layout: tuple[int, int, int] | None = None

    @property
    def spatial(self) -> bool:
        """True for per-image (h, w, C) outputs with more than one position: what CAM methods can use."""
        shape = self.output_shape
        return self.per_image and shape is not None and len(shape) == 3 and shape[0] * shape[1] > 1

    @property
    def tokens(self) -> bool:
        """True for per-image (T, C) token sequences on a grid: the patch embedding's, or a square one after
        0..8 class/register tokens."""
        shape = self.output_shape
        if not self.per_image or shape is None or len(shape) != 2:
            return False
        return self.token_layout is not None or is_token_count(shape[0])


@dataclass
class Trace:
    """What one traced pass returns: activations (N, h, w, C) per captured layer, gradients
    (N, K, ...) per `wrt` name ('input' or a layer) for the K target ids (N, K), and the logits.

    Activations and gradients are numpy unless the pass was asked `keep_on_device` and the adapter keeps them
    (torch on CUDA): they are then its own arrays, channels-last views, and `ops` reduces them where they are.
    Logits and targets are always numpy."""

    logits: np.ndarray
    targets: np.ndarray | None = None
    activations: dict[str, Any] = field(default_factory=dict)
    gradients: dict[str, Any] = field(default_factory=dict)
    ops: ArrayOps = NUMPY

    @property
    def ids(self) -> np.ndarray:
        """The target ids (N, K) of a pass that was given targets."""
        if self.targets is None:
            raise ValueError("this pass was traced without targets, so it has no target ids")
        return self.targets


@dataclass(frozen=True)
class AttentionView:
    """A vision transformer's attention as `Network.attention` gives it: `network.trace` captures and differentiates
    each of `layers` (one per attention block, in execution order), the block's softmax probabilities as
    (N, T, T, heads): query token, key token, head (channels-last, like every 4-D array)."""

    network: Network
    layers: list[str]


@dataclass
class Split:
    """A network cut at a layer: `tail(activation, x)` runs from that layer's activation to the scores (`x` is
    the input that gave the activation: one row per activation, or a single row shared by all; adapters that
    can run the rest alone never use it)."""

    tail: Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class TraceRequest:
    """One chunk of a validated trace request, as the skeleton hands it to an adapter's `_trace_chunk`:
    targets are ids (N, K), None, or a function the adapter resolves in its own pass (a TopK for
    adapters with `compiled_targets`)."""

    x: np.ndarray
    targets: Targets
    capture: tuple[str, ...]
    wrt: tuple[str, ...]
    relu: str
    objective: Objective
    inject: dict[str, np.ndarray]
    rules: Any = None  # an LRP composite (methods/lrp_rules.Composite): the backward pass carries relevance
    keep_on_device: bool = False  # the caller reduces with Trace.ops: activations and gradients may stay put

    @property
    def top_k(self) -> int:
        """k for targets ranked inside the adapter's pass (TopK), else 0."""
        return self.targets.k if isinstance(self.targets, TopK) else 0

    @property
    def layers(self) -> list[str]:
        """Every layer the pass must reach: captured, differentiated, injected and scored ones."""
        scored = channel_layer(self.objective)
        return list(dict.fromkeys([*self.capture, *(w for w in self.wrt if w != "input"), *self.inject,
                                   *([scored] if scored else [])]))


RELU_RULES = ("normal", "guided", "deconv")
def check_relu(relu: str) -> None:
    """Refuse an unknown ReLU rule before any work is done."""
    if relu not in RELU_RULES:
        raise ValueError(f"relu must be one of {RELU_RULES}. Received: {relu!r}")


def layer_position(name: object) -> tuple[int, str] | None:
    """(k, 'input' | 'output') for a layer given by position as the tutorials do with `model.layers[k]`:
    'layers[7].input', 'layers[-2].output' ('model.' in front and a bare 'layers[k]', the output, also do);
    None for anything else."""
    match = LAYER_POSITION.fullmatch(name.strip()) if isinstance(name, str) else None
    return (int(match[1]), match[2] or "output") if match else None


def pick_position(items: Sequence[Any], index: int, model: str) -> Any:
    """items[index] (negative from the end), or a LayerError naming the positions the model has."""
    if not -len(items) <= index < len(items):
        raise LayerError(f"layers[{index}] is out of range: {model} has {len(items)} top-level layers, "
                         f"layers[0] .. layers[{len(items) - 1}]")
    return items[index]


def check_parameter_layers(model: str, layers: Sequence[str], known: Sequence[str]) -> list[str]:
    """`layers` as a list, each one of the `known` parameter layers of `model`; otherwise a LayerError."""
    if isinstance(layers, str) or not isinstance(layers, Sequence):
        raise LayerError(f"layers must be a list of layer names. Received: {type(layers).__name__}")
    for name in layers:
        if name not in known:
            raise LayerError(f"'{name}' is no layer with parameters of {model} that heatlens can re-initialise."
                             f"{close_matches(str(name), known)} List them with network.parameter_layers()")
    return list(layers)


def merge_traces(parts: list[Trace], capture: Sequence[str], wrt: Sequence[str]) -> Trace:
    """One Trace from the traces of consecutive chunks of a batch."""
    if len(parts) == 1:
        return parts[0]
    ops = parts[0].ops
    return Trace(
        logits=np.concatenate([p.logits for p in parts]),
        targets=None if parts[0].targets is None else np.concatenate([p.targets for p in parts]),
        activations={k: ops.concatenate([p.activations[k] for p in parts]) for k in capture},
        gradients={k: ops.concatenate([p.gradients[k] for p in parts]) for k in wrt},
        ops=ops,
    )


class LayerRecorder:
    """Collects what a probing forward pass sees, layer by layer, and turns it into LayerInfo."""

    def __init__(self) -> None:
        self._records: dict[str, list] = {}
        self._pooled: set[int] = set()
        self._alive: list[object] = []

    def see(self, name: str, kind: str, output: object, shape: tuple[int, ...] | None) -> None:
        """Record one call of a layer; `shape` is channels-last without the batch axis. Pooling outputs
        are kept alive for the probe's duration, so their ids identify them."""
        pooled = "pool" in kind.lower() and not kind.lower().startswith("global")
        if pooled:
            self._pooled.add(id(output))
            self._alive.append(output)
        pooled = pooled or id(output) in self._pooled
        if name in self._records:
            self._records[name][2] += 1
            self._records[name][1] = shape
            self._records[name][3] = pooled
        else:
            self._records[name] = [kind, shape, 1, pooled]

    def infos(self) -> list[LayerInfo]:
        return [LayerInfo(name, *record) for name, record in self._records.items()]


class Network(abc.ABC):
    """A classifier as heatlens sees it. Adapters subclass this; methods only call these primitives."""

    name: str = "model"
    classes: Sequence[str] | None = None
    preprocess: Preprocess | None = None
    score_function: ScoreFunction | None = None
    tensor_type: type = np.ndarray
    given_notes: tuple[str, ...] = ()  # what was chosen for the network (a loader's preprocessing, classes)

    batch_size: int = 32
    input_size: tuple[int, ...] | None = None
    compiled_targets: bool = False  # True: callable targets other than TopK are resolved by a predict first
    _layers: dict[tuple[int, ...], list[LayerInfo]]  # the probed layers per input shape; each adapter starts it
    _custom_views: dict[ScoreFunction, Network]  # rescored views per Custom objective's function

    @property
    def notes(self) -> list[str]:
        """What every explanation of this network says: the choices made for it, then the adapter's own."""
        return [*self.given_notes, *self._adapter_notes()]

    def add_notes(self, notes: Sequence[str]) -> None:
        """Say `notes` in every explanation, before the notes the network has so far."""
        self.given_notes = (*notes, *self.given_notes)

    def _adapter_notes(self) -> list[str]:
        """What the adapter itself says about how it runs the model; none by default."""
        return []

    def layers(self, input_shape: tuple[int, ...] | None = None) -> list[LayerInfo]:
        """Every named layer in execution order, with its output shape for inputs of `input_shape`
        (h, w, C); by default the model's own input size. Probed once per shape."""
        shape = tuple(input_shape) if input_shape is not None else self._probe_shape()
        if shape not in self._layers:
            self._layers[shape] = layer_choice.described(self._probe(shape))
        return self._layers[shape]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Scores (N, classes) for model inputs x, in batches of `batch_size`, with no gradient work."""
        return np.concatenate([check_scores(self._predict_chunk(x[s : s + self.batch_size]),
                                            len(x[s : s + self.batch_size]))
                               for s in range(0, len(x), self.batch_size)])

    def trace(
        self,
        x: np.ndarray,
        targets: Targets = None,
        capture: Sequence[str] = (),
        wrt: Sequence[str] = (),
        relu: str = "normal",
        inject: dict[str, np.ndarray] | None = None,
        objective: Objective = LOGITS,
        rules: Any = None,
        keep_on_device: bool = False,
    ) -> Trace:
        """One pass that returns only what is asked: activations at `capture`, and gradients of the
        scores of `targets` w.r.t. each name in `wrt` ('input' or a layer).

        `targets` is class ids (N, K), or a function from the logits (N, classes) to ids, so targets
        such as 'top1' are resolved inside the same pass where the adapter can (else by a predict first).
        `relu`: 'normal', or 'guided' / 'deconv' to change every ReLU's backward rule for this pass.
        `inject`: per layer, an activation (N, ...) that replaces the layer's output in this pass (its
        gradient is then taken w.r.t. the injected value). `objective` (models.objectives): what is
        differentiated, the model's scores by default. `rules`: an LRP composite (methods/lrp_rules.py); the
        gradients w.r.t. the input are then the relevance of each target for an output relevance of 1.
        `keep_on_device`: the caller reduces the arrays with the Trace's `ops`, so an adapter that keeps them on
        its device (torch on CUDA, see TorchNetwork.device_arrays) may return them there instead of as numpy."""
        check_objective(objective)
        if isinstance(objective, Custom):
            return self._custom_view(objective.fn).trace(x, targets, capture, wrt, relu, inject, rules=rules,
                                                         keep_on_device=keep_on_device)
        inject = inject or {}
        x = np.asarray(x, np.float32)
        self._traced_layers(x, targets, capture, wrt, relu, inject, objective)
        targets = self._pre_resolved(x, targets)
        size = self.batch_size
        parts = [
            self._trace_chunk(TraceRequest(
                x[s : s + size], targets if targets is None or callable(targets) else targets[s : s + size],
                tuple(capture), tuple(wrt), relu, objective,
                {name: np.asarray(value[s : s + size], np.float32) for name, value in sorted(inject.items())}, rules,
                keep_on_device))
            for s in range(0, len(x), size)
        ]
        return merge_traces(parts, capture, wrt)

    def split(self, layer: str) -> Split:
        """Cut the network at `layer` (see Split): the adapter's own rest of the network where it has one,
        else a full pass with the activation injected at the layer."""
        fast = self._fast_tail(layer)

        def tail(activation: np.ndarray, x: np.ndarray) -> np.ndarray:
            if fast is not None:
                return check_scores(fast(activation), len(activation))
            return self.trace(self._tail_inputs(x, len(activation)), inject={layer: activation}).logits

        return Split(tail=tail)

    @abc.abstractmethod
    def _predict_chunk(self, x: np.ndarray) -> np.ndarray:
        """Scores (n, classes) of one batch of model inputs, as numpy."""

    @abc.abstractmethod
    def _trace_chunk(self, request: TraceRequest) -> Trace:
        """One traced pass over one batch (see trace); the request is validated, its layers exist."""

    def _probe(self, shape: tuple[int, ...]) -> list[LayerInfo]:
        """LayerInfo of every layer for inputs of `shape`, from one forward pass (adapters with layers)."""
        raise NotImplementedError

    def _fast_tail(self, layer: str) -> Callable[[np.ndarray], np.ndarray] | None:
        """The network after `layer` as a function of its activation, or None (tails then run full passes)."""
        self.layer(layer)
        return None

    def _declared_input_shape(self) -> tuple[int, ...] | None:
        """The input shape (h, w, C) the model itself declares, if any."""
        return None

    def _probe_shape(self) -> tuple[int, ...]:
        """The input shape layers are probed at: the preprocessing's crop or size, input_size, or the model's own."""
        size = getattr(self.preprocess, "crop", None) or getattr(self.preprocess, "size", None)
        if size:
            return (size, size, 3)
        if self.input_size:
            return (*self.input_size, 3) if len(self.input_size) == 2 else tuple(self.input_size)
        declared = self._declared_input_shape()
        if declared is not None:
            return declared
        raise LayerError(
            f"cannot list the layers of {self.name} without an input size: pass input_size=(H, W) to wrap() "
            "(CLI: --input-size)"
        )

    def _pre_resolved(self, x: np.ndarray, targets: Targets) -> Targets:
        """Targets as the adapter can take them: ids, None, or callables it resolves in its own pass (any for
        eager adapters; TopK, checked against the class count, for `compiled_targets` ones)."""
        if targets is None or not callable(targets) or not self.compiled_targets:
            return targets
        if isinstance(targets, TopK):
            targets(np.zeros((1, self._class_count(x.shape[1:])), np.float32))
            return targets
        scores = self.predict(x)
        return check_ids(targets(scores), *scores.shape)

    def _class_count(self, shape: tuple[int, ...]) -> int:
        """How many scores the model outputs (one forward on zeros; adapters may read it from the model)."""
        return int(self.predict(np.zeros((1, *shape), np.float32)).shape[1])

    def _output_count(self, objective: Objective, shape: tuple[int, ...]) -> int:
        """How many scores the objective has: the scored layer's channels, or the model's classes."""
        layer = channel_layer(objective)
        if layer is None:
            return self._class_count(shape)
        out_shape = self.layer(layer, shape).output_shape
        if out_shape is None:
            raise LayerError(f"layer '{layer}' returns no tensor, so its channels cannot be scored; pick another layer")
        return out_shape[-1]

    def _objective_scores(self, objective: Objective, logits: Any, held: dict[str, Any]) -> Any:
        """What the pass differentiates (framework tensors): the scored layer's channels, the softmax of the
        logits, or the logits."""
        layer = channel_layer(objective)
        if layer is not None:
            return self._channel_scores(held[layer], isinstance(objective, ChannelMax))
        return self._probabilities(logits) if isinstance(objective, Softmax) else logits

    def _channel_scores(self, activation: Any, strongest: bool) -> Any:
        """A layer's channels as scores (N, C): mean over positions, or (`strongest`) the strongest unit."""
        raise NotImplementedError

    def _probabilities(self, logits: Any) -> Any:
        """Softmax over the classes, with the framework's ops."""
        raise NotImplementedError

    def _scores_of(self, out: Any) -> Any:
        """The scores (N, K) of a raw model output: the custom score function's, or the model's logits."""
        return self._logits_of(out) if self.score_function is None else self._custom_scores(out, self.tensor_type)

    def _logits_of(self, out: Any) -> Any:
        """The model's score tensor in its raw output (a tensor, or one inside a tuple or dict)."""
        raise NotImplementedError

    def _check_reached(self, names: Sequence[str], held: dict[str, Any]) -> None:
        """Refuse a pass that did not run one of the layers it needed."""
        missing = [name for name in names if name not in held]
        if missing:
            raise LayerError(f"layer '{missing[0]}' was not run by the model's forward pass")

    def rescored(self, score: ScoreFunction) -> Network:
        """This network with custom scores: `score(raw model output)` -> (N,) or (N, K), written with the
        framework's ops (e.g. a sum of classes, or one output of a multi-output model). Every primitive then
        sees those scores instead of the classes; the model itself is shared, not copied."""
        if not callable(score):
            raise MethodError(f"score_fn must be a function of the model's raw output. Received: {score!r}")
        view = copy.copy(self)
        view.score_function = score
        view.classes = None
        view._custom_views = {}
        view._forget_compiled()
        return view

    def _custom_view(self, fn: ScoreFunction) -> Network:
        """This network rescored by `fn` (for a Custom objective), kept per function so compiled steps are reused."""
        views = self.__dict__.setdefault("_custom_views", {})
        if fn not in views:
            views[fn] = self.rescored(fn)
        return views[fn]

    def attention(self, input_shape: tuple[int, ...] | None = None) -> AttentionView:
        """The attention probabilities of a vision transformer (see AttentionView), for attention_rollout and
        chefer; networks without attention layers heatlens can read refuse."""
        raise MethodError(f"{self.name} has no attention layers heatlens can read: attention_rollout and chefer "
                          "explain torch vision transformers (torchvision, timm or Hugging Face ViT / DeiT); pick "
                          "another method (see heatlens methods)")

    def parameter_layers(self, input_shape: tuple[int, ...] | None = None) -> list[str]:
        """The layers that hold parameters `randomised` can re-draw, in execution order (for the sanity checks)."""
        raise self._no_weights()

    def randomised(self, layers: Sequence[str], seed: int = 0) -> Network:
        """A NEW Network over a copy of the model where the parameters of `layers` (names from `parameter_layers`)
        are re-initialised, seeded; this network and the user's model are left untouched."""
        raise self._no_weights()

    def _no_weights(self) -> MethodError:
        """The error for adapters that cannot reach the model's weights."""
        return MethodError(f"{self.name} gives heatlens no access to its weights, so sanity checks cannot randomise "
                           "them; wrap the torch or Keras model itself")

    def _custom_scores(self, output: Any, kind: type) -> Any:
        """The score function applied to a model's raw output (a tensor, tuple or dict): its scores as (N, K)
        of `kind`, the framework's tensor type, so that gradients flow through it."""
        score = self.score_function
        if score is None:
            raise MethodError(f"{self.name} has no score function to apply (rescored() sets one)")
        try:
            scores: Any = score(output)
        except Exception as exc:
            raise ModelError(f"the score function {score_label(score)} failed on the model's output: "
                             f"{type(exc).__name__}: {first_line(exc)}") from exc
        shape = getattr(scores, "shape", None)
        framework_tensor = isinstance(scores, kind)
        if not framework_tensor or shape is None or len(shape) not in (1, 2):
            got = f"shape={tuple(shape)}" if framework_tensor and shape is not None else f"a {type(scores).__name__}"
            kind_name = f"{kind.__module__.partition('.')[0]}.{kind.__name__.rpartition('.')[2]}"  # jax.Array
            raise ModelError(f"the score function {score_label(score)} must return a {kind_name} of shape (N,) "
                             f"or (N, K), built with the framework's ops. Received: {got}")
        return scores[:, None] if len(shape) == 1 else scores

    def _independent(self, name: str) -> LayerError:
        """The error for scores that do not depend on `name` (no gradient path from it to the scores)."""
        if self.score_function is not None:
            return LayerError(f"the scores of {score_label(self.score_function)} do not depend on {name!r}: build "
                              "them from the model's output with the framework's ops")
        return LayerError(f"the scores do not depend on {name!r}: pick a layer on the path to the output")

    @staticmethod
    def _tail_inputs(x: np.ndarray, rows: int) -> np.ndarray:
        """The inputs a tail's full pass needs: `x` as given, or its single row repeated `rows` times."""
        return np.repeat(x, rows, axis=0) if len(x) == 1 and rows > 1 else x

    def _forget_compiled(self) -> None:  # noqa: B027 - optional hook; only compiling adapters need it
        """Drop whatever an adapter compiled for the old scores (after `rescored` copied it)."""

    def _traced_layers(self, x: np.ndarray, targets: Targets, capture: Sequence[str], wrt: Sequence[str],
                       relu: str, inject: dict[str, np.ndarray], objective: Objective) -> list[str]:
        """Validate a trace request before any work: every layer it names exists, the rules are known,
        and gradients have targets. Returns the layers involved."""
        scored = channel_layer(objective)
        names = list(dict.fromkeys([*capture, *(w for w in wrt if w != "input"), *inject,
                                    *([scored] if scored else [])]))
        for name in names:
            self.layer(name, np.shape(x)[1:])
        check_relu(relu)
        if wrt and targets is None:
            raise ValueError("trace() needs target class ids to take gradients")
        if targets is not None and not callable(targets):
            check_ids(targets, len(x), np.iinfo(np.int64).max)  # one row per input, K >= 1; ranges: the adapter
        return names

    def prepare(self, images: np.ndarray) -> np.ndarray:
        """Photos (N, H, W, 3) uint8 -> model inputs (N, h, w, C) float32, as the model was trained."""
        if self.preprocess is None:
            return images.astype(np.float32, copy=False)
        return self.preprocess(images)

    def input_box(self, height: int, width: int) -> Box:
        """Which box of an (height, width) photo the prepared model input covers."""
        box = getattr(self.preprocess, "input_box", None)
        return box(height, width) if box is not None else whole_image(height, width)

    def layer(self, name: str, input_shape: tuple[int, ...] | None = None) -> LayerInfo:
        """The LayerInfo for a dotted name; unknown names get an error listing close names."""
        infos = {info.name: info for info in self.layers(input_shape)}
        if name not in infos:
            if layer_position(name) is not None:
                raise LayerError(f"'{name}' is a layer position, not a name: resolve it first with "
                                 "network.resolve_layer (explain() and the CLI do)")
            raise LayerError(f"unknown layer '{name}' in {self.name}.{close_matches(name, infos)}"
                             " List them with `heatlens layers`")
        return infos[name]

    def layer_at(self, index: int, end: str, input_shape: tuple[int, ...] | None = None) -> str:
        """The name of the layer whose output is `model.layers[index].input` or `.output` ('input' / 'output'
        is `end`), in the framework's own top-level layer list. Adapters that have one override this; the
        order of `layers()` is no such list (it leaves out Keras' InputLayer and is torch's call order)."""
        raise LayerError(f"{self.name} cannot find layers by position (layers[{index}].{end}); name the layer "
                         "instead (see `heatlens layers`)")

    def resolve_layer(self, layer: Any, input_shape: tuple[int, ...] | None = None) -> Any:
        """`layer` (a name, a list of names or None) with every position ('layers[7].input') replaced by the
        name of the layer whose output it is; names and anything else pass through unchanged."""
        if isinstance(layer, str):
            return self._resolved(layer, input_shape)
        if isinstance(layer, list | tuple):
            return type(layer)(self._resolved(name, input_shape) if isinstance(name, str) else name for name in layer)
        return layer

    def _resolved(self, name: str, input_shape: tuple[int, ...] | None) -> str:
        position = layer_position(name)
        if position is None:
            return name
        known = {info.name for info in self.layers(input_shape)}
        if name in known:  # a layer really named so
            return name
        resolved = self.layer_at(*position, input_shape)
        if resolved not in known:
            raise LayerError(f"{name} is '{resolved}', which runs in no forward pass of {self.name}; name a layer "
                             "from `heatlens layers`")
        log.info("layer %s of %s is '%s'", name, self.name, resolved)
        return resolved

    def default_layer(self, input_shape: tuple[int, ...] | None = None) -> str:
        """The CAM methods' default (models/layer_choice.py): the last spatial layer before global pooling, or
        for vision transformers the last token layer whose patch tokens reach the scores. Chosen once per
        input shape (a token model's choice takes one gradient pass)."""
        shape = tuple(input_shape) if input_shape is not None else self._probe_shape()
        chosen = self.__dict__.setdefault("_default_layers", {})
        if shape not in chosen:
            chosen[shape] = layer_choice.default_layer(self, shape)
        return chosen[shape]

    def spatial_layer(self, name: str | None, input_shape: tuple[int, ...] | None = None,
                      tokens: bool = False) -> str:
        """Validate a layer for CAM methods (default when None): it must exist and be spatial, or with
        `tokens` a (T, C) token sequence (laid out on a grid by the method)."""
        if name is None:
            return self._spatial_default(input_shape, tokens)
        name = self.resolve_layer(name, input_shape)
        info = self.layer(name, input_shape)
        is_sequence = info.output_shape is not None and len(info.output_shape) == 2
        if not (info.spatial or (tokens and is_sequence)):
            raise LayerError(
                f"layer '{name}' ({info.kind}) has output shape {info.output_shape}, not a spatial (h, w, C) "
                f"map; pick a convolutional layer, e.g. '{self._spatial_default(input_shape, tokens)}'"
            )
        return name

    def _spatial_default(self, input_shape: tuple[int, ...] | None, tokens: bool) -> str:
        """The default layer, or for methods that take no token layer (`tokens` False) the last spatial one."""
        default = self.default_layer(input_shape)
        if tokens or self.layer(default, input_shape).spatial:
            return default
        spatial = layer_choice.spatial_default(self.layers(input_shape))
        if spatial is None:
            raise LayerError(f"{self.name} has no layer with a spatial (h, w, C) output, and this method takes no "
                             "token layer")
        return spatial
