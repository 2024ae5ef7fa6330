"""The fuzz campaigns' models: tiny torch and Keras classifiers and predict functions, well-behaved and not,
and snapshots of everything a call must leave as it was (weights, modes, gradients, hooks, attributes).

Each Adapter builds its model once per session (again only after a case changed it) and wraps it two ways:
'raw' (preprocess=None: model-ready floats) and 'photo' (a tiny resize-and-crop from uint8 photos).
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import heatlens
from heatlens.preprocess import ResizeCrop

NAMES = ["zero", "one", "two", "tabby cat"]
TORCH_HOOK_DICTS = (
    "_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
    "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs",
    "_state_dict_hooks", "_state_dict_pre_hooks", "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks",
)


@dataclass(repr=False)
class Adapter:
    """A model the campaigns explain: how to build it, what it can serve, and how to snapshot it."""

    name: str
    family: str  # torch | keras | predict
    build: Callable[[], Any]
    serves_all: bool = False  # every method the family supports must work on valid inputs
    classes: list[str] | None = None
    size: int = 16  # the input side the model needs (raw inputs of another size may be refused)
    any_size: bool = True  # raw inputs of any size work
    stochastic: bool = False  # dropout in train mode: every ok case is run twice and compared
    _model: Any = field(default=None, repr=False)
    _networks: dict[str, Any] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        return self.name

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = self.build()
        return self._model

    def network(self, mode: str) -> Any:
        """The model wrapped for `mode` ('raw' or 'photo'); wrapping errors surface in the case that asks."""
        if mode not in self._networks:
            preprocess = None if mode == "raw" else ResizeCrop(resize=self.size + 2, crop=self.size)
            self._networks[mode] = heatlens.wrap(self.model, preprocess=preprocess, classes=self.classes,
                                                 name=self.name)
        return self._networks[mode]

    def reset(self) -> None:
        """Forget the model and its networks (after a case changed them), so later cases start clean."""
        self._model = None
        self._networks.clear()

    def state(self) -> dict[str, Any]:
        if self.family == "torch":
            return torch_state(self.model)
        if self.family == "keras":
            return keras_state(self.model)
        return {"predict weights": PREDICT_WEIGHTS.copy()}


def first_difference(before: dict[str, Any], after: dict[str, Any]) -> str | None:
    """The first key whose value differs between two snapshots (None when they are equal)."""
    for key in before.keys() | after.keys():
        if key not in before or key not in after:
            return f"{key} {'appeared' if key in after else 'disappeared'}"
        if not _same(before[key], after[key]):
            return f"{key} changed"
    return None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and a.tobytes() == b.tobytes())
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def global_state() -> dict[str, Any]:
    """Process-wide state a call must restore: RNGs, numpy error modes, torch's grad mode, global hooks,
    patched functions and precision flags, Keras' float type and eager switch."""
    state: dict[str, Any] = {
        "numpy.random": repr(np.random.get_state()[1][:8].tolist()) + str(np.random.get_state()[2]),
        "random": random.getstate()[1][:8],
        "numpy.errstate": tuple(sorted(np.geterr().items())),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        from torch.nn import functional
        from torch.nn.modules import module

        state.update({
            "torch.grad_enabled": torch.is_grad_enabled(),
            "torch.inference_mode": torch.is_inference_mode_enabled(),
            "torch.rng": torch.get_rng_state().numpy(),
            "torch.default_dtype": str(torch.get_default_dtype()),
            "torch.deterministic": torch.are_deterministic_algorithms_enabled(),
            "torch.tf32": (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32),
            "torch.functions": tuple(id(f) for f in (functional.relu, functional.relu6, functional.relu_,
                                                     torch.relu, torch.relu_, torch.nn.ReLU.forward,
                                                     torch.nn.ReLU6.forward, torch.Tensor.relu)),
            "torch.global_hooks": tuple(len(getattr(module, name, {})) for name in (
                "_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
                "_global_backward_pre_hooks")),
        })
    keras = sys.modules.get("keras")
    if keras is not None:
        state["keras.config"] = (keras.config.floatx(), keras.config.dtype_policy().name)
        tf = sys.modules.get("tensorflow")
        if tf is not None:
            state["tf.run_eagerly"] = tf.config.functions_run_eagerly()
    return state


def torch_state(model: Any) -> dict[str, Any]:
    """Every module's mode, attribute names, hooks and registered names; every tensor's value, flags, grad."""
    state: dict[str, Any] = {}
    for name, mod in model.named_modules(remove_duplicate=False):
        where = name or "<root>"
        state[f"{where}: training"] = mod.training
        state[f"{where}: attributes"] = tuple(sorted(vars(mod)))
        state[f"{where}: forward"] = id(vars(mod).get("forward"))
        state[f"{where}: class forward"] = id(type(mod).forward)
        for hooks in TORCH_HOOK_DICTS:
            held = getattr(mod, hooks, None)
            if held is not None:
                state[f"{where}: {hooks}"] = tuple((k, id(v)) for k, v in held.items())
        for kind in ("_parameters", "_buffers", "_modules"):
            state[f"{where}: {kind}"] = tuple(getattr(mod, kind))
    for name, p in model.named_parameters(remove_duplicate=False):
        state[f"parameter {name}"] = p.detach().cpu().numpy().copy()
        state[f"parameter {name}: flags"] = (p.requires_grad, str(p.dtype), p.is_leaf, p.data_ptr())
        state[f"parameter {name}: .grad"] = None if p.grad is None else p.grad.detach().cpu().numpy().copy()
        state[f"parameter {name}: tensor hooks"] = (len(p._backward_hooks or {}),
                                                     len(getattr(p, "_post_accumulate_grad_hooks", None) or {}))
    for name, b in model.named_buffers(remove_duplicate=False):
        state[f"buffer {name}"] = b.detach().cpu().numpy().copy()
    return state


def keras_state(model: Any) -> dict[str, Any]:
    """Every layer's name, trainable flag, attribute names, patched call/activation and graph nodes; weights."""
    state: dict[str, Any] = {"model: compiled": getattr(model, "compiled", None),
                             "model: layers": tuple(layer.name for layer in model.layers)}
    for layer in model._flatten_layers(include_self=True, recursive=True):
        where = f"layer {layer.name}"
        state[f"{where}: trainable"] = layer.trainable
        state[f"{where}: attributes"] = tuple(sorted(vars(layer)))
        state[f"{where}: call"] = id(vars(layer).get("call"))
        state[f"{where}: activation"] = id(getattr(layer, "activation", None))
        state[f"{where}: nodes"] = (len(getattr(layer, "_inbound_nodes", ())),
                                    len(getattr(layer, "_outbound_nodes", ())))
    for i, w in enumerate(model.weights):
        state[f"weight {i} {w.path}"] = np.asarray(w.numpy()).copy()
        state[f"weight {i} {w.path}: trainable"] = w.trainable
    return state


# ---------------------------------------------------------------- torch models

def _torch_models() -> list[Adapter]:
    import torch
    from torch import nn
    from torch.nn import functional
    from toy_models import FlattenHead, TinyCNN

    def seeded(make: Callable[[], nn.Module], train: bool = False) -> Callable[[], nn.Module]:
        def build() -> nn.Module:
            torch.manual_seed(0)
            return make().train(train)
        return build

    class InputInPlace(TinyCNN):
        """Writes into its own input first (F.relu(x, inplace=True)), as some user models do."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(functional.relu(x, inplace=True))

    class FunctionalDropout(TinyCNN):
        """Functional dropout that follows the module's training flag."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = functional.dropout(self.features(x), 0.5, self.training)
            return self.fc(torch.flatten(self.pool(h), 1))

    class BatchNormNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                          nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(8, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.flatten(self.pool(self.features(x)), 1))

    def frozen_with_grads_and_hooks() -> nn.Module:
        torch.manual_seed(0)
        model = TinyCNN().eval()
        for p in model.features.parameters():
            p.requires_grad_(False)
        model.fc.weight.grad = torch.ones_like(model.fc.weight)
        model.features[1].register_forward_hook(lambda mod, inp, out: None)
        model.register_forward_pre_hook(lambda mod, inp: None)
        return model

    class NoReLU(TinyCNN):
        def __init__(self) -> None:
            super().__init__()
            self.features[1] = nn.Tanh()
            self.features[3] = nn.Sigmoid()

    class Tokens(nn.Module):
        """A tiny ViT-like net: 4x4 patches -> tokens (N, 1 + 16, C) with a class token -> mixing -> linear."""

        def __init__(self) -> None:
            super().__init__()
            self.patch = nn.Conv2d(3, 8, 4, stride=4)
            self.cls = nn.Parameter(torch.zeros(1, 1, 8))
            self.mix = nn.Linear(8, 8)
            self.act = nn.ReLU()
            self.fc = nn.Linear(8, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            t = self.patch(x).flatten(2).transpose(1, 2)
            t = torch.cat([self.cls.expand(len(t), -1, -1), t], dim=1)
            return self.fc(self.act(self.mix(t)).mean(1))

    class SqrtActivations(TinyCNN):
        """sqrt of ReLU outputs: infinite gradients where an activation is exactly 0."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.flatten(self.pool(torch.sqrt(self.features(x))), 1))

    class Misbehaving(TinyCNN):
        """TinyCNN whose output is spoilt by `how`."""

        def __init__(self, how: str) -> None:
            super().__init__()
            self.how = how

        def forward(self, x: torch.Tensor) -> Any:
            out = super().forward(x)
            how = self.how
            if how == "assert":
                raise AssertionError("expected a batch of 224 x 224 images")
            if how == "custom":
                raise type("ModelFailure", (Exception,), {})("the model failed\n  at layer 3\n  in block 2")
            if how == "runtime":
                raise RuntimeError("CUDA error: device-side assert triggered")
            return {
                "one_row": lambda: out[:1], "extra_row": lambda: torch.cat([out, out[:1]]),
                "nan": lambda: out * float("nan"), "inf": lambda: out + torch.tensor([0, float("inf"), 0, 0]),
                "tuple": lambda: (out, out.sum()), "dict": lambda: {"logits": out, "aux": out * 2},
                "one_d": lambda: out.sum(1), "int": lambda: out.round().long(), "three_d": lambda: out[:, :, None],
                "zero_classes": lambda: out[:, :0], "huge": lambda: out * 1e38, "list": lambda: [out],
                "numpy": lambda: out.detach().numpy(), "none": lambda: None,
            }[how]()

    class Mlp(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(16 * 16 * 3, 16), nn.ReLU(), nn.Linear(16, 4))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

    adapters = [
        Adapter("torch_tiny", "torch", seeded(TinyCNN), serves_all=True),
        Adapter("torch_named", "torch", seeded(TinyCNN), serves_all=True, classes=NAMES),
        Adapter("torch_relu_inplace_train", "torch", seeded(lambda: TinyCNN(inplace=True), train=True),
                serves_all=True),
        Adapter("torch_input_inplace", "torch", seeded(InputInPlace), serves_all=True),
        Adapter("torch_dropout_train", "torch", seeded(FunctionalDropout, train=True), serves_all=True,
                stochastic=True),
        Adapter("torch_batchnorm_train", "torch", seeded(BatchNormNet, train=True), serves_all=True),
        Adapter("torch_frozen_grads_hooks", "torch", frozen_with_grads_and_hooks, serves_all=True),
        Adapter("torch_1000_classes", "torch", seeded(lambda: TinyCNN(classes=1000)), serves_all=True),
        Adapter("torch_no_relu", "torch", seeded(NoReLU)),
        Adapter("torch_flatten_head", "torch", seeded(lambda: FlattenHead(classes=4, size=6)), size=6,
                any_size=False),
        Adapter("torch_mlp", "torch", seeded(Mlp), any_size=False),
        Adapter("torch_tokens", "torch", seeded(Tokens), any_size=False),
        Adapter("torch_sqrt", "torch", seeded(SqrtActivations)),
        Adapter("torch_double", "torch", seeded(lambda: TinyCNN().double())),
    ]
    for how in ("assert", "custom", "runtime", "one_row", "extra_row", "nan", "inf", "tuple", "dict", "one_d",
                "int", "three_d", "zero_classes", "huge", "list", "numpy", "none"):
        adapters.append(Adapter(f"torch_out_{how}", "torch", seeded(lambda how=how: Misbehaving(how))))
    return adapters


# ---------------------------------------------------------------- Keras models

def _keras_models() -> list[Adapter]:
    import keras
    from keras_models import small_cnn

    def seeded(make: Callable[[], Any]) -> Callable[[], Any]:
        def build() -> Any:
            keras.utils.set_random_seed(0)
            return make()
        return build

    def tanh_cnn() -> Any:
        inputs = keras.Input((16, 16, 3))
        x = keras.layers.Conv2D(8, 3, padding="same", activation="tanh", name="conv1")(inputs)
        x = keras.layers.Conv2D(8, 3, padding="same", activation="sigmoid", name="conv2")(x)
        x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
        return keras.Model(inputs, keras.layers.Dense(4, name="fc")(x))

    def dropout_bn() -> Any:
        inputs = keras.Input((16, 16, 3))
        x = keras.layers.Conv2D(8, 3, padding="same", name="conv1")(inputs)
        x = keras.layers.BatchNormalization(name="bn1")(x)
        x = keras.layers.ReLU(name="act1")(x)
        x = keras.layers.Dropout(0.5, name="drop")(x)
        x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2")(x)
        x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
        return keras.Model(inputs, keras.layers.Dense(4, name="fc")(x))

    def nan_output() -> Any:
        model = small_cnn("nan_output")
        fc = model.get_layer("fc")
        fc.set_weights([np.full_like(w, np.nan) for w in fc.get_weights()])
        return model

    class Misbehaving(keras.Model):
        """A subclassed model whose call spoils the small CNN's output by `how`."""

        def __init__(self, how: str) -> None:
            super().__init__(name=f"misbehaving_{how}")
            self.how = how
            self.armed = False  # built first, spoilt after
            self.body = small_cnn("body")

        def call(self, x: Any) -> Any:
            out = self.body(x)
            if not self.armed:
                return out
            if self.how == "assert":
                raise AssertionError("expected a batch of 224 x 224 images")
            return {"one_row": lambda: out[:1], "inf": lambda: out + np.float32(np.inf),
                    "one_d": lambda: keras.ops.sum(out, axis=1)}[self.how]()

    def misbehaving(how: str) -> Callable[[], Any]:
        def build() -> Any:
            model = Misbehaving(how)
            model(np.zeros((1, 16, 16, 3), np.float32))
            model.armed = True
            return model
        return build

    return [
        Adapter("keras_small", "keras", seeded(small_cnn), serves_all=True, any_size=False),
        Adapter("keras_named", "keras", seeded(small_cnn), serves_all=True, classes=NAMES, any_size=False),
        Adapter("keras_dropout_bn", "keras", seeded(dropout_bn), serves_all=True, any_size=False),
        Adapter("keras_no_relu", "keras", seeded(tanh_cnn), any_size=False),
        Adapter("keras_nan", "keras", seeded(nan_output), any_size=False),
        *(Adapter(f"keras_out_{how}", "keras", seeded(misbehaving(how)), any_size=False)
          for how in ("assert", "one_row", "inf", "one_d")),
    ]


# ---------------------------------------------------------------- predict functions

PREDICT_WEIGHTS = np.random.default_rng(7).standard_normal((3, 4)).astype(np.float32)


def _predict_functions() -> list[Adapter]:
    weights = PREDICT_WEIGHTS

    def scores(x: np.ndarray) -> np.ndarray:
        """Size-agnostic scores: a centre-weighted mean of a per-pixel linear map, squashed."""
        h, w = x.shape[1:3]
        yy, xx = np.mgrid[0:h, 0:w]
        centre = np.exp(-(((yy - h / 3) / max(h, 1)) ** 2 + ((xx - w / 2) / max(w, 1)) ** 2) * 4)
        per_pixel = x[..., :3] @ weights if x.shape[-1] >= 3 else np.repeat(x[..., :1], 4, -1)
        return np.tanh((per_pixel * centre[None, :, :, None]).mean(axis=(1, 2))).astype(np.float32)

    def multi_line(x: np.ndarray) -> np.ndarray:
        raise ValueError("the service said no\nTraceback (most recent call last):\n  File 'server.py'")

    def writes_input(x: np.ndarray) -> np.ndarray:
        x *= 0.5
        x[:, 0] = 0
        return scores(x)

    def torch_with_grad(x: np.ndarray) -> Any:
        import torch

        return torch.tensor(scores(x), requires_grad=True) * 2

    def ragged(x: np.ndarray) -> list:
        s = scores(x).tolist()
        return [row[: 4 - i % 2] for i, row in enumerate(s)]

    behaviours: dict[str, Callable[[np.ndarray], Any]] = {
        "list": lambda x: scores(x).tolist(),
        "float64": lambda x: scores(x).astype(np.float64),
        "float16": lambda x: scores(x).astype(np.float16),
        "int": lambda x: (scores(x) * 100).astype(np.int64),
        "strings": lambda x: scores(x).astype(str),
        "ragged": ragged,
        "complex": lambda x: scores(x) + 1j * scores(x),
        "torch_requires_grad": torch_with_grad,
        "one_row": lambda x: scores(x)[:1],
        "extra_row": lambda x: np.concatenate([scores(x), scores(x)[:1]]),
        "nan": lambda x: scores(x) * np.nan,
        "inf": lambda x: scores(x) + np.array([0, np.inf, 0, 0], np.float32),
        "huge": lambda x: scores(x) * np.float32(3e38),
        "one_d": lambda x: scores(x).sum(1),
        "three_d": lambda x: scores(x)[:, :, None],
        "zero_classes": lambda x: scores(x)[:, :0],
        "none": lambda x: None,
        "dict": lambda x: {"scores": scores(x)},
        "object": lambda x: np.array([object()] * len(x)),
        "raises_multiline": multi_line,
        "raises_keyerror": lambda x: {}["input"],
        "writes_input": writes_input,
    }
    adapters = [
        Adapter("predict_linear", "predict", lambda: scores, serves_all=True),
        Adapter("predict_named", "predict", lambda: scores, serves_all=True, classes=NAMES),
    ]
    for how, fn in behaviours.items():
        adapters.append(Adapter(f"predict_{how}", "predict", lambda fn=fn: fn,
                                serves_all=how in ("list", "float64", "writes_input")))
    return adapters


def adapters(family: str) -> list[Adapter]:
    """The family's adapters, built lazily (a family whose framework is missing gives an empty list)."""
    try:
        return {"torch": _torch_models, "keras": _keras_models, "predict": _predict_functions}[family]()
    except ImportError:
        return []
