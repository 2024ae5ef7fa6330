"""LRP in torch against the papers' formulas, computed here by hand with numpy on a three-layer network, and
against its known identities: LRP-0 on a bias-free ReLU network is gradient x input, and LRP-0 / z+ conserve
the score there. The model is left as it came, also when its forward fails."""

from __future__ import annotations

import numpy as np
import pytest

import heatlens
from heatlens.errors import MethodError
from heatlens.methods import get_method
from heatlens.methods.lrp import conservation_note
from heatlens.methods.lrp_rules import Epsilon

torch = pytest.importorskip("torch")
nn = torch.nn

EPS = 1e-6  # the rules' default stabiliser, used in the hand computation as well


def stab(z: np.ndarray, eps: float = EPS) -> np.ndarray:
    return z + eps * np.where(z >= 0, 1.0, -1.0)


def reference_layer(rule: str, a: np.ndarray, w: np.ndarray, b: np.ndarray, r: np.ndarray,
                    low: np.ndarray | None = None, high: np.ndarray | None = None) -> np.ndarray:
    """R_i for one dense layer z_j = sum_i a_i w_ij + b_j (w: in x out), written from each paper's formula."""
    wp, wn, ap, an, bp, bn = np.maximum(w, 0), np.minimum(w, 0), np.maximum(a, 0), np.minimum(a, 0), \
        np.maximum(b, 0), np.minimum(b, 0)
    out = np.zeros_like(a)
    for j in range(w.shape[1]):
        z = a @ w[:, j] + b[j]
        if rule in ("lrp0", "epsilon"):
            eps = 0.1 if rule == "epsilon" else 0.0
            share = a * w[:, j] / (z + eps * np.sign(z)) if z else 0 * a
        elif rule in ("zplus", "alpha2_beta1", "alpha1_beta0"):
            alpha, beta = (2.0, 1.0) if rule == "alpha2_beta1" else (1.0, 0.0)
            plus = ap * wp[:, j] + an * wn[:, j]
            minus = ap * wn[:, j] + an * wp[:, j]
            share = alpha * plus / stab(plus.sum() + bp[j]) - beta * minus / stab(minus.sum() + bn[j])
        elif rule == "gamma":
            g = 0.25
            if z > 0:
                num = ap * (w[:, j] + g * wp[:, j]) + an * (w[:, j] + g * wn[:, j])
                share = num / stab(num.sum() + b[j] + g * bp[j])
            else:
                num = ap * (w[:, j] + g * wn[:, j]) + an * (w[:, j] + g * wp[:, j])
                share = num / stab(num.sum() + b[j] + g * bn[j]) if z < 0 else 0 * a
        elif rule == "flat":
            share = np.ones_like(a) / stab(len(a))
        elif rule == "wsquare":
            share = w[:, j] ** 2 / stab((w[:, j] ** 2).sum())
        elif rule == "zbox":
            num = a * w[:, j] - low * wp[:, j] - high * wn[:, j]
            share = num / stab(num.sum())
        out += share * r[j]
    return out


@pytest.fixture
def three_layers():
    torch.manual_seed(3)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3), nn.ReLU(), nn.Linear(3, 2)).eval()


FIRST_ONLY = ("flat", "wsquare", "zbox")


@pytest.mark.parametrize("rule", ["lrp0", "epsilon", "gamma", "zplus", "alpha1_beta0", "alpha2_beta1", "flat",
                                  "wsquare", "zbox"])
