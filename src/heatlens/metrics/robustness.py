"""Robustness and complexity metrics: how much a map moves under small input changes, and how concentrated it is."""
