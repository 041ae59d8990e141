"""Ray, the engine for sweeps (Ray Tune) and batch embedding and scoring (Ray Data).

Without an address a local Ray is started inside the process, sized to the machine, with the
dashboard off, listening on loopback only and sending no usage statistics. With an address
(`--ray-address` or RAY_ADDRESS) the same work runs on an existing cluster; an address that does not
answer fails within seconds, naming it, instead of hanging."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from core.errors import TaxolensError

LOCAL_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
CONNECT_TIMEOUT_S = 5.0


class ClusterError(TaxolensError, RuntimeError):
    """Ray could not be started or reached; the message names the address and what to check."""


@dataclass(frozen=True)
class Engine:
    """Where the work ran: 'ray-local' (in-process) or 'ray-cluster', and the address used."""

    kind: str
    address: str


def _host_port(address: str) -> tuple[str, int] | None:
    addr = address.removeprefix("ray://")
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host or "127.0.0.1", int(port)


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast (seconds, not Ray's minutes of retries) when nothing listens at `address`."""
    hp = _host_port(address)
    if hp is None:
        raise ClusterError(f"Ray address {address!r} is not of the form HOST:PORT (e.g. 127.0.0.1:6379)")
    try:
        with socket.create_connection(hp, timeout=timeout):
            pass
    except OSError as exc:
        raise ClusterError(f"no Ray cluster answers at {address} ({exc.strerror or exc}); start one with "
                           f"`ray start --head --node-ip-address=127.0.0.1 --port={hp[1]}` or check the address") from None


def resolve_address(address: str | None) -> str | None:
    """The cluster address to use: the argument, else RAY_ADDRESS, else None (a local Ray)."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    return None if address in (None, "", "local") else address


def worker_env() -> dict:
    """Ray runtime_env for workers: this package shipped to them (so a cluster elsewhere can run our
    functions) and offline, single-threaded numeric libraries (one trial per CPU)."""
    from pathlib import Path

    return {"py_modules": [str(Path(__file__).resolve().parents[1])],
            "env_vars": {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}}


def _local_env_unless(address: str | None) -> str | None:
    """The resolved address; without one, the loopback-only, no-statistics environment is set first,
    before Ray's first import (Ray reads these variables into constants when it is imported)."""
    address = resolve_address(address)
    if not address:
        os.environ.update(LOCAL_ENV)
    return address


def init(address: str | None = None, num_cpus: int | None = None, runtime_env: dict | None = None) -> Engine:
    """Connect to `address`, or start (once per process) a local, loopback-only Ray."""
    address = _local_env_unless(address)
    import ray

    if ray.is_initialized():
        ctx = ray.get_runtime_context()
        return Engine("ray-cluster" if address else "ray-local", address or ctx.gcs_address)
    if address:
        check_reachable(address)
        try:
            ray.init(address=address, log_to_driver=False, logging_level="ERROR", runtime_env=runtime_env)
        except Exception as exc:  # Ray raises several types for a refused or mismatched cluster
            raise ClusterError(f"could not join the Ray cluster at {address}: {str(exc).splitlines()[0]}") from None
        return Engine("ray-cluster", address)
    try:
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR", configure_logging=True, _node_ip_address="127.0.0.1", runtime_env=runtime_env)
    except Exception as exc:  # a timeout, a full /tmp, no free port: Ray raises several types
        raise ClusterError(f"could not start a local Ray ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                           "check free memory and space in /tmp, or pass --ray-address of a running cluster") from None
    return Engine("ray-local", ray.get_runtime_context().gcs_address)


@contextmanager
def session(address: str | None = None, num_cpus: int | None = None, runtime_env: dict | None = None) -> Iterator[Engine]:
    """A Ray connection for one command; a Ray this call started is shut down afterwards."""
    address = _local_env_unless(address)
    import ray

    started = not ray.is_initialized()
    engine = init(address, num_cpus, runtime_env)
    try:
        yield engine
    finally:
        if started:
            ray.shutdown()


def pipeline_cpus(workers: int) -> int:
    """CPUs for a local Ray that runs a Ray Data pipeline of `workers` one-CPU actors: one more than
    the actors, because the pipeline's read tasks need a CPU too (Ray counts logical CPUs)."""
    return max(workers, 1) + 1


def actors_that_fit(workers: int) -> int:
    """How many one-CPU actors the connected cluster can hold beside the pipeline's read tasks:
    actors holding every CPU starve the readers, and Ray Data then waits forever without a word."""
    import ray

    total = int(ray.cluster_resources().get("CPU", 0))
    if total < 2:
        raise ClusterError(f"this Ray cluster has {total} CPU(s); a Ray Data pipeline needs at least 2 "
                           "(one for an actor, one for reading the table)")
    return min(max(workers, 1), total - 1)


def data_context() -> None:
    """Ray Data's context for our pipelines: rows keep the table's order, and Ray Data's own progress
    reports stay in its log file (the command shows one progress bar of its own)."""
    import logging

    import ray.data

    for handler in logging.getLogger("ray.data").handlers:
        if "File" not in type(handler).__name__:
            handler.setLevel(logging.WARNING)
    ray.data.DataContext.get_current().execution_options.preserve_order = True


def read_dataset(config: Any) -> Any:
    """The columns a product-table pipeline needs (id, text, image), through Ray Data's reader for
    the file's type; CSV/TSV columns as strings, as `iter_table` reads them."""
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.csv as pc
    import ray.data

    from core.data.tables import READERS, DataError

    path = str(Path(config.data).resolve())
    kind = READERS.get(Path(path).suffix.lower())
    columns = [c for c in (config.id_column, *config.text_columns, config.image_column) if c]
    if kind in ("csv", "tsv"):
        ds = ray.data.read_csv(path, parse_options=pc.ParseOptions(delimiter="," if kind == "csv" else "\t"),
                               read_options=pc.ReadOptions(column_names=config.column_names) if config.column_names else None,
                               convert_options=pc.ConvertOptions(column_types={c: pa.string() for c in columns},
                                                                 include_columns=columns, strings_can_be_null=False))
    elif kind == "parquet":
        ds = ray.data.read_parquet(path, columns=columns)
    elif kind == "jsonl":
        ds = ray.data.read_json(path, lines=True).select_columns(columns)
    else:
        raise DataError(f"unsupported data file type {Path(path).suffix!r}; use .csv, .tsv, .parquet or .jsonl")
    return ds.limit(config.max_rows) if config.max_rows else ds


def map_table(config: Any, actor: type, actor_kwargs: dict, *, workers: int, batch_rows: int,
              device: str) -> tuple[Any, int]:
    """The product table mapped, in order, by a pool of one-CPU `actor`s (one GPU each on 'cuda'),
    as many as fit beside the read tasks: (the dataset, the actors used). Call inside `session`."""
    import ray.data

    workers = actors_that_fit(workers)
    data_context()
    ds = read_dataset(config).map_batches(
        actor, fn_constructor_kwargs=actor_kwargs, compute=ray.data.ActorPoolStrategy(size=workers),
        batch_size=batch_rows, batch_format="pandas", num_cpus=1, num_gpus=1 if device == "cuda" else 0)
    return ds, workers
