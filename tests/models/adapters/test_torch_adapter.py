"""The torch adapter: primitives compute what is asked, and the model is left exactly as it came."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from toy_models import TinyCNN, count_hooks

import heatlens
from heatlens import LayerError, ModelError, TargetError
from heatlens.models.adapters.torch import TorchNetwork


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return TinyCNN()


def _x(rng, n=2, size=8):
    return rng.standard_normal((n, size, size, 3)).astype(np.float32)


def test_layers_in_execution_order_with_channels_last_shapes(tiny):
    net = TorchNetwork(tiny, input_size=(8, 8))
    infos = {i.name: i for i in net.layers()}
    assert [i.name for i in net.layers()][:3] == ["features.0", "features.1", "features.2"]
    assert infos["features.2"].output_shape == (4, 4, 8)
    assert infos["fc"].output_shape == (4,)
    assert net.default_layer() == "features"


def test_default_layer_skips_pooled_outputs(tiny):
    infos = TorchNetwork(tiny, input_size=(8, 8)).layers()
    pool = next(i for i in infos if i.name == "pool")
    assert pool.output_shape == (1, 1, 8) and not pool.spatial


def test_layers_need_an_input_size(tiny):
    with pytest.raises(LayerError, match="input_size"):
        TorchNetwork(tiny).layers()


def test_predict_matches_the_module(tiny, rng):
    x = _x(rng, n=5)
    net = TorchNetwork(tiny, batch_size=2)
    with torch.no_grad():
        expected = tiny(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    np.testing.assert_allclose(net.predict(x), expected, rtol=1e-5, atol=1e-6)


def test_trace_gradients_equal_a_full_autograd_pass(tiny, rng):
    x = _x(rng)
    ids = np.array([[1, 3], [0, 2]])
    trace = TorchNetwork(tiny, input_size=(8, 8)).trace(x, ids, capture=["features.2"], wrt=["features.2", "input"])
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2)).requires_grad_()
    act = tiny.features[1](tiny.features[0](xt))
    act2 = tiny.features[2](act)
    act2.retain_grad()
    logits = tiny.fc(torch.flatten(tiny.pool(tiny.features[3](act2)), 1))
    for k in range(2):
        ga, gx = torch.autograd.grad(logits.gather(1, torch.tensor(ids[:, k : k + 1])).sum(), [act2, xt],
                                     retain_graph=True)
        np.testing.assert_allclose(trace.gradients["features.2"][:, k], ga.numpy().transpose(0, 2, 3, 1), atol=1e-6)
        np.testing.assert_allclose(trace.gradients["input"][:, k], gx.numpy().transpose(0, 2, 3, 1), atol=1e-6)
    np.testing.assert_allclose(trace.activations["features.2"], act2.detach().numpy().transpose(0, 2, 3, 1),
                               atol=1e-6)
    np.testing.assert_array_equal(trace.targets, ids)


def test_trace_resolves_callable_targets_from_its_own_logits(tiny, rng):
    x = _x(rng, n=3)
    trace = TorchNetwork(tiny, batch_size=2).trace(x, lambda s: s.argmax(1), wrt=["features"])
    np.testing.assert_array_equal(trace.targets[:, 0], trace.logits.argmax(1))
    assert trace.gradients["features"].shape == (3, 1, 4, 4, 8)


def test_layer_gradients_compute_no_parameter_or_input_gradients(tiny, rng, monkeypatch):
    """Grad-CAM must cost an inference pass: the graph starts at the layer, no weight gradients."""
    calls = []
    original = torch.autograd.grad

    def spy(outputs, inputs, **kwargs):
        calls.append(inputs)
        return original(outputs, inputs, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", spy)
    conv0 = tiny.features[0]
    seen = {}

    def record(_module, _inputs, _output):
        seen["grad_mode"] = torch.is_grad_enabled()

    handle = conv0.register_forward_hook(record)
    TorchNetwork(tiny).trace(_x(rng), np.array([[0], [1]]), capture=["features"], wrt=["features"])
    handle.remove()
    assert seen["grad_mode"] is False, "layers before the target layer must run without recording a graph"
    assert all(p.grad is None for p in tiny.parameters())
    assert len(calls) == 1 and all(not any(t is p for p in tiny.parameters()) for t in calls[0])


def test_model_state_is_left_as_it_came(tiny, rng):
    tiny.train()
    tiny.features[0].eval()
    frozen = tiny.fc.weight
    frozen.requires_grad_(False)
    before_hooks = count_hooks(tiny)
    before_params = [p.detach().clone() for p in tiny.parameters()]
    x = _x(rng)
    x_copy = x.copy()
    net = TorchNetwork(tiny, input_size=(8, 8))
    net.trace(x, np.array([[0], [1]]), capture=["features.2"], wrt=["features.2"])
    net.predict(x)
    net.split("features.2").tail(np.zeros((2, 4, 4, 8), np.float32), x)
    assert tiny.training and not tiny.features[0].training and tiny.features[1].training
    assert frozen.requires_grad is False and tiny.features[0].weight.requires_grad
    assert count_hooks(tiny) == before_hooks
    assert all(p.grad is None for p in tiny.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before_params, tiny.parameters(), strict=True))
    np.testing.assert_array_equal(x, x_copy)


def test_runs_in_eval_mode(rng):
    """BatchNorm in training mode would use batch statistics; the adapter must use running statistics."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                                torch.nn.LazyLinear(2))
    model(torch.zeros(2, 3, 6, 6))
    model.train()
    x = _x(rng, size=6)
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    model.train()
    np.testing.assert_allclose(TorchNetwork(model).predict(x), expected, rtol=1e-5)
    assert model.training


