"""The registered methods that only vision transformers can serve (their contract is
tests/methods/test_contract_vit.py); every other method runs on every adapter that has gradients."""

from __future__ import annotations

ATTENTION_ONLY = frozenset({"attention_rollout", "chefer"})
