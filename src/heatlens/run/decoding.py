"""Images decoded and prepared in background threads while the model works on the batch before, in the
listing's order; an image that cannot be read becomes a Decoded with its reason, never an exception."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..errors import first_line
from ..images import load_image
from ..models import Network
from ..preprocess import Box
from .sources import Item

LOOKAHEAD_PER_THREAD = 8  # images decoded ahead of the model, per thread: enough to hide decoding, little memory


@dataclass
class Decoded:
    """One image ready for the model (`inputs` (h, w, C) float32, the crop `box` of its `size`) or, when it could
    not be read, its `error`; `photo` is kept only when overlays are drawn."""

    item: Item
    inputs: np.ndarray | None = None
    box: Box | None = None
    size: tuple[int, int] = (0, 0)
    photo: np.ndarray | None = None
    error: str | None = None


def default_threads() -> int:
    """Decoder threads: half the cores (the model's own threads take the rest), at least one."""
    return max(1, (os.cpu_count() or 2) // 2)


def decode(item: Item, network: Network, keep_photo: bool = False) -> Decoded:
    """Read and prepare one image; any failure is recorded with its reason (a corrupt file must not stop a run)."""
    try:
        photo = load_image(item.path)
        inputs = network.prepare(photo[None])[0]
        box = network.input_box(*photo.shape[:2])
    except Exception as exc:  # whatever a file does to the decoder, the run goes on
        return Decoded(item, error=f"{type(exc).__name__}: {first_line(exc)}")
    return Decoded(item, inputs, tuple(float(v) for v in box), photo.shape[:2],  # type: ignore[arg-type]
                   photo if keep_photo else None)


def decoded(items: Iterable[Item], network: Network, threads: int, keep_photos: bool = False) -> Iterator[Decoded]:
    """Each item decoded, in order, by `threads` background threads that keep a bounded number ahead."""
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="heatlens-decode") as pool:
        pending: deque[Future[Decoded]] = deque()
        try:
            for item in items:
                pending.append(pool.submit(decode, item, network, keep_photos))
                if len(pending) >= threads * LOOKAHEAD_PER_THREAD:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def batched(images: Iterable[Decoded], size: int) -> Iterator[list[Decoded]]:
    """Consecutive lists of `size` decoded images (the last one shorter)."""
    batch: list[Decoded] = []
    for image in images:
        batch.append(image)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
