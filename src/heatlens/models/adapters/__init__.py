"""Adapters: one per framework (torch, Keras 3, black-box predict functions), each the framework-specific
half of the Network skeleton in ``models.base``: run a chunk with hooks or a tape, list layers, rectifier rules."""
