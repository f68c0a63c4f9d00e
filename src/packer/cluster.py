"""Dask as a place to write shards: a ``distributed`` cluster behind the executor seam.

``Client.get_executor()`` is a :class:`concurrent.futures.Executor`, so the convert code does not
change: shards are Dask tasks on workers that share the filesystem with the driver (SRC and DST at
the same paths). A worker lost mid-shard has its task re-run elsewhere; each attempt writes under a
name of its own and renames (see :func:`packer.shards.write_shard`), and the driver checks every
data file's sha256 against what the task reported. Needs ``pip install 'packer[dask]'``.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
from collections.abc import Iterator
from typing import Any

from packer.errors import UsageError

EXECUTORS = ("local", "dask")


@contextlib.contextmanager
def dask_executor(scheduler: str | None, workers: int | None) -> Iterator[cf.Executor]:
    """An executor on the Dask cluster at ``scheduler``, or on a ``LocalCluster`` of ``workers``
    single-threaded worker processes on this machine. Outstanding tasks are cancelled on exit."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise UsageError("--executor dask needs dask: pip install 'packer[dask]'") from None
    cluster = None
    try:
        if scheduler:
            client = Client(scheduler)  # connect timeout: dask's distributed.comm.timeouts.connect
        else:
            from packer.executors import available_cpus

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
        yield client.get_executor()
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
    nodes). Scale it with ``cluster.scale(jobs=N)`` and hand ``Client(cluster).get_executor()``
    to ``convert``; see docs/cluster.md."""
    try:
        from dask_jobqueue.slurm import SLURMCluster
    except ImportError:
        raise UsageError("SLURM clusters need dask-jobqueue: pip install 'packer[dask]'") from None
    return SLURMCluster(
        cores=jobs_cpus,
        processes=jobs_cpus,
        memory=memory,
        walltime=walltime,
        queue=queue,
        scheduler_options={"host": host} if host else {},
        **kwargs,
    )
