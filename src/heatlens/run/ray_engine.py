"""--engine ray: the run's batches on Ray Data. The images left to do are read from a Parquet listing and mapped in
batches by model actors (one per GPU, else one per CPU but one), each decoding its images in threads and calling
the same BatchExplainer as the local engine; each batch comes back to the driver as one Arrow IPC payload, which
the pipeline writes into its atomic shards (so resuming and the output are the local engine's)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..errors import HeatlensError
from ..models import Network
from .arrow import pyarrow
from .decoding import decode
from .explaining import BatchExplainer, Plan
from .shards import atomic_write
from .sources import Item

TODO = ".ray-todo.parquet"
BLOCKS_PER_ACTOR = 4  # the listing is cut into this many blocks per actor, so every actor gets work


class ExplainActor:
    """A Ray actor holding one network: a batch of listing rows in, one row with the explained batch (Arrow IPC) out."""

    def __init__(self, factory: Callable[[], Network], plan: Plan, out: str, label_ids: dict[str, int],
                 threads: int) -> None:
        self.network = factory()
        self.explainer = BatchExplainer(self.network, plan, Path(out), label_ids)
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="heatlens-decode")

    def __call__(self, batch: Any) -> Any:
        pa = pyarrow()
        items = [Item(r["id"], r["path"], r["label"]) for r in batch.to_pylist()]
        keep = self.explainer.plan.overlays
        images = list(self.pool.map(lambda item: decode(item, self.network, keep), items))
        table = self.explainer(images)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return pa.table({"batch": pa.array([sink.getvalue().to_pybytes()], pa.binary())})


def run_on_ray(factory: Callable[[], Network], plan: Plan, out: Path, label_ids: dict[str, int], todo: list[Item],
               batch_size: int, address: str | None, actors: int | None, threads: int) -> Iterator[Any]:
    """The explained tables of `todo`, in the order the actors finish them."""
    if not todo:
        return
    try:
        import ray
        import ray.data
    except ImportError:
        raise HeatlensError("--engine ray needs Ray Data: pip install 'heatlens[scale]'") from None
    pa = pyarrow()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started = not ray.is_initialized()
    if started:
        ray.init(address=address or "local", include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": str(threads)}})  # one model thread set per actor
    try:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        cpus = int(ray.cluster_resources().get("CPU", 2))
        count = actors or gpus or max(1, cpus - 1)
        if not gpus and count >= cpus:
            raise HeatlensError(f"--actors {count} needs {count + 1} CPUs in the Ray cluster and it has {cpus}: an "
                                "actor pool that takes every CPU leaves none to read the listing, and hangs; give "
                                f"--actors {max(1, cpus - 1)} or fewer")
        context = ray.data.DataContext.get_current()
        context.use_datasource_v2 = False  # the v2 datasource leaves a one-file listing in one block (one actor busy)
        context.enable_progress_bars = False  # heatlens' own meter shows the progress
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        listing = out / TODO
        table = pa.table({"id": [i.id for i in todo], "path": [i.path for i in todo],
                          "label": pa.array([i.label for i in todo], pa.string())})
        atomic_write(listing, lambda temp: pa.parquet.write_table(table, temp))
        blocks = max(1, min(len(todo) // batch_size + 1, count * BLOCKS_PER_ACTOR))
        dataset = ray.data.read_parquet(str(listing), override_num_blocks=blocks).map_batches(
            ExplainActor, fn_constructor_args=(factory, plan, str(out), label_ids, threads), batch_size=batch_size,
            batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=count), num_gpus=1 if gpus else 0,
            num_cpus=0 if gpus else 1)
        for result in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            payloads: Any = result["batch"]
            for payload in payloads.to_pylist():
                yield pa.ipc.open_stream(payload).read_all()
        listing.unlink(missing_ok=True)
    finally:
        if started:
            ray.shutdown()
