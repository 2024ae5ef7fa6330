"""Grad-CAM and CAM against the papers' formulas, computed independently in each test."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from toy_models import FlattenHead, TinyCNN

import heatlens
from heatlens import LayerError, MethodError


def _x(rng, n=3, size=6):
    return rng.standard_normal((n, size, size, 3)).astype(np.float32)


def _nchw(x):
    return torch.from_numpy(x.transpose(0, 3, 1, 2))


def test_gradcam_equals_hand_derived_formula_on_a_flatten_head(rng):
    """score_c = sum W[c, k, i, j] A[k, i, j] + b, so dscore_c / dA = W[c] exactly, written by hand."""
    torch.manual_seed(1)
    model = FlattenHead(classes=3, channels=4, size=6)
    x = _x(rng)
    result = heatlens.explain(heatlens.wrap(model, preprocess=None), x, target=[0, 2], layer="act", upsample=False)
    with torch.no_grad():
        acts = model.act(model.conv(_nchw(x))).numpy()
    weights = model.fc.weight.detach().numpy().reshape(3, 4, 6, 6)
    for k, cls in enumerate([0, 2]):
        alpha = weights[cls].mean(axis=(1, 2))
        expected = np.maximum(np.einsum("c,nchw->nhw", alpha, acts), 0)
        np.testing.assert_allclose(result.maps[:, k], expected, rtol=1e-5, atol=1e-6)


def test_cam_equals_zhou_formula_with_the_linear_weights(rng):
    torch.manual_seed(2)
    model = TinyCNN(classes=5)
    x = _x(rng, size=8)
    result = heatlens.explain(heatlens.wrap(model, preprocess=None), x, method="cam", target="top2",
                              layer="features", upsample=False)
    with torch.no_grad():
        acts = model.features(_nchw(x)).numpy()
    fc = model.fc.weight.detach().numpy()
    for n in range(len(x)):
        for k, cls in enumerate(result.targets.ids[n]):
            expected = np.einsum("c,chw->hw", fc[cls], acts[n])
            np.testing.assert_allclose(result.maps[n, k], expected, rtol=1e-4, atol=1e-5)


def test_cam_refuses_models_without_global_pooling(rng):
    with pytest.raises(MethodError, match="global average pooling"):
        heatlens.explain(heatlens.wrap(FlattenHead(), preprocess=None), _x(rng), method="cam", layer="act")


def test_gradcam_on_the_pretrained_model_equals_a_second_autograd_path(lite0, cat):
    """Full autograd through the whole network (parameter gradients and all), then the paper's formula."""
    x = lite0.prepare(cat[None])
    result = heatlens.explain(lite0, cat, target="top3", upsample=False)
    model = lite0.module
    inputs = _nchw(x)
    act = model.head(model.blocks(model.stem(inputs)))
    act.retain_grad()
    logits = model.classifier(torch.flatten(model.pool(act), 1))
    for k, cls in enumerate(result.targets.ids[0]):
        model.zero_grad()
        act.grad = None
        logits[0, cls].backward(retain_graph=True)
        g = act.grad[0].numpy()
        expected = np.maximum(np.einsum("c,chw->hw", g.mean(axis=(1, 2)), act[0].detach().numpy()), 0)
        peak = expected.max()
        assert peak > 0
        np.testing.assert_allclose(result.maps[0, k] / peak, expected / peak, atol=1e-5)
    model.zero_grad(set_to_none=True)


def test_several_targets_equal_separate_calls_and_a_batch_equals_single_images(rng):
    torch.manual_seed(3)
    net = heatlens.wrap(TinyCNN(classes=6), preprocess=None)
    x = _x(rng, n=4, size=8)
    together = heatlens.explain(net, x, target=[1, 4], upsample=False).maps
    for k, cls in enumerate([1, 4]):
        alone = heatlens.explain(net, x, target=cls, upsample=False).maps
        np.testing.assert_allclose(together[:, k], alone[:, 0], rtol=1e-5, atol=1e-7)
    for n in range(4):
        single = heatlens.explain(net, x[n], target=[1, 4], upsample=False).maps
        np.testing.assert_allclose(together[n], single[0], rtol=1e-5, atol=1e-7)


def test_zero_gradients_give_an_all_zero_map_not_nan(rng):
    torch.manual_seed(4)
    model = TinyCNN(classes=3)
    with torch.no_grad():
        model.fc.weight[0] = 0
    result = heatlens.explain(heatlens.wrap(model, preprocess=None), _x(rng, size=8), target=0)
    assert np.isfinite(result.maps).all() and (result.maps == 0).all()
    overlay = result.overlay()
    assert overlay.dtype == np.uint8 and np.isfinite(overlay).all()


def test_layer_without_spatial_output_is_refused(rng):
    with pytest.raises(LayerError, match="not a spatial"):
        heatlens.explain(heatlens.wrap(TinyCNN(), preprocess=None), _x(rng, size=8), layer="fc")


def test_maps_are_finite_float32_at_input_resolution(lite0, cat):
    result = heatlens.explain(lite0, cat)
    assert result.maps.shape == (1, 1, *cat.shape[:2]) and result.maps.dtype == np.float32
    assert np.isfinite(result.maps).all() and result.maps.min() >= 0
    assert result.layer == "head"
