"""Layer-wise relevance propagation rules and composites, framework-free: what each linear layer does with
the relevance R_j arriving at its outputs z_j = sum_i x_i w_ij + b_j. The adapters (models/adapters/lrp_*.py)
implement the formulas; here they are described, named, mapped to layers and checked.

Notation: x+ = max(x, 0), x- = min(x, 0), w+ / w- likewise; stab(v) = v + s * sign(v) (sign(0) = 1) with the
rule's small stabiliser s; sums run over a layer's inputs i and outputs j. The composites carry zennit's names
and meanings (Anders et al. 2021, Software for dataset-wide XAI); where a rule needs the input's bounds (z-box),
they come from the model's preprocessing.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import ClassVar

from ..errors import MethodError, close_matches

ROLES = ("conv", "dense")  # what an adapter says a linear layer is: a convolution, or a dense (fully connected) one
STABILISER = 1e-6


@dataclass(frozen=True)
class Rule:
    """A rule for one linear layer; `stabilizer` keeps its denominators away from zero. `formula` tells the
    adapters which computation it is (they read the rule's fields, and import nothing from here)."""

    formula: ClassVar[str] = ""
    stabilizer: float = STABILISER


@dataclass(frozen=True)
class Zero(Rule):
    """LRP-0 (Bach et al. 2015, On Pixel-Wise Explanations): R_i = sum_j x_i w_ij / z_j R_j (0 where z_j = 0)."""

    formula: ClassVar[str] = "epsilon"

    stabilizer: float = 0.0
    epsilon: ClassVar[float] = 0.0


@dataclass(frozen=True)
class Epsilon(Rule):
    """LRP-epsilon (Bach et al. 2015): R_i = sum_j x_i w_ij / (z_j + epsilon sign(z_j)) R_j."""

    formula: ClassVar[str] = "epsilon"

    epsilon: float = STABILISER


@dataclass(frozen=True)
class Gamma(Rule):
    """LRP-gamma (Montavon et al. 2019, Layer-Wise Relevance Propagation: An Overview), generalised to signed
    inputs as zennit does: for z_j > 0, R_i = sum_j (x+_i (w_ij + gamma w+_ij) + x-_i (w_ij + gamma w-_ij)) /
    stab(z+_j) R_j, and the mirror image with the roles of w+ and w- swapped for z_j < 0."""

    formula: ClassVar[str] = "gamma"

    gamma: float = 0.25


@dataclass(frozen=True)
class AlphaBeta(Rule):
    """LRP-alpha-beta (Bach et al. 2015): R_i = sum_j (alpha (x+ w+ + x- w-)_ij / stab(z+_j) - beta (x+ w- + x- w+)_ij
    / stab(z-_j)) R_j, alpha - beta = 1; z+_j / z-_j sum the positive / negative contributions with b+ / b-."""

    formula: ClassVar[str] = "alpha_beta"

    alpha: float = 2.0
    beta: float = 1.0


@dataclass(frozen=True)
class ZPlus(Rule):
    """LRP-z+ (Montavon et al. 2017, Explaining nonlinear classification decisions with deep Taylor decomposition):
    R_i = sum_j (x+_i w+_ij + x-_i w-_ij) / stab(z+_j) R_j, i.e. alpha1-beta0."""

    formula: ClassVar[str] = "alpha_beta"
    alpha: ClassVar[float] = 1.0
    beta: ClassVar[float] = 0.0


@dataclass(frozen=True)
class Flat(Rule):
    """LRP-flat (Lapuschkin et al. 2019, Unmasking Clever Hans predictors): R_i = sum_j 1 / stab(sum_i' 1) R_j over
    each output's receptive field: relevance spread evenly, whatever the input and the weights."""

    formula: ClassVar[str] = "flat"


@dataclass(frozen=True)
class WSquare(Rule):
    """LRP-w^2 (Montavon et al. 2017): R_i = sum_j w_ij^2 / stab(sum_i' w_i'j^2) R_j, for unbounded inputs (no bias)."""

    formula: ClassVar[str] = "wsquare"


@dataclass(frozen=True)
class ZBox(Rule):
    """LRP-z^B (Montavon et al. 2017), for inputs bounded in [l, h]: R_i = sum_j (x_i w_ij - l_i w+_ij - h_i w-_ij) /
    stab(sum_i' (x w - l w+ - h w-)_i'j) R_j; `low` / `high` per input channel, from the preprocessing when None."""

    formula: ClassVar[str] = "zbox"

    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None


RULE_NAMES: dict[str, Rule] = {
    "lrp0": Zero(), "zero": Zero(), "epsilon": Epsilon(), "gamma": Gamma(),
    "alpha1_beta0": AlphaBeta(alpha=1.0, beta=0.0), "alpha2_beta1": AlphaBeta(alpha=2.0, beta=1.0),
    "zplus": ZPlus(), "flat": Flat(), "wsquare": WSquare(), "zbox": ZBox(), "zbeta": ZBox(),
}


@dataclass(frozen=True)
class Composite:
    """Which rule each linear layer gets: the first entry of `mapping` (a layer kind, exactly, or a glob of layer
    names) that matches the layer, else `first` for the first layer (in execution order) whose role is in
    `first_roles`, else the rule of its role. Activations pass relevance through, sums and average pools
    split it in proportion to their inputs (stabilised by `stabilizer`), and batch norms are merged into the
    linear layer before them."""

    name: str
    conv: Rule
    dense: Rule
    first: Rule | None = None
    first_roles: tuple[str, ...] = ("conv",)
    mapping: tuple[tuple[str, Rule], ...] = field(default=())
    stabilizer: float = STABILISER  # of the proportional splits at sums and average pools

    def rule_for(self, name: str, kind: str, role: str, first: bool) -> Rule:
        """The rule of one linear layer: `kind` is its class name, `role` 'conv' or 'dense', `first` whether no
        layer of `first_roles` ran before it."""
        for pattern, rule in self.mapping:
            if pattern == kind or fnmatch.fnmatchcase(name, pattern):
                return rule
        if first and self.first is not None and role in self.first_roles:
            return self.first
        return self.conv if role == "conv" else self.dense

    def counts_as_first(self, role: str) -> bool:
        """Whether a layer of `role` takes the first-layer rule when no such layer ran before it."""
        return self.first is not None and role in self.first_roles

    @property
    def rules(self) -> tuple[Rule, ...]:
        """Every rule the composite can hand out."""
        return (self.conv, self.dense, *([self.first] if self.first else []), *(rule for _, rule in self.mapping))

    def bounded(self, low: tuple[float, ...], high: tuple[float, ...]) -> Composite:
        """This composite with every z-box rule that has no bounds given `low` and `high`."""

        def fill(rule: Rule) -> Rule:
            return replace(rule, low=low, high=high) if isinstance(rule, ZBox) and rule.low is None else rule

        return replace(self, conv=fill(self.conv), dense=fill(self.dense),
                       first=None if self.first is None else fill(self.first),
                       mapping=tuple((pattern, fill(rule)) for pattern, rule in self.mapping))


COMPOSITES = ("epsilon_plus", "epsilon_gamma_box", "epsilon_alpha2_beta1", "epsilon_plus_flat")


def named_composite(name: str, epsilon: float = STABILISER, gamma: float = 0.25,
                    stabilizer: float = STABILISER) -> Composite:
    """zennit's composites by name: z+ / gamma / alpha2-beta1 on convolutions, epsilon on dense layers, and for
    `_box` z-box on the first convolution, for `_flat` the flat rule on the first linear layer."""
    dense, s = Epsilon(epsilon=epsilon), stabilizer
    if name == "epsilon_plus":
        return Composite(name, ZPlus(stabilizer=s), dense, stabilizer=s)
    if name == "epsilon_gamma_box":
        return Composite(name, Gamma(stabilizer=s, gamma=gamma), dense, first=ZBox(stabilizer=s), stabilizer=s)
    if name == "epsilon_alpha2_beta1":
        return Composite(name, AlphaBeta(stabilizer=s, alpha=2.0, beta=1.0), dense, stabilizer=s)
    if name == "epsilon_plus_flat":
        return Composite(name, ZPlus(stabilizer=s), dense, first=Flat(stabilizer=s), first_roles=ROLES,
                         stabilizer=s)
    raise MethodError(f"unknown LRP composite '{name}'.{close_matches(name, COMPOSITES)} Use one of "
                      f"{', '.join(COMPOSITES)}, or a mapping {{layer kind or name pattern: rule}}")


def as_rule(value: object, key: str, **parameters: float) -> Rule:
    """A rule from a Rule object, or from its name (see RULE_NAMES) with the `parameters` it has (epsilon, gamma,
    stabilizer; LRP-0 keeps no stabiliser)."""
    if isinstance(value, Rule):
        return value
    if isinstance(value, str) and value.strip().lower().replace("-", "_") in RULE_NAMES:
        rule = RULE_NAMES[value.strip().lower().replace("-", "_")]
        fields = {f.name for f in dataclasses.fields(rule)} - ({"stabilizer"} if isinstance(rule, Zero) else set())
        return replace(rule, **{k: v for k, v in parameters.items() if k in fields})
    raise MethodError(f"the LRP rule for '{key}' must be a rule name ({', '.join(RULE_NAMES)}) or a rule from "
                      f"heatlens.methods.lrp_rules. Received: {value!r}")


def user_composite(mapping: Mapping[str, object], layers: Sequence[tuple[str, str]], epsilon: float = STABILISER,
                   gamma: float = 0.25, stabilizer: float = STABILISER) -> Composite:
    """A composite from {layer kind or name pattern: rule}, checked against the network's (name, kind) pairs:
    each key must match a layer. Rules given by name take epsilon, gamma and stabilizer; linear layers that no
    key matches get LRP-0."""
    if not mapping:
        raise MethodError("composite={} maps no layer to a rule; give {layer kind or name pattern: rule}")
    entries = []
    names, kinds = [name for name, _ in layers], {kind for _, kind in layers}
    for pattern, value in mapping.items():
        if not isinstance(pattern, str):
            raise MethodError(f"LRP composite keys are layer kinds or name patterns (strings). Received: {pattern!r}")
        if pattern not in kinds and not fnmatch.filter(names, pattern):
            raise MethodError(f"'{pattern}' in the LRP composite is neither a layer kind nor matches a layer name."
                              f"{close_matches(pattern, [*kinds, *names])} See `heatlens layers`")
        entries.append((pattern, as_rule(value, pattern, epsilon=epsilon, gamma=gamma, stabilizer=stabilizer)))
    return Composite("custom", Zero(), Zero(), mapping=tuple(entries), stabilizer=stabilizer)


def check_rule(rule: Rule) -> None:
    """Refuse parameters a rule cannot work with, before any work."""
    if not rule.stabilizer >= 0:
        raise MethodError(f"the LRP stabilizer must be >= 0. Received: {rule.stabilizer!r}")
    if isinstance(rule, Epsilon) and not rule.epsilon >= 0:
        raise MethodError(f"epsilon must be >= 0. Received: {rule.epsilon!r}")
    if isinstance(rule, Gamma) and not rule.gamma >= 0:
        raise MethodError(f"gamma must be >= 0. Received: {rule.gamma!r}")
    if isinstance(rule, AlphaBeta) and (min(rule.alpha, rule.beta) < 0 or abs(rule.alpha - rule.beta - 1) > 1e-9):
        raise MethodError(f"alpha-beta needs alpha, beta >= 0 and alpha - beta = 1. Received: alpha={rule.alpha!r}, "
                          f"beta={rule.beta!r}")
    if isinstance(rule, ZBox) and rule.low is not None and rule.high is not None \
            and any(lo > hi for lo, hi in zip(rule.low, rule.high, strict=True)):
        raise MethodError(f"z-box bounds need low <= high per channel. Received: low={rule.low}, high={rule.high}")
