"""Sensitivity (Yeh et al. 2019) where the answer is known in closed form (a linear model: its saliency never moves,
its gradient x input moves by W . delta), batched and seeded re-explanations, the perturb= hook's contract; and
sparseness (Gini) and complexity (entropy) against independent formulas."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
from planted import SIZE, explanation_of, planted_network
from torch import nn
from toy_models import TinyCNN

import heatlens
from heatlens import metrics
from heatlens.errors import MethodError
from heatlens.metrics import robustness

H, W, C = 6, 5, 3


@pytest.fixture(scope="module")
def linear() -> tuple[heatlens.models.Network, np.ndarray]:
    """A linear classifier on (H, W, C) inputs and its weights (classes, H, W, C), class 2's all zero."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(C * H * W, 3)).eval()
    with torch.no_grad():
        model[1].weight[2] = 0.0
    weights = model[1].weight.detach().numpy().reshape(3, C, H, W).transpose(0, 2, 3, 1)
    return heatlens.wrap(model, preprocess=None), weights


@pytest.fixture(scope="module")
def inputs() -> np.ndarray:
    return np.random.default_rng(0).uniform(-1, 1, (3, H, W, C)).astype(np.float32)


class Recorder:
    """A perturb= hook adding uniform noise, remembering every input and noise it saw."""

    def __init__(self, radius: float, seed: int = 5):
        self.radius, self.rng = radius, np.random.default_rng(seed)
        self.seen: list[np.ndarray] = []
        self.noise: list[np.ndarray] = []

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        delta = self.rng.uniform(-self.radius, self.radius, x.shape).astype(np.float32)
        self.seen.append(x.copy())
        self.noise.append(delta)
        return x + delta


def test_a_linear_models_saliency_never_moves(linear, inputs):
    network, _ = linear
    for name in ("max_sensitivity", "avg_sensitivity"):
        result = metrics.compute(name, network, inputs, "saliency", target=0, radius=0.5, n_samples=6,
                                 progress=False)
        np.testing.assert_array_equal(result.scores, 0.0)
        assert result.forward_passes == 3 * 6 and not result.higher_is_better
        assert metrics.get_metric(name).reruns


def test_gradient_x_input_of_a_linear_model_moves_by_the_weights_times_the_noise(linear, inputs):
    network, weights = linear
    for name, reduce in (("max_sensitivity", np.max), ("avg_sensitivity", np.mean)):
        recorder = Recorder(0.1)
        result = metrics.compute(name, network, inputs, "gradient_x_input", target=[[0], [1], [0]], n_samples=4,
                                 perturb=recorder, batch_size=5, progress=False)
        noise = np.concatenate(recorder.noise).reshape(3, 4, H, W, C)
        for i, target in enumerate((0, 1, 0)):
            base = np.linalg.norm((weights[target] * inputs[i]).sum(-1).astype(np.float64))
            moved = [np.linalg.norm((weights[target] * noise[i, s]).sum(-1)) for s in range(4)]
            assert result.scores[i, 0] == pytest.approx(reduce(moved) / base, rel=1e-5)
        np.testing.assert_allclose(result.curves["norms"][:, 0], [
            np.linalg.norm((weights[t] * inputs[i]).sum(-1)) for i, t in enumerate((0, 1, 0))], rtol=1e-6)


def test_perturb_sees_each_images_samples_in_turn_whatever_the_batches(linear, inputs):
    network, _ = linear
    recorder = Recorder(0.1)
    robustness.avg_sensitivity(network, inputs, "saliency", n_samples=3, perturb=recorder, batch_size=2,
                               progress=False)
    assert [len(x) for x in recorder.seen] == [2, 2, 2, 2, 1]
    np.testing.assert_array_equal(np.concatenate(recorder.seen), np.repeat(inputs, 3, axis=0))


def test_an_all_zero_map_keeps_its_change_undivided_as_captum(linear, inputs):
    network, _ = linear
    result = robustness.max_sensitivity(network, inputs, "saliency", target=2, n_samples=2, progress=False)
    np.testing.assert_array_equal(result.scores, 0.0)
    assert any("are all zero" in note for note in result.notes)


@pytest.fixture(scope="module")
def cnn() -> heatlens.models.Network:
    torch.manual_seed(0)
    return heatlens.wrap(TinyCNN().eval(), preprocess=None)


