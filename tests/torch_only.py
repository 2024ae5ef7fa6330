"""Registered methods that not every model can serve: those only the torch adapter serves so far (each with the
words of the one-line refusal the other adapters give: the contract and parity tests check the refusal instead
of the maps there), and the vision-transformer methods, whose contract is tests/methods/test_contract_vit.py."""

from __future__ import annotations

TORCH_ONLY: dict[str, str] = {}  # none at present: lrp runs on Keras (TensorFlow and JAX) too
ATTENTION_ONLY = frozenset({"attention_rollout", "chefer"})
