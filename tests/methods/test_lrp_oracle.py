"""LRP against two independent implementations on torchvision networks with random weights. `make test` requires
both (HEATLENS_ORACLES=required: a missing oracle fails, not skips).

zennit (Anders et al. 2021), VGG16 and ResNet-18: the same composite gives the same relevance, to 1e-5 of its peak.
zennit's canonizer leaves each merged batch norm dividing by sqrt(1 + eps); the ResNet's batch norms get eps=0 here
so that both merges are exact.

captum's `LRP`, VGG16 only (on ResNet-18 it breaks conservation, so it is no oracle there), for the rules both
define, given the same rule per layer: relevance equal to 1e-5 of its peak. Where the definitions part, the case
keeps out of the difference, and says so:
- captum's LRP-0 is its epsilon rule with epsilon=0; its stabiliser elsewhere is 1e-9 (heatlens stabilizer=1e-9);
- its gamma and alpha1-beta0 change the weights only and apply them to the signed input as it is (x w+), where
  heatlens, as zennit, splits x+ and x- and boosts (gamma) or keeps only the positive part of (z+) the bias: the
  first convolution, the only one that sees signed inputs, gets epsilon on both sides; the gamma case has the
  convolutions' biases at 0 (torchvision's initialisation), the alpha1-beta0 case all biases >= 0;
- it treats max and adaptive average pools with its epsilon rule (stabiliser 1e-9): winner takes all and a
  proportional split, as heatlens does; ReLU and dropout pass relevance through.
Its relevance is normalised to sum 1 and then multiplied by the target's logit, as ours is scaled to the score."""

from __future__ import annotations

import os

import numpy as np
import pytest

import heatlens

if os.environ.get("HEATLENS_ORACLES") == "required":  # set by `make test`: a broken oracle env must fail
    import captum
    import torch
    import torchvision
    import zennit
else:
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    zennit = pytest.importorskip("zennit")
    captum = pytest.importorskip("captum")
from captum.attr import LRP
from captum.attr._utils.lrp_rules import Alpha1_Beta0_Rule, EpsilonRule, GammaRule
from zennit.attribution import Gradient
from zennit.composites import EpsilonAlpha2Beta1, EpsilonGammaBox, EpsilonPlus, EpsilonPlusFlat
from zennit.torchvision import ResNetCanonizer, VGGCanonizer

LOW, HIGH = -2.0, 2.5
CAPTUM_STABILISER = 1e-9  # captum's PropagationRule.STABILITY_FACTOR, used by its gamma and alpha1-beta0 rules
EPSILON = 0.01


def zennit_composite(name: str, canonizers: list) -> object:
    if name == "epsilon_gamma_box":
        return EpsilonGammaBox(low=torch.full((1, 3, 1, 1), LOW), high=torch.full((1, 3, 1, 1), HIGH),
                               canonizers=canonizers)
    return {"epsilon_plus": EpsilonPlus, "epsilon_alpha2_beta1": EpsilonAlpha2Beta1,
            "epsilon_plus_flat": EpsilonPlusFlat}[name](canonizers=canonizers)


def resnet18() -> torch.nn.Module:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eps = 0.0
                m.running_mean.uniform_(-0.2, 0.2), m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.2, 0.2)
    return model


def vgg16(conv_bias: tuple[float, float] = (0.0, 0.0), dense_bias: tuple[float, float] = (0.0, 0.0)) -> torch.nn.Module:
    """torchvision's VGG16 with random weights and, unlike its initialisation, biases drawn from the given ranges."""
    torch.manual_seed(0)
    model = torchvision.models.vgg16(weights=None).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d | torch.nn.Linear):
                low, high = conv_bias if isinstance(m, torch.nn.Conv2d) else dense_bias
                m.bias.uniform_(low, high) if high > low else m.bias.fill_(low)
    return model


CASES = [("vgg16", "epsilon_plus"), ("vgg16", "epsilon_gamma_box")] + [
    ("resnet18", name) for name in ("epsilon_plus", "epsilon_gamma_box", "epsilon_alpha2_beta1", "epsilon_plus_flat")]


@pytest.mark.parametrize(("arch", "composite"), CASES)
def test_lrp_equals_zennit(arch, composite):
    model = vgg16() if arch == "vgg16" else resnet18()
    canonizers = [VGGCanonizer()] if arch == "vgg16" else [ResNetCanonizer()]
    x = np.random.default_rng(0).normal(0, 1, (1, 32, 32, 3)).astype(np.float32)
    ours = heatlens.explain(heatlens.wrap(model, preprocess=None), x, method="lrp", target="top1", composite=composite,
                            low=LOW, high=HIGH)
    target = int(ours.targets.ids[0, 0])
    score = torch.zeros(1, 1000)
    with torch.no_grad():
        score[0, target] = model(torch.from_numpy(x).permute(0, 3, 1, 2))[0, target]
    with Gradient(model=model, composite=zennit_composite(composite, canonizers)) as attributor:
        _, relevance = attributor(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), score)
    reference = relevance.sum(1).numpy()
    np.testing.assert_allclose(ours.maps[:, 0], reference, atol=1e-5 * np.abs(reference).max())


def captum_rule(name: str) -> object:
    return {"lrp0": lambda: EpsilonRule(epsilon=0.0), "epsilon": lambda: EpsilonRule(epsilon=EPSILON),
            "gamma": lambda: GammaRule(gamma=0.25), "zplus": Alpha1_Beta0_Rule,
            "alpha1_beta0": Alpha1_Beta0_Rule}[name]()


SIGNED, POSITIVE, ZERO = (-0.1, 0.1), (0.0, 0.1), (0.0, 0.0)
CAPTUM_CASES = {  # (rule of the first convolution, of the others, of the dense layers), (conv, dense bias ranges)
    "lrp0": (("lrp0", "lrp0", "lrp0"), (SIGNED, SIGNED)),
    "epsilon": (("epsilon", "epsilon", "epsilon"), (SIGNED, SIGNED)),
    "gamma": (("epsilon", "gamma", "epsilon"), (ZERO, SIGNED)),
    "alpha1_beta0": (("epsilon", "zplus", "alpha1_beta0"), (POSITIVE, POSITIVE)),
}


@pytest.mark.parametrize("case", sorted(CAPTUM_CASES))
def test_lrp_equals_captum_on_vgg16(case):
    (first, conv, dense), biases = CAPTUM_CASES[case]
    model = vgg16(*biases)
    x = np.random.default_rng(0).normal(0, 1, (1, 64, 64, 3)).astype(np.float32)  # 2 x 2 features into its 7 x 7 pool
    ours = heatlens.explain(heatlens.wrap(model, preprocess=None), x, method="lrp", target="top1",
                            composite={"features.0": first, "Conv2d": conv, "Linear": dense}, epsilon=EPSILON,
                            stabilizer=CAPTUM_STABILISER)
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d | torch.nn.Linear):
            m.rule = captum_rule(first if m is model.features[0] else conv if isinstance(m, torch.nn.Conv2d) else dense)
    inputs = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().requires_grad_()
    reference = LRP(model).attribute(inputs, target=int(ours.targets.ids[0, 0])).detach().sum(1).numpy()
    assert np.isfinite(reference).all() and np.abs(reference).max() > 0
    np.testing.assert_allclose(ours.maps[:, 0], reference, atol=1e-5 * np.abs(reference).max())