def test_hooks_removed_and_modes_restored_when_the_forward_raises(rng):
    class Exploding(TinyCNN):
        def forward(self, x):
            out = super().forward(x)
            if len(x) > 1:
                raise RuntimeError("boom")
            return out

    model = Exploding().train()
    net = TorchNetwork(model, input_size=(8, 8))
    with pytest.raises(ModelError, match=r"Exploding failed on an input of shape \(2, 8, 8, 3\).*boom"):
        net.trace(_x(rng), np.array([[0], [0]]), capture=["features"], wrt=["features"])
    assert count_hooks(model) == 0 and model.training
    assert torch.is_grad_enabled()


def test_hooks_removed_when_a_target_is_bad(tiny, rng):
    net = TorchNetwork(tiny, input_size=(8, 8))
    with pytest.raises(TargetError, match="out of range"):
        net.trace(_x(rng), np.array([[9], [0]]), capture=["features"], wrt=["features"])
    assert count_hooks(tiny) == 0


def test_inplace_op_after_the_layer_does_not_corrupt_activations_or_gradients(rng):
    class InplaceAfter(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, x):
            a = self.conv(x)
            a.mul_(2).relu_()
            return self.fc(a.mean(dim=(2, 3)))

    torch.manual_seed(0)
    model = InplaceAfter()
    x = _x(rng)
    trace = TorchNetwork(model).trace(x, np.array([[1], [1]]), capture=["conv"], wrt=["conv"])
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2))
    with torch.no_grad():
        conv = model.conv(xt)
    ref = conv.clone().requires_grad_()
    score = model.fc((ref * 2).relu().mean(dim=(2, 3)))[:, 1].sum()
    (grad,) = torch.autograd.grad(score, [ref])
    np.testing.assert_allclose(trace.activations["conv"], conv.numpy().transpose(0, 2, 3, 1), atol=1e-6)
    np.testing.assert_allclose(trace.gradients["conv"][:, 0], grad.numpy().transpose(0, 2, 3, 1), atol=1e-6)


def test_reused_module_reports_calls_and_captures_the_last_call(rng):
    class Twice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)
            self.fc = torch.nn.Linear(3, 2)

        def forward(self, x):
            return self.fc(self.conv(self.conv(x)).mean(dim=(2, 3)))

    torch.manual_seed(0)
    model = Twice()
    x = _x(rng)
    net = TorchNetwork(model, input_size=(8, 8))
    assert net.layer("conv").calls == 2
    trace = net.trace(x, np.array([[0], [0]]), capture=["conv"], wrt=["conv"])
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2))
    second = model.conv(model.conv(xt)).detach().requires_grad_()
    (grad,) = torch.autograd.grad(model.fc(second.mean(dim=(2, 3)))[:, 0].sum(), [second])
    np.testing.assert_allclose(trace.activations["conv"], second.detach().numpy().transpose(0, 2, 3, 1), atol=1e-6)
    np.testing.assert_allclose(trace.gradients["conv"][:, 0], grad.numpy().transpose(0, 2, 3, 1), atol=1e-6)
    tail = net.split("conv").tail  # the layer runs twice: the activation replaces its second call's output
    expected = model.fc(second.mean(dim=(2, 3))).detach().numpy()
    np.testing.assert_allclose(tail(trace.activations["conv"], x), expected, atol=1e-5)
    zeroed = tail(np.zeros_like(trace.activations["conv"]), x)
    np.testing.assert_allclose(zeroed, np.tile(model.fc.bias.detach().numpy(), (2, 1)), atol=1e-6)


