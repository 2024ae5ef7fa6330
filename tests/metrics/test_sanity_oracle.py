"""Quantus 0.6 (torch path) as an independent oracle for the sanity checks: its MPRT (Adebayo et al. 2018) and
RandomLogit (Sixt et al. 2020) on a tiny torch CNN, with the same maps (heatlens' Grad-CAM given to Quantus as its
explain_func), equal to 1e-5.

Conventions set equal in the test:
- Quantus normalises (normalise_by_max) and MPRT takes |maps| by default: both off (normalise=False, abs=False),
  heatlens compares maps as they are (absolute=False).
- Quantus' similarity functions see the maps flattened to (batch, pixels): Spearman does not care, SSIM does, so
  Quantus gets its own `ssim` applied to each map reshaped back to (h, w) (heatlens computes SSIM on the maps as
  images); data range = max - min over both maps, 7x7 windows, in float64 (the explain_func returns float64).
- MPRT randomises every module with reset_parameters in named_modules order reversed (top down), seeding
  torch.manual_seed(seed + 1) before each; the CNN's execution order is its definition order, so heatlens' top-down
  execution order is the same list. Quantus' 'original' entry is heatlens' step 0.
- RandomLogit draws its other class with the global numpy RNG; the classes it explained are recorded in the
  explain_func and handed to heatlens as `other=`.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
quantus = pytest.importorskip("quantus")
from quantus.functions.similarity_func import correlation_spearman
from quantus.functions.similarity_func import ssim as quantus_ssim

import heatlens
from heatlens.metrics import sanity
from heatlens.metrics.core import on_grid

SIZE = 24
SEED = 42


class BatchNormCNN(torch.nn.Module):
    """conv-BN-ReLU, conv-ReLU, global average pool, linear: five classes on 24x24 inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 6, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(6)
        self.conv2 = torch.nn.Conv2d(6, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.conv2(x))
        return self.fc(x.mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def case() -> tuple[torch.nn.Module, np.ndarray, np.ndarray]:
    torch.manual_seed(3)
    model = BatchNormCNN()
    with torch.no_grad():  # trained-looking BN statistics, so resetting them changes something
        model.bn1.running_mean.uniform_(-0.5, 0.5)
        model.bn1.running_var.uniform_(0.5, 2.0)
    model.eval()
    x = np.random.default_rng(0).uniform(0, 1, (3, SIZE, SIZE, 3)).astype(np.float32)
    y = np.array([0, 3, 1])
    return model, x, y


def gradcam_maps(model: torch.nn.Module, x_nhwc: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """heatlens' Grad-CAM at conv2 on the input grid, (N, 1, h, w) float64."""
    network = heatlens.wrap(model, preprocess=None)
    result = heatlens.explain(network, x_nhwc, "gradcam", target=[[int(i)] for i in ids], layer="conv2",
                              upsample=False)
    return on_grid(result.maps, (SIZE, SIZE)).astype(np.float64)


def explain_func(calls: list[np.ndarray] | None = None):
    def explain(model: torch.nn.Module, inputs: np.ndarray, targets: np.ndarray, **_: object) -> np.ndarray:
        if calls is not None:
            calls.append(np.asarray(targets).copy())
        return gradcam_maps(model, np.transpose(inputs, (0, 2, 3, 1)), np.asarray(targets))

    return explain


def ssim_as_images(a: np.ndarray, b: np.ndarray, batched: bool = False, **kwargs: object) -> np.ndarray:
    """Quantus' own ssim, applied to each flattened map reshaped back to its (h, w), as an array (MPRT calls
    .tolist() on what its similarity returns; Quantus' batched ssim returns a list)."""
    return np.array([quantus_ssim(aa.reshape(SIZE, SIZE), bb.reshape(SIZE, SIZE)) for aa, bb in zip(a, b, strict=True)])


@pytest.mark.parametrize(("ours", "theirs"), [("spearman", correlation_spearman), ("ssim", ssim_as_images)])
def test_mprt_matches_quantus(case, ours, theirs):
    model, x, y = case
    mprt = quantus.MPRT(similarity_func=theirs, layer_order="top_down", seed=SEED, abs=False, normalise=False,
                        disable_warnings=True, display_progressbar=False)
    expected = mprt(model=model, x_batch=np.transpose(x, (0, 3, 1, 2)), y_batch=y, a_batch=None,
                    explain_func=explain_func(), device="cpu")
    network = heatlens.wrap(model, preprocess=None)
    result = sanity.model_randomisation(network, x, "gradcam", target=[[int(i)] for i in y],
                                         options={"layer": "conv2"}, similarity=ours, seed=SEED, progress=False)
    assert list(result.curves["layers"]) == ["original", "fc", "conv2", "bn1", "conv1"]
    assert list(expected) == list(result.curves["layers"])
    for step, name in enumerate(expected):
        np.testing.assert_allclose(result.curves[ours][:, 0, step], expected[name], atol=1e-5, err_msg=name)
    np.testing.assert_allclose(result.scores[:, 0], expected["conv1"], atol=1e-5)
    assert np.ptp(result.curves[ours][:, 0, 1:]) > 0.05  # the steps changed the maps: the test can tell them apart


def test_random_logit_matches_quantus(case):
    model, x, y = case
    calls: list[np.ndarray] = []
    random_logit = quantus.RandomLogit(similarity_func=ssim_as_images, num_classes=5, seed=SEED, abs=False,
                                       normalise=False, disable_warnings=True, display_progressbar=False)
    expected = random_logit(model=model, x_batch=np.transpose(x, (0, 3, 1, 2)), y_batch=y, a_batch=None,
                            explain_func=explain_func(calls), device="cpu")
    other = calls[-1]
    assert (other != y).all()
    network = heatlens.wrap(model, preprocess=None)
    result = sanity.random_logit(network, x, "gradcam", target=[[int(i)] for i in y], other=other[:, None],
                                  options={"layer": "conv2"}, progress=False)
    np.testing.assert_allclose(result.scores[:, 0], expected, atol=1e-5)
    np.testing.assert_array_equal(result.curves["other"][:, 0], other)
