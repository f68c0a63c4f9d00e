"""Where shards are written: in this process, in a local process pool, or on any executor.

The seam is :class:`concurrent.futures.Executor` (``submit`` -> future): a process pool and
:class:`packer.run.cluster.DaskExecutor` both fit it, so the code that plans and commits shards never
knows which one runs them. Tasks are :func:`~packer.conversion.shard.write_shard` calls on picklable jobs and
return small, checkable :class:`~packer.conversion.shard.ShardResult` records; results come back in shard
order, and only the driver commits them.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import multiprocessing
import multiprocessing.connection
import multiprocessing.forkserver
import os
import signal
import threading
from collections.abc import Callable, Iterator, Mapping

from packer.conversion.shard import ShardJob, ShardResult, compact_job, write_shard
from packer.progress import Progress

#: Decides whether a finished shard of an interrupted run can be reused for ``job``.
Reusable = Callable[[ShardResult | None, ShardJob], bool]


def run_inline(
    template: ShardJob,
    progress: Progress,
    done: dict[int, ShardResult],
    reusable: Reusable,
) -> Iterator[ShardResult]:
    """Write shards one after another in this process, each ended by the template's cut rule while
    reading (no stat pass over the tree first)."""
    n = len(template.paths)
    position, shard = 0, 0
    while position < n:
        job = dataclasses.replace(template, shard=shard, start=position)
        record = done.get(shard)
        if record is not None and reusable(record, job):
            progress.advance(record.data_file.num_samples, record.source_bytes)
            result = record
        else:
            done.clear()  # boundaries from here on may differ: nothing later can be reused
            result = write_shard(dataclasses.replace(job, stop=n), progress.advance)
        position += result.consumed
        shard += 1
        yield result


def run_on(
    executor: cf.Executor,
    jobs: list[ShardJob],
    progress: Progress,
    done: Mapping[int, ShardResult],
    reusable: Reusable,
    *,
    in_flight: int,
) -> Iterator[ShardResult]:
    """Write planned shards on ``executor``, at most ``in_flight`` at a time; yield them in shard
    order. On any error (or Ctrl-C) queued shards are cancelled before it propagates. ``done``
    may build its results when read (an update's kept shards): each is read once to decide and
    again when its turn comes, never all held at once."""
    reuse = {
        job.shard for job in jobs if job.shard in done and _reusable(done[job.shard], job, reusable)
    }
    queue = iter([job for job in jobs if job.shard not in reuse])
    futures: dict[int, cf.Future[ShardResult]] = {}

    def submit_next() -> None:
        following = next(queue, None)
        if following is not None:
            futures[following.shard] = executor.submit(write_shard, compact_job(following))

    try:
        for _ in range(in_flight):
            submit_next()
        for job in jobs:
            if job.shard in reuse:
                result = done[job.shard]
            else:
                # the task ran on a compacted job (its own slice, start 0): record the plan's start
                result = dataclasses.replace(futures.pop(job.shard).result(), start=job.start)
                submit_next()
            progress.advance(result.data_file.num_samples, result.source_bytes)
            yield result
    finally:
        for future in futures.values():
            future.cancel()


def _reusable(record: ShardResult, job: ShardJob, reusable: Reusable) -> bool:
    return reusable(record, job) and record.consumed == (job.stop or 0) - job.start


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


def _init_worker() -> None:
    """Worker initializer. Ctrl-C is the parent's to handle (it then stops the workers itself),
    and a worker whose parent died (SIGKILL, the OOM killer) exits instead of living on: a pool's
    queues never report the parent gone, so orphans would hold the terminal and the partial
    folder forever."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()


def _exit_with(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(1)  # a half-written shard keeps its per-attempt name; the next run removes it


#: What a shard-writing worker imports, loaded once in the fork server (see worker_context).
_PRELOAD = ("packer.conversion.shard", "packer.backends.registry", "numpy", "PIL.Image")


def worker_context() -> multiprocessing.context.BaseContext:
    """How packer starts worker processes (shard writing, deep verify). Never plain fork: this
    process may hold threads (the progress display, a hashing thread) and open handles.
    forkserver where the platform has it: workers fork from a clean server that imported packer
    once, so a pool starts in ~20 ms instead of ~0.2 s of interpreter start and imports per
    worker (0.4 CPU-seconds of a 2-worker convert); else spawn."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    # Add to the server's preload list, keeping what the application set (the list is only
    # read when the server starts; the attribute is private, hence the fallback).
    server = getattr(multiprocessing.forkserver, "_forkserver", None)
    current = list(getattr(server, "_preload_modules", None) or ["__main__"])
    ctx.set_forkserver_preload([*current, *(m for m in _PRELOAD if m not in current)])
    return ctx


@contextlib.contextmanager
def local_pool(workers: int) -> Iterator[cf.Executor]:
    """A process pool on this machine that is stopped at once (its workers terminated, not waited
    for) when the block ends with an error, a bad file or Ctrl-C."""
    ctx = worker_context()
    before = set(multiprocessing.active_children())
    pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker)
    try:
        yield pool
    except BaseException:
        # Only this pool's workers were started since `before` (convert starts no other process).
        for process in set(multiprocessing.active_children()) - before:
            process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
