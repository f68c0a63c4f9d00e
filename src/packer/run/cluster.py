"""Dask as a place to write shards: a ``distributed`` cluster behind the executor seam.

:class:`DaskExecutor` is a :class:`concurrent.futures.Executor` over a ``distributed.Client``, so
the convert code does not change: shards are Dask tasks on workers that share the filesystem with the driver (SRC and DST at
the same paths). A worker lost mid-shard has its task re-run elsewhere; each attempt writes under a
name of its own and renames (see :func:`packer.conversion.shard.write_shard`), and the driver checks every
data file's sha256 against what the task reported. Needs ``pip install 'packer[dask]'``.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar, cast

from packer.errors import UsageError, require_extra

EXECUTORS = ("local", "dask")

T = TypeVar("T")


class TaskSubmitter(Protocol):
    """What a ``distributed.Client`` offers the write path: ``submit`` returning a future."""

    def submit(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any: ...


#: ``convert(executor=...)``: a concurrent.futures.Executor or a ``distributed.Client``.
ExecutorLike = cf.Executor | TaskSubmitter


class _DaskFuture(cf.Future[T]):
    """A concurrent.futures view of a Dask future that asks Dask itself for the outcome. (Only
    ``result``, ``exception``, ``done`` and ``cancel``: what the shard runner uses.)"""

    def __init__(self, future: Any) -> None:
        super().__init__()
        self._dask = future

    def result(self, timeout: float | None = None) -> T:
        return cast(T, self._dask.result(timeout=timeout))

    def exception(self, timeout: float | None = None) -> BaseException | None:
        return cast(BaseException | None, self._dask.exception(timeout=timeout))

    def done(self) -> bool:
        return bool(self._dask.done())

    def cancel(self) -> bool:
        self._dask.cancel()
        return True


class DaskExecutor(cf.Executor):
    """Shard tasks on a ``distributed.Client``. Not ``Client.get_executor()``: its futures copy
    the task's state once, and a task recomputed after its worker was lost could be reported as
    failed with a ``TypeError`` (seen with distributed 2026.8 when a worker was killed mid-convert);
    here ``result()`` waits on the Dask future itself, which follows the recomputation."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> cf.Future[T]:
        return _DaskFuture(self.client.submit(fn, *args, pure=False, **kwargs))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """The client belongs to the caller: nothing to stop here."""


def as_executor(executor: ExecutorLike) -> cf.Executor:
    """``convert(executor=...)`` accepts an Executor or a ``distributed.Client``."""
    if isinstance(executor, cf.Executor):
        return executor
    if type(executor).__module__.split(".")[0] == "distributed" and hasattr(executor, "submit"):
        return DaskExecutor(executor)
    raise UsageError(
        f"executor: expected a concurrent.futures.Executor or a distributed.Client, got "
        f"{type(executor).__name__}"
    )


@contextlib.contextmanager
def dask_executor(scheduler: str | None, workers: int | None) -> Iterator[cf.Executor]:
    """An executor on the Dask cluster at ``scheduler``, or on a ``LocalCluster`` of ``workers``
    single-threaded worker processes on this machine. Outstanding tasks are cancelled on exit."""
    require_extra("distributed", "dask", "--executor dask")
    from distributed import Client, LocalCluster

    cluster = None
    try:
        if scheduler:
            client = Client(scheduler)  # connect timeout: dask's distributed.comm.timeouts.connect
        else:
            from packer.run.pools import available_cpus

            cluster = LocalCluster(
                n_workers=workers or available_cpus(),
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                host="127.0.0.1",
            )
            client = Client(cluster)
    except OSError as exc:
        raise UsageError(
            f"cannot reach the Dask scheduler {scheduler or '(local)'}: {exc}; check the address"
        ) from None
    try:
        yield DaskExecutor(client)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def slurm_cluster(
    *,
    jobs_cpus: int,
    memory: str,
    walltime: str,
    queue: str | None = None,
    host: str | None = None,
    **kwargs: Any,
) -> Any:
    """A ``dask_jobqueue.SLURMCluster`` shaped for shard writing: one single-threaded worker
    process per CPU of each job (shards are Python-bound), ``jobs_cpus`` CPUs and ``memory`` per
    job. ``host``: the address the scheduler binds (the login node's, reachable from the compute
    nodes). Scale it with ``cluster.scale(jobs=N)`` and hand ``Client(cluster)`` to ``convert``; see docs/cluster.md."""
    require_extra("dask_jobqueue", "dask", "SLURM clusters")
    from dask_jobqueue.slurm import SLURMCluster

    return SLURMCluster(
        cores=jobs_cpus,
        processes=jobs_cpus,
        memory=memory,
        walltime=walltime,
        queue=queue,
        scheduler_options={"host": host} if host else {},
        **kwargs,
    )