def test_split_tail_reproduces_the_forward(tiny, rng):
    x = _x(rng)
    net = TorchNetwork(tiny, input_size=(8, 8))
    parts = net.split("features.2")
    act = net.trace(x, capture=["features.2"]).activations["features.2"]
    np.testing.assert_allclose(parts.tail(act, x), net.predict(x), atol=1e-6)
    zeroed = parts.tail(np.zeros_like(act), x)
    np.testing.assert_allclose(zeroed, np.tile(tiny.fc.bias.detach().numpy(), (2, 1)), atol=1e-6)


def test_unknown_layer_lists_close_names(tiny):
    with pytest.raises(LayerError, match=r"unknown layer 'feature\.2'.*'features\.2'"):
        TorchNetwork(tiny, input_size=(8, 8)).layer("feature.2")


def test_layer_the_scores_do_not_use(rng):
    class Unused(TinyCNN):
        def __init__(self):
            super().__init__()
            self.side = torch.nn.Conv2d(3, 2, 1)

        def forward(self, x):
            self.side(x)
            return super().forward(x)

    with pytest.raises(LayerError, match="do not depend on 'side'"):
        TorchNetwork(Unused()).trace(_x(rng), np.array([[0], [0]]), capture=["side"], wrt=["side"])


def test_model_outputs_are_unwrapped_or_refused(rng):
    class DictOut(TinyCNN):
        def forward(self, x):
            return {"logits": super().forward(x)}

    class ImageOut(torch.nn.Module):
        def forward(self, x):
            return x

    assert TorchNetwork(DictOut()).predict(_x(rng)).shape == (2, 4)
    with pytest.raises(ModelError, match=r"shape \(N, classes\)"):
        TorchNetwork(ImageOut()).predict(_x(rng))


def test_non_finite_logits_are_refused(rng):
    class NaNModel(TinyCNN):
        def forward(self, x):
            return super().forward(x) * float("nan")

    with pytest.raises(ModelError, match="NaN or infinite scores"):
        heatlens.explain(heatlens.wrap(NaNModel(), preprocess=None), _x(rng))


def test_wrong_input_for_the_model_is_a_model_error(tiny, rng):
    with pytest.raises(ModelError, match=r"failed on an input of shape \(2, 8, 8, 5\)"):
        TorchNetwork(tiny).predict(rng.standard_normal((2, 8, 8, 5)).astype(np.float32))
    assert TorchNetwork(tiny, input_size=(8, 8, 3)).default_layer() == "features"


def test_compiled_and_data_parallel_modules_are_explained_through_the_model_they_wrap(tiny, rng):
    x = _x(rng)
    reference = heatlens.explain(heatlens.wrap(tiny, preprocess=None), x, layer="features", upsample=False)
    for wrapper in (torch.compile(tiny), torch.nn.DataParallel(tiny), torch.compile(torch.nn.DataParallel(tiny))):
        net = heatlens.wrap(wrapper, preprocess=None)
        assert net.module is tiny
        result = heatlens.explain(net, x, layer="features", upsample=False)
        np.testing.assert_array_equal(result.maps, reference.maps)


