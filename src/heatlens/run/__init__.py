"""heatlens run: explain whole datasets into resumable Parquet shards, on one machine or on a Ray cluster."""

from .explaining import Plan
from .meter import Summary
from .pipeline import run
from .sources import Item, list_source

__all__ = ["Item", "Plan", "Summary", "list_source", "run"]