def test_each_rule_on_a_three_layer_network_matches_the_formula_by_hand(three_layers, rule):
    """The rule on the first layer (and the middle one where it is meant for any layer), epsilon=0.1 on the last."""
    x = np.array([[[[0.8], [-0.5]], [[0.3], [1.2]]]], np.float32)  # (1, 2, 2, 1): four inputs, one channel
    first = Epsilon(epsilon=0.1) if rule == "epsilon" else rule
    middle = "zplus" if rule in FIRST_ONLY else first
    composite = {"1": first, "3": middle, "5": Epsilon(epsilon=0.1)}
    low, high = [-1.0], [1.5]
    out = get_method("lrp").fn(heatlens.wrap(three_layers, preprocess=None), x, lambda s: np.array([[1]]),
                               composite=composite, low=low, high=high)

    params = [(m.weight.detach().numpy().T.astype(np.float64), m.bias.detach().numpy().astype(np.float64))
              for m in three_layers if isinstance(m, nn.Linear)]
    acts = [x.reshape(-1).astype(np.float64)]
    for k, (w, b) in enumerate(params):
        z = acts[-1] @ w + b
        acts.append(np.maximum(z, 0) if k < 2 else z)
    relevance = np.array([0.0, acts[-1][1]])
    relevance = reference_layer("epsilon", acts[2], *params[2], relevance)
    relevance = reference_layer(middle if rule != "epsilon" else "epsilon", acts[1], *params[1], relevance)
    relevance = reference_layer(rule, acts[0], *params[0], relevance, np.full(4, low[0]), np.full(4, high[0]))
    np.testing.assert_allclose(out.attributions[0, 0].reshape(-1), relevance, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(out.extras["score"], [[acts[-1][1]]], rtol=1e-6)


def bias_free(residual: bool = False) -> nn.Module:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
            self.pool = nn.MaxPool2d(2)
            self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4, bias=False))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.pool(torch.relu(self.conv1(x)))
            out = torch.relu(self.conv2(h))
            return self.head(out + h if residual else out)

    torch.manual_seed(1)
    return Net().eval()