def test_draws_are_seeded_and_do_not_depend_on_the_batch_size(cnn):
    x = np.random.default_rng(1).uniform(0, 1, (2, 12, 12, 3)).astype(np.float32)
    one = robustness.max_sensitivity(cnn, x, "saliency", n_samples=5, batch_size=1, progress=False)
    many = robustness.max_sensitivity(cnn, x, "saliency", n_samples=5, batch_size=4, progress=False)
    other = robustness.max_sensitivity(cnn, x, "saliency", n_samples=5, batch_size=4, seed=1, progress=False)
    np.testing.assert_allclose(one.scores, many.scores, rtol=1e-5)
    assert not np.allclose(one.scores, other.scores)
    assert (one.scores > 0).all()
    assert one.curves["sensitivities"].shape == (2, 1, 5)
    np.testing.assert_allclose(one.scores, one.curves["sensitivities"].max(-1))


def test_photo_resolution_maps_are_explained_again_on_the_grid_and_counted(lite0, cat):
    explanation = heatlens.explain(lite0, cat, "gradcam")
    result = robustness.avg_sensitivity(lite0, None, explanation, n_samples=2, batch_size=3, progress=False)
    assert result.forward_passes == 1 * 2 + 1
    assert any("explained again" in note for note in result.notes)
    assert 0 < result.scores[0, 0] < 0.2  # two grey levels of noise move Grad-CAM little


def test_bad_parameters_get_clear_errors(linear, inputs):
    network, _ = linear
    with pytest.raises(MethodError, match="radius must be a number > 0"):
        robustness.max_sensitivity(network, inputs, "saliency", radius=0, progress=False)
    with pytest.raises(MethodError, match="n_samples must be a positive integer"):
        robustness.avg_sensitivity(network, inputs, "saliency", n_samples=0, progress=False)
    with pytest.raises(MethodError, match="perturb must be a function"):
        robustness.avg_sensitivity(network, inputs, "saliency", perturb=0.1, progress=False)
    with pytest.raises(MethodError, match="perturb must return finite model inputs of the shape it was given"):
        robustness.avg_sensitivity(network, inputs, "saliency", perturb=lambda x, rng: x[:, :2], progress=False)


def gini_by_pairs(a: np.ndarray) -> float:
    """The Gini index as the mean absolute difference over all pairs, over twice the mean."""
    a = np.abs(a.ravel()).astype(np.float64)
    return np.abs(a[:, None] - a[None]).sum() / (2 * a.size**2 * a.mean())


def test_sparseness_and_complexity_against_their_formulas():
    network = planted_network()
    rng = np.random.default_rng(4)
    maps = rng.normal(size=(3, 1, SIZE, SIZE)).astype(np.float32) ** 3
    explanation = explanation_of(network, rng.uniform(size=(3, SIZE, SIZE, 3)).astype(np.float32), maps)
    sparse = robustness.sparseness(network, None, explanation)
    simple = robustness.complexity(network, None, explanation)
    for i in range(3):
        assert sparse.scores[i, 0] == pytest.approx(gini_by_pairs(maps[i, 0]), rel=1e-9)
        shares = np.abs(maps[i, 0]).ravel().astype(np.float64)
        assert simple.scores[i, 0] == pytest.approx(scipy.stats.entropy(shares), rel=1e-9)
    assert sparse.higher_is_better and not simple.higher_is_better
    assert sparse.forward_passes == simple.forward_passes == 0


def test_one_hot_uniform_and_zero_maps_sit_at_the_ends():
    network = planted_network()
    maps = np.zeros((3, 1, SIZE, SIZE), np.float32)
    maps[0, 0, 3, 4] = -2.0
    maps[1] = 0.7
    explanation = explanation_of(network, np.zeros((3, SIZE, SIZE, 3), np.float32), maps)
    d = SIZE * SIZE
    sparse = robustness.sparseness(network, None, explanation)
    simple = robustness.complexity(network, None, explanation)
    np.testing.assert_allclose(sparse.scores[:, 0], [(d - 1) / d, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(simple.scores[:, 0], [0.0, np.log(d), np.log(d)], atol=1e-12)
    assert "1 map(s) are all zero" in sparse.notes[0] and "1 map(s) are all zero" in simple.notes[0]
