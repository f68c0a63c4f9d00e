"""Converting on a real Dask cluster (distributed.LocalCluster, worker processes): same bytes as a
local convert, also when a worker dies mid-convert; the SLURM recipe's job script."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from factories import TreeFactory
from packer import convert, errors
from packer.cli.main import app
from packer.progress import NoProgress
from packer.testing import tree_digest

distributed = pytest.importorskip("distributed")

pytestmark = [
    # distributed's own shutdown warnings (closing comms, nanny restarts) are not packer's
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture(scope="module")
def tree(demo_trees: TreeFactory) -> Path:
    return demo_trees(per_class=40, size=24)


@pytest.fixture(scope="module")
def client() -> Any:
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", host="127.0.0.1"
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.mark.parametrize("backend", ["tar", "hdf5", "lmdb"])
def test_dask_gives_the_same_bytes(tree: Path, tmp_path: Path, client: Any, backend: str) -> None:
    one = convert(tree, tmp_path / "one.pack", backend, samples_per_shard=9).path
    on_dask = convert(
        tree, tmp_path / "dask.pack", backend, samples_per_shard=9, executor=client.get_executor()
    )
    assert on_dask.data_files > 4
    assert tree_digest(on_dask.path) == tree_digest(one)


class _KillOneWorker(NoProgress):
    """When the first shard comes back, kill one worker process (SIGKILL): its tasks are lost
    mid-write and Dask runs them again elsewhere."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.killed: int | None = None

    def advance(self, samples: int, nbytes: int) -> None:
        if self.killed is None:
            pids = self.client.run(os.getpid)
            self.killed = sorted(pids.values())[0]
            os.kill(self.killed, signal.SIGKILL)


def test_a_worker_killed_mid_convert_changes_nothing(tree: Path, tmp_path: Path) -> None:
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", host="127.0.0.1"
    )
    with distributed.Client(cluster) as c:
        killer = _KillOneWorker(c)
        report = convert(
            tree,
            tmp_path / "dask.pack",
            "zip",
            samples_per_shard=3,
            executor=c,
            progress=killer,
        )
    cluster.close()
    assert killer.killed is not None
    one = convert(tree, tmp_path / "one.pack", "zip", samples_per_shard=3).path
    assert report.data_files > 20
    assert tree_digest(report.path) == tree_digest(one)
    assert not list(report.path.glob(".*partial"))  # a lost attempt's file never survives


def test_cli_executor_dask_starts_a_local_cluster(tree: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["convert", str(tree), str(tmp_path / "p"), "-f", "memmap", "--samples-per-shard", "20",
         "--executor", "dask", "--workers", "2", "-q"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    one = convert(tree, tmp_path / "one", "memmap", samples_per_shard=20).path
    assert tree_digest(tmp_path / "p") == tree_digest(one)


def test_an_unreachable_scheduler_is_one_line(tree: Path, tmp_path: Path) -> None:
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        result = CliRunner().invoke(
            app,
            ["convert", str(tree), str(tmp_path / "p"), "--scheduler", "tcp://127.0.0.1:9", "-q"],
        )
    assert result.exit_code == errors.EXIT_USAGE
    assert "cannot reach the Dask scheduler" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "p").exists()


def test_slurm_recipe_job_script() -> None:
    """The docs' SLURMCluster recipe renders a job script (no SLURM needed to check it)."""
    from packer.run.cluster import slurm_cluster

    cluster = slurm_cluster(
        jobs_cpus=4, memory="16GB", walltime="02:00:00", queue="cpu", host="127.0.0.1"
    )
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH -p cpu" in script and "#SBATCH --cpus-per-task=4" in script
    assert "#SBATCH -t 02:00:00" in script and "distributed.cli.dask_worker" in script
    assert "--nthreads 1" in script and "--nworkers 4" in script  # a process per CPU


def test_executor_must_be_an_executor_or_a_client(tree: Path, tmp_path: Path) -> None:
    with pytest.raises(
        errors.UsageError, match="concurrent.futures.Executor or a distributed.Client"
    ):
        convert(tree, tmp_path / "p", "tar", samples_per_shard=5, executor=object())  # type: ignore[arg-type]
    assert not (tmp_path / "p").exists()
