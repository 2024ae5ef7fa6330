"""pyarrow, imported on first use: heatlens run needs it (the `run` extra), nothing else in heatlens does."""

from __future__ import annotations

from typing import Any

from ..errors import HeatlensError


def pyarrow() -> Any:
    """The pyarrow module, or a one-line error saying how to install it."""
    try:
        import pyarrow as pa
        import pyarrow.parquet  # pa.parquet: the shard files
    except ImportError:
        raise HeatlensError("heatlens run writes Parquet and needs pyarrow: pip install 'heatlens[run]'") from None
    return pa