@pytest.mark.parametrize("layout", ["channels_first_model", "channels_last_model"])
def test_strided_flipped_and_read_only_inputs_give_the_contiguous_answer(tiny, rng, layout):
    if layout == "channels_last_model":
        tiny = tiny.to(memory_format=torch.channels_last)
    net = TorchNetwork(tiny)
    x = _x(rng, n=3)
    expected = net.predict(np.ascontiguousarray(x))
    planar = np.ascontiguousarray(x.transpose(3, 0, 1, 2)).transpose(1, 2, 3, 0)  # strided view, same values
    read_only = x.copy()
    read_only.flags.writeable = False
    for variant in (planar, read_only, x.astype(np.float64)):
        np.testing.assert_allclose(net.predict(variant), expected, rtol=1e-6, atol=1e-6)
    class WritesIntoItsInput(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = tiny

        def forward(self, inputs):
            out = self.inner(inputs)
            inputs.zero_()
            return out

    before = x.copy()
    np.testing.assert_allclose(TorchNetwork(WritesIntoItsInput()).predict(x), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(x, before)
    flipped = x[:, :, ::-1]  # negative strides
    np.testing.assert_allclose(net.predict(flipped), net.predict(np.ascontiguousarray(flipped)), rtol=1e-6, atol=1e-6)


def test_wrap_refuses_what_it_cannot_wrap():
    with pytest.raises(ModelError, match="cannot wrap"):
        heatlens.wrap(object())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_the_models_cuda_device(rng):
    model = TinyCNN().cuda()
    x = _x(rng)
    trace = TorchNetwork(model).trace(x, np.array([[0], [1]]), capture=["features"], wrt=["features"])
    cpu = TorchNetwork(model.cpu()).trace(x, np.array([[0], [1]]), capture=["features"], wrt=["features"])
    np.testing.assert_allclose(trace.gradients["features"], cpu.gradients["features"], atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_zoo_model_on_cuda_matches_cpu(cat):
    gpu = heatlens.explain(heatlens.load_model(device="cuda"), cat, target="top3")
    cpu = heatlens.explain(heatlens.load_model(device="cpu"), cat, target="top3")
    np.testing.assert_array_equal(gpu.targets.ids, cpu.targets.ids)
    difference = np.abs(gpu.maps - cpu.maps).max() / cpu.maps.max()
    assert difference < 1e-2, f"GPU and CPU maps differ by {difference:.2e} of the peak (cuDNN may use TF32)"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_attributions_match_cpu_and_tf32_switches_are_restored(cat):
    torch.backends.cudnn.allow_tf32 = True
    gpu = heatlens.explain(heatlens.load_model(device="cuda"), cat, method="guided_backprop")
    cpu = heatlens.explain(heatlens.load_model(), cat, method="guided_backprop")
    assert torch.backends.cudnn.allow_tf32 is True
    assert np.abs(gpu.attributions - cpu.attributions).max() / np.abs(cpu.attributions).max() < 1e-4


class _DropsRows(torch.nn.Module):
    """Returns one row fewer than it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = TinyCNN()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)[:-1]


class _Asserts(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-1] == 99, "only 99 px\nsecond line"
        return self.conv(x).mean((2, 3))


class _WritesIntoItsInput(TinyCNN):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(torch.nn.functional.relu(x, inplace=True))


class _FunctionalDropout(TinyCNN):
    """Dropout after the CAM layer through F.dropout(training=self.training), as many research models write it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.nn.functional.dropout(self.features(x), 0.5, self.training) * torch.tensor(2.0)
        return self.fc(torch.flatten(self.pool(a), 1))


def test_wrong_row_counts_and_a_models_own_assertions_are_model_errors(rng):
    x = _x(rng)
    with pytest.raises(ModelError, match="returned 1 rows of scores for 2 inputs"):
        heatlens.explain(heatlens.wrap(_DropsRows(), preprocess=None), x, method="gradcam", layer="inner.features")
    model = _Asserts()
    with pytest.raises(ModelError, match=r"_Asserts failed on an input of shape \(\d, 8, 8, 3\).*: only 99 px$"):
        heatlens.explain(heatlens.wrap(model, preprocess=None), x, method="gradcam", layer="conv")
    assert count_hooks(model) == 0


@pytest.mark.parametrize("method", ["saliency", "gradient_x_input", "integrated_gradients"])
def test_models_that_write_into_their_input_get_input_gradients(rng, method):
    torch.manual_seed(0)
    writer, plain = _WritesIntoItsInput(), TinyCNN()
    plain.load_state_dict(writer.state_dict())
    x = np.abs(_x(rng))  # relu(x) == x, so both models compute the same function here
    ours = heatlens.explain(heatlens.wrap(writer, preprocess=None), x, method=method, target=1)
    reference = heatlens.explain(heatlens.wrap(plain, preprocess=None), x, method=method, target=1)
    np.testing.assert_allclose(ours.maps, reference.maps, rtol=1e-5, atol=1e-6)


def test_ablationcam_traces_a_train_mode_model_in_eval_mode_and_leaves_no_attributes(rng):
    torch.manual_seed(0)
    model = _FunctionalDropout().train()
    before = set(vars(model))
    x = _x(rng, size=12)
    first = heatlens.explain(heatlens.wrap(model, preprocess=None), x, method="ablationcam", layer="features")
    second = heatlens.explain(heatlens.wrap(model, preprocess=None), x, method="ablationcam", layer="features")
    np.testing.assert_array_equal(first.maps, second.maps)
    assert set(vars(model)) == before and model.training
    eval_model = _FunctionalDropout()
    eval_model.load_state_dict(model.state_dict())
    reference = heatlens.explain(heatlens.wrap(eval_model.eval(), preprocess=None), x, method="ablationcam",
                                 layer="features")
    np.testing.assert_allclose(first.maps, reference.maps, rtol=1e-5, atol=1e-6)


def test_a_flipped_axis_of_size_one_is_copied_before_torch_sees_it(tiny, rng):
    x = _x(rng, n=1)
    flipped = x[::-1]  # numpy calls this contiguous, but its stride is negative
    net = TorchNetwork(tiny)
    np.testing.assert_array_equal(net.predict(flipped), net.predict(x.copy()))


def test_softmax_of_integer_scores_is_a_typed_error(rng):
    class Counts(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 2, 3)

        def forward(self, x):
            return self.conv(x).flatten(1).argsort(dim=1)[:, :3]

    with pytest.raises(LayerError, match="the scores do not depend on 'conv'"):
        heatlens.explain(heatlens.wrap(Counts(), preprocess=None), _x(rng), layer="conv", softmax=True)
