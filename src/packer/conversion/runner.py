"""Running shard tasks: inline in this process, or on any executor, results in shard order.

The seam is :class:`concurrent.futures.Executor` (``submit`` -> future): a local process pool and
:class:`packer.run.cluster.DaskExecutor` both fit it. Tasks are
:func:`~packer.conversion.shard.write_shard` calls on picklable jobs and return small, checkable
:class:`~packer.conversion.result.ShardResult` records; results come back in shard order, and only
the driver commits them.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from packer._util.files import sha256_file
from packer.conversion.job import ShardJob, compact_job
from packer.conversion.result import ShardResult
from packer.conversion.resume import reusable as resumable
from packer.conversion.shard import write_shard
from packer.errors import OutputError
from packer.progress import Progress
from packer.run.cluster import ExecutorLike, as_executor
from packer.run.pools import local_pool

if TYPE_CHECKING:
    from packer.conversion.plan import Plan

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


def run_planned(
    plan: Plan,
    template: ShardJob,
    progress: Progress,
    done: Mapping[int, ShardResult],
    workers: int,
    executor: ExecutorLike | None,
    shards: Iterable[int] | None = None,
    reusable: Reusable = resumable,
) -> Iterator[ShardResult]:
    """Write the planned shards (all, or ``shards``) on ``executor``, a local pool of ``workers``
    processes, or in this process; yield them in shard order (those in ``done`` that ``reusable``
    accepts are not written again)."""
    jobs = plan.jobs(template, shards)
    if executor is not None:  # it schedules every shard itself; results come in shard order
        for result in run_on(
            as_executor(executor), jobs, progress, done, reusable, in_flight=len(jobs)
        ):
            if not template.dry_run:
                _check_returned(Path(template.out_dir), result)
            yield result
    elif workers > 1 and len(jobs) > 1:  # a pool for one shard would only cost its start-up
        workers = min(workers, len(jobs))
        with local_pool(workers) as pool:
            yield from run_on(pool, jobs, progress, done, reusable, in_flight=2 * workers)
    else:
        with cf.ThreadPoolExecutor(1) as inline:  # one at a time, in order, in this process
            yield from run_on(inline, jobs, progress, done, reusable, in_flight=1)


def _check_returned(out_dir: Path, result: ShardResult) -> None:
    """A shard written elsewhere (a cluster task, maybe run twice) is only trusted once its data
    file here has the size and sha256 the task reported."""
    path = out_dir / result.data_file.name
    if not path.is_file() or sha256_file(path) != result.data_file.sha256:
        raise OutputError(
            f"{path}: missing or not what its task wrote (sha256 differs); do the workers see "
            "the same filesystem at the same path? Nothing was committed"
        )
