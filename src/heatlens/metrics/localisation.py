"""Localisation metrics: how much of a map falls on the object (a box or a mask)."""
