"""The Ray backend for real, on a local Ray instance: same files as the process pool."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from maskdec.export import export
from test_export import make_dataset, tree

# Ray binds a single-node instance to the loopback address only with this (its default is the
# primary interface); set before Ray is imported, inherited by the CLI subprocess.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    """A 2-CPU local Ray instance for this module, on 127.0.0.1; yields its address."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        address = ray.get_runtime_context().gcs_address
        assert address.startswith("127.0.0.1:")
        yield address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("dataset"))


@pytest.mark.parametrize("fmt", ["png", "webdataset"])
def test_ray_backend_writes_what_the_process_pool_writes(local_ray, dataset, tmp_path, fmt):
    pool = export(dataset, tmp_path / "pool", format=fmt, shard_size=4, workers=2)
    on_ray = export(dataset, tmp_path / "ray", format=fmt, shard_size=4, backend="ray")
    assert (on_ray.samples, on_ray.failed) == (pool.samples, pool.failed) == (21, 0)
    assert tree(tmp_path / "ray") == tree(tmp_path / "pool")
    assert ray.is_initialized()  # a Ray instance the caller started is left running


def test_cli_joins_a_running_cluster_by_address(local_ray, dataset, tmp_path):
    pool = subprocess.run([sys.executable, "-m", "maskdec.cli", "export", str(dataset), "--out",
                           str(tmp_path / "pool"), "--workers", "2"], capture_output=True, text=True, timeout=300)
    assert pool.returncode == 0, pool.stderr
    on_ray = subprocess.run([sys.executable, "-m", "maskdec.cli", "export", str(dataset), "--out",
                             str(tmp_path / "ray"), "--backend", "ray", "--ray-address", local_ray, "--workers", "2"],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    assert on_ray.returncode == 0, on_ray.stderr
    assert "exported 21 samples, 0 failed" in on_ray.stderr
    assert tree(tmp_path / "ray") == tree(tmp_path / "pool")
