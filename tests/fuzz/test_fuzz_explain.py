"""The explain() fuzz campaign: every registered method x every adapter (tiny torch and Keras models and
predict functions, well-behaved and misbehaving) x drawn images, targets, layers and options.

Each case is classified (see fuzz_ledger.py); the last tests of this file assert that no case ended untyped,
non-finite, wrongly shaped or answered, changed the model or the caller's arrays, gave different maps on a
second seeded run, or refused a call made of valid inputs. Seeded per group, so every run draws the same
cases; HEATLENS_FUZZ=long draws ten times as many. The figures are printed at the end of the session.
"""

from __future__ import annotations

import time

import pytest
from fuzz_cases import CAMPAIGN, draw_case, family_adapters, run_case, serves
from fuzz_ledger import LEDGER, SCALE, Case, campaign
from hypothesis import assume
from hypothesis import strategies as st

from heatlens.methods import METHODS

FAMILIES = ("torch", "predict", "keras")
# Cases per method in the default mode (x10 in long mode): Keras calls cost ~20x a torch call.
PER_METHOD = {"torch": 120, "predict": 100, "keras": 12}
PER_METHOD_PREDICT_REFUSED = 15  # methods a predict function cannot serve: they must refuse it, typed
DONE: set[str] = set()


def planned(family: str, method: str) -> int:
    info = METHODS[method]
    if family == "predict" and (info.needs_gradients or info.uses_layer):
        return PER_METHOD_PREDICT_REFUSED * SCALE
    return PER_METHOD[family] * SCALE


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models on a shared 2-core box: one intra-op thread is ~20x faster than thread contention."""
    try:
        import torch
    except ImportError:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------- the campaign

def run_group(family: str, method: str) -> list[Case]:
    """Draw and run a group's cases once per session (later callers get the recorded cases)."""
    group = f"{method} / {family}"
    if group not in DONE:
        DONE.add(group)
        if not family_adapters(family):
            return []
        started = time.perf_counter()
        seen: set[str] = set()

        @campaign(group, planned(family, method))
        def cases(data: st.DataObject) -> None:
            spec = draw_case(data, family, method)
            assume(spec["repro"] not in seen)  # hypothesis' mutations often redraw a case it ran already
            LEDGER.add(run_case(family, method, spec))
            seen.add(spec["repro"])

        cases()
        LEDGER.seconds[CAMPAIGN] += time.perf_counter() - started
    return [c for c in LEDGER.cases[CAMPAIGN] if c.group == group]


GROUPS = [(family, method) for family in FAMILIES for method in sorted(METHODS)]


@pytest.mark.parametrize(("family", "method"), GROUPS, ids=[f"{f}-{m}" for f, m in GROUPS])
def test_group_reaches_the_method(family, method):
    """The group ran its cases, and they reached the method: some end ok where the adapter can serve it."""
    if family == "keras":
        pytest.importorskip("keras")
    if family == "torch":
        pytest.importorskip("torch")
    cases = run_group(family, method)
    assert len(cases) >= planned(family, method) // 2, f"only {len(cases)} cases drawn"
    endings = {c.ending for c in cases}
    if serves(family, method):
        assert "ok" in endings, f"no {method} case on {family} ended ok: the campaign never reached the method"
    else:
        assert "ok" not in endings, f"{method} explained a predict function: {cases[0].repro}"


def run_all() -> None:
    for family, method in GROUPS:
        run_group(family, method)


@pytest.mark.parametrize("outcome", ["untyped", "timeout", "nonfinite", "wrong_shape", "wrong_answer",
                                     "model_changed", "input_changed", "unstable", "refused"])
def test_no_case_ends(outcome):
    run_all()
    assert LEDGER.cases[CAMPAIGN], "no explain() case ran"
    assert not LEDGER.with_flag(CAMPAIGN, outcome), LEDGER.failure_message(CAMPAIGN, outcome)


def test_enough_cases_ran():
    pytest.importorskip("torch")  # the torch family carries most of the budget
    run_all()
    wanted = 20_000 if SCALE > 1 else 2_000
    assert len(LEDGER.cases[CAMPAIGN]) >= wanted, f"{len(LEDGER.cases[CAMPAIGN])} cases ran, want {wanted}"
