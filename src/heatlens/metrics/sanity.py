"""Sanity checks: maps must change when the model's weights or the explained class are randomised."""
