"""Local worker processes: how many, how they start, and a pool that stops at once on error.

The seam with the write path is :class:`concurrent.futures.Executor` (``submit`` -> future): a
process pool from :func:`local_pool` and :class:`packer.run.cluster.DaskExecutor` both fit it, so
:mod:`packer.conversion.runner`, which submits the shard tasks, never knows which one runs them.
This module knows nothing of shards.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from collections.abc import Iterator

from packer.images.checks import own_process


def available_cpus() -> int:
    """The CPUs this process may use: a SLURM allocation (``SLURM_CPUS_PER_TASK``), else the CPU
    affinity mask (containers, ``taskset``), not the machine's count (256 on a node where the job
    has 2)."""
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm.isdigit() and int(slurm) > 0:
        return int(slurm)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity API (macOS)
        return max(1, os.cpu_count() or 1)


def default_workers(decodes: bool) -> int:
    """``--workers`` when not given. A convert that decodes images (a transform, ``--validate
    full``) is CPU-bound in one thread: one worker per CPU. A byte copy already keeps about 1.5
    CPUs busy per worker (reading and checking, plus the background write-and-hash thread), so it
    gets one worker per two CPUs: on a 2-CPU machine a pool only added its start-up and the stat
    pass (measured 0.7-1.1x), while a resizing convert ran 1.65x faster with 2 workers."""
    cpus = available_cpus()
    return cpus if decodes else max(1, cpus // 2)


def init_worker() -> None:
    """Initializer of packer's own worker processes (their process state is packer's to set).

    Ctrl-C is the parent's to handle (it then stops the workers itself), and a worker whose parent
    died (SIGKILL, the OOM killer) exits instead of living on: a pool's queues never report the
    parent gone, so orphans would hold the terminal and the partial folder forever. Decoding is
    set up as packer's own (:func:`packer.images.checks.own_process`), never in the caller's.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    own_process()
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()


def _exit_with(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(1)  # a half-written shard keeps its per-attempt name; the next run removes it


#: What a shard-writing worker imports: the ``pack`` command has the fork server load it once.
PRELOAD = ("packer.conversion.shard", "packer.backends.registry", "numpy", "PIL.Image")


def worker_context() -> multiprocessing.context.BaseContext:
    """How packer starts worker processes (shard writing, deep verify). Never plain fork: this
    process may hold threads (the progress display, a hashing thread) and open handles.
    forkserver where the platform has it, else spawn. The fork server's preload list is the
    program's own (process-wide): only the ``pack`` command sets it, see :func:`preload_workers`."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    return multiprocessing.get_context("forkserver")


def preload_workers() -> None:
    """Have the fork server import packer once, so a pool starts in ~20 ms instead of ~0.2 s of
    interpreter start and imports per worker (0.4 CPU-seconds of a 2-worker convert).

    Process-wide (``multiprocessing.set_forkserver_preload``), so only the ``pack`` command calls
    it; a program using the library keeps its own list and pays the start-up per worker.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        multiprocessing.set_forkserver_preload(["__main__", *PRELOAD])


@contextlib.contextmanager
def local_pool(workers: int) -> Iterator[cf.Executor]:
    """A process pool on this machine that is stopped at once (its workers terminated, not waited
    for) when the block ends with an error, a bad file or Ctrl-C."""
    ctx = worker_context()
    before = set(multiprocessing.active_children())
    pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=init_worker)
    try:
        yield pool
    except BaseException:
        # Only this pool's workers were started since `before` (convert starts no other process).
        for process in set(multiprocessing.active_children()) - before:
            process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