def test_lrp0_on_a_bias_free_relu_network_is_gradient_times_input(rng):
    net = heatlens.wrap(bias_free(), preprocess=None)
    x = rng.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    lrp = heatlens.explain(net, x, method="lrp", target=[1], composite={"*": "lrp0"}, stabilizer=0.0)
    reference = heatlens.explain(net, x, method="gradient_x_input", target=[1])
    peak = np.abs(reference.maps).max()
    np.testing.assert_allclose(lrp.maps, reference.maps, atol=1e-6 * peak)


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("rule", ["lrp0", "zplus"])
def test_lrp0_and_zplus_conserve_the_score_on_bias_free_networks(rng, rule, residual):
    net = heatlens.wrap(bias_free(residual), preprocess=None)
    x = rng.uniform(0, 1, (3, 16, 16, 3)).astype(np.float32)
    out = get_method("lrp").fn(net, x, lambda s: s.argsort(axis=1)[:, -2:], stabilizer=0.0,
                               composite={"Conv2d": rule, "Linear": "lrp0"})
    np.testing.assert_allclose(out.extras["relevance_sum"], out.extras["score"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.extras["absorbed"], 0, atol=1e-5 * np.abs(out.extras["score"]).max())
    assert out.notes == ["lrp: the pixels' relevance sums to 1 x the explained score (median over images and "
                         "targets); the rest went into biases and stabilisers (extras: relevance_sum, score, absorbed)"]


def test_the_result_says_how_much_relevance_the_pixels_kept(rng):
    """The note is the median of relevance_sum / score, from the extras; a zero score has nothing to conserve."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    with torch.no_grad():
        model[0].bias.fill_(0.5)  # positive biases absorb part of the relevance
    net = heatlens.wrap(model.eval(), preprocess=None)
    result = heatlens.explain(net, rng.uniform(0, 1, (3, 10, 10, 3)).astype(np.float32), method="lrp",
                              target=[0, 1], composite="epsilon_plus")
    share = np.median(result.extras["relevance_sum"] / result.extras["score"])
    assert abs(share - 1) > 0.01 and f"relevance sums to {share:.3g} x the explained score" in " ".join(result.notes)
    assert conservation_note(np.zeros((1, 1)), np.zeros((1, 1))).startswith("lrp: the explained scores are 0")


def test_composites_by_name_run_and_report_conservation(rng):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 6, 3), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3)).eval()
    net = heatlens.wrap(model, preprocess=None)
    x = rng.uniform(-1, 1, (2, 12, 12, 3)).astype(np.float32)
    for name in ("epsilon_plus", "epsilon_gamma_box", "epsilon_alpha2_beta1", "epsilon_plus_flat"):
        result = heatlens.explain(net, x, method="lrp", target="top1", composite=name)
        assert result.maps.shape == (2, 1, 12, 12) and np.isfinite(result.maps).all()


def test_the_batch_norm_merge_equals_lrp_on_the_folded_model(rng):
    """A batch norm after a conv is merged into it: LRP on the model equals LRP on a copy folded by hand."""
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6)
    bn.running_mean.uniform_(-0.5, 0.5), bn.running_var.uniform_(0.5, 2), bn.weight.data.uniform_(0.5, 2)
    bn.bias.data.uniform_(-0.3, 0.3)
    model = nn.Sequential(conv, bn, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3)).eval()
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    folded = nn.Conv2d(3, 6, 3, padding=1)
    folded.weight.data = conv.weight.data * scale[:, None, None, None]
    folded.bias.data = (conv.bias.data - bn.running_mean) * scale + bn.bias.data
    plain = nn.Sequential(folded, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), model[5]).eval()
    x = rng.uniform(-1, 1, (2, 10, 10, 3)).astype(np.float32)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    ours = heatlens.explain(heatlens.wrap(model, preprocess=None), x, method="lrp", target=[0])
    reference = heatlens.explain(heatlens.wrap(plain, preprocess=None), x, method="lrp", target=[0])
    np.testing.assert_allclose(ours.maps, reference.maps, atol=1e-5 * np.abs(reference.maps).max())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_the_model_is_left_as_it_came_also_when_its_forward_fails(rng):
    from toy_models import count_hooks

    class Failing(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.fc = nn.Linear(4, 2)
            self.fail = False

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.conv(x))
            if self.fail:
                raise RuntimeError("boom")
            return self.fc(h.mean((2, 3)))

    model = Failing().eval()
    net = heatlens.wrap(model, preprocess=None)
    x = rng.uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32)
    before = heatlens.explain(net, x, method="gradient_x_input", target=[0]).maps
    model.fail = True
    with pytest.raises(heatlens.errors.ModelError, match="boom"):
        heatlens.explain(net, x, method="lrp", target=[0])
    model.fail = False
    assert count_hooks(model) == 0 and "forward" not in model.conv.__dict__
    assert not torch.overrides._is_torch_function_mode_enabled()
    np.testing.assert_array_equal(heatlens.explain(net, x, method="gradient_x_input", target=[0]).maps, before)


def test_bad_composites_are_refused_before_any_work(rng):
    net = heatlens.wrap(bias_free(), preprocess=None)
    x = rng.uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32)
    with pytest.raises(MethodError, match="unknown LRP composite"):
        heatlens.explain(net, x, method="lrp", composite="epsilon_plu")
    with pytest.raises(MethodError, match="neither a layer kind nor matches a layer name"):
        heatlens.explain(net, x, method="lrp", composite={"Conv3d": "zplus"})
    with pytest.raises(MethodError, match="must be a rule name"):
        heatlens.explain(net, x, method="lrp", composite={"Conv2d": "zminus"})
    with pytest.raises(MethodError, match="give both low= and high="):
        heatlens.explain(net, x, method="lrp", composite="epsilon_gamma_box", low=0.0)


def test_zbox_bounds_come_from_the_preprocessing(lite0):
    from heatlens.methods.lrp import input_bounds

    low, high = input_bounds(lite0, np.zeros((1, 224, 224, 3), np.float32), None, None)
    np.testing.assert_allclose(low, [-127 / 128] * 3, rtol=1e-6)
    np.testing.assert_allclose(high, [1.0] * 3, rtol=1e-6)
