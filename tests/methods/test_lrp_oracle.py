"""LRP against zennit (Anders et al. 2021) on torchvision VGG16 and ResNet-18 with random weights: the same composite
gives the same relevance, to 1e-5 of its peak. zennit's canonizer leaves each merged batch norm dividing by
sqrt(1 + eps); the ResNet's batch norms get eps=0 here so that both merges are exact."""

from __future__ import annotations

import numpy as np
import pytest

import heatlens

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
zennit = pytest.importorskip("zennit")
from zennit.attribution import Gradient
from zennit.composites import EpsilonAlpha2Beta1, EpsilonGammaBox, EpsilonPlus, EpsilonPlusFlat
from zennit.torchvision import ResNetCanonizer, VGGCanonizer

LOW, HIGH = -2.0, 2.5


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


def vgg16() -> torch.nn.Module:
    torch.manual_seed(0)
    return torchvision.models.vgg16(weights=None).eval()


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
