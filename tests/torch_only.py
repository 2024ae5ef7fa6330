"""Registered methods that only the torch adapter serves so far, each with the words of the one-line refusal the
other adapters give (the contract and parity tests check the refusal instead of the maps there)."""

from __future__ import annotations

TORCH_ONLY = {
    "lrp": "runs on torch models so far",
}
