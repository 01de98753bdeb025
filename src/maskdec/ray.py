"""Samples as a Ray Data dataset (extra `maskdec[ray]`).

The driver plans once; each read task is one export work unit (export_work:
samples that share a media file stay together), so every file is opened and
decoded once, by one task, which yields small blocks as it decodes (streaming).
Ray itself is imported only when a function here runs.

    ds = maskdec.ray.read_samples("frames.jsonl", labels={"road": 0, "car": 1})
    for batch in ds.select_columns(["image", "label_map"]).iter_torch_batches(batch_size=8):
        ...
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence

from .errors import MissingExtraError, OptionError
from .export_work import make_units
from .options import Options
from .samples import FramesArg, SampleRequest, plan_of

if TYPE_CHECKING:
    import ray.data

    from .ray_datasource import MaskdecDatasource

__all__ = ["read_samples", "samples_datasource", "sample_units", "ON_FAILURE", "DEFAULT_SAMPLES_PER_BLOCK"]

#: What a read task does with a sample that cannot be made: raise its error (the
#: default, as iter_samples does) or leave the sample out of the dataset.
ON_FAILURE = ("raise", "skip")
DEFAULT_SAMPLES_PER_BLOCK = 8


def read_samples(
    frames: FramesArg,
    *,
    on_failure: str = "raise",
    samples_per_block: int = DEFAULT_SAMPLES_PER_BLOCK,
    override_num_blocks: Optional[int] = None,
    concurrency: Optional[int] = None,
    ray_remote_args: Optional[dict] = None,
    ray_address: Optional[str] = None,
    **options: Any,
) -> "ray.data.Dataset":
    """A Ray Data dataset with one row per (frame, source, mask) sample.

    Columns: `image` (H, W, 3) uint8 (absent with images=False), `label_map` (H, W)
    (absent with label_maps=False), `instance_map` (H, W) int32 with instances=True,
    `stats_exact` / `stats_snapped` / `stats_unknown` with stats=True, and the identity
    `frame_index`, `source_id`, `mask_id`, `timestamp`, `mask_timestamp`. Arrays of one
    size stack into batches; mixed sizes come as object arrays (Ray's variable-shaped tensors).
    Rows come in plan order within a work unit; units in any order.

    options: as for iter_samples (maskdec.Options), checked before anything runs; each
        read task decodes with threads=1 unless `threads` is given.
    on_failure: "raise" (default): a sample that cannot be made fails the read with its
        MaskdecError (a frame whose colours cannot be resolved fails here, on the driver);
        "skip": such samples are left out of the dataset.
    samples_per_block: samples per block a read task yields (at most 64 MiB of arrays;
        Ray may merge a task's blocks up to DataContext.target_max_block_size).
    override_num_blocks: read tasks (default: one per work unit); fewer packs whole units
        together, more lets Ray split the blocks. concurrency, ray_remote_args: as for
        ray.data.read_datasource (e.g. {"num_cpus": 2} with threads=2).
    ray_address: the cluster to join when Ray is not initialized in this process yet
        (default: a new local instance). Without Ray: MissingExtraError.
    """
    for name, value in (("override_num_blocks", override_num_blocks), ("concurrency", concurrency)):
        _check_count(name, value)
    source = samples_datasource(frames, on_failure=on_failure, samples_per_block=samples_per_block, **options)
    ray = _ray()
    if not ray.is_initialized():
        ray.init(address=ray_address, include_dashboard=False, log_to_driver=False)
    return ray.data.read_datasource(source, override_num_blocks=override_num_blocks or max(1, len(source.units)),
                                    concurrency=concurrency, ray_remote_args=ray_remote_args)


def samples_datasource(frames: FramesArg, *, on_failure: str = "raise",
                       samples_per_block: int = DEFAULT_SAMPLES_PER_BLOCK, **options: Any) -> "MaskdecDatasource":
    """The Datasource read_samples reads (arguments as there): options checked, frames
    planned once, samples in work units; `.labels` is the LabelTable in use."""
    if on_failure not in ON_FAILURE:
        raise OptionError(f"option 'on_failure' must be one of {', '.join(map(repr, ON_FAILURE))}, "
                          f"got {on_failure!r}")
    _check_count("samples_per_block", samples_per_block)
    opts = Options.of(options)
    opts = opts.replace(threads=opts.threads or 1)
    _ray()
    from .ray_datasource import MaskdecDatasource

    table, requests = plan_of(frames, opts)
    if on_failure == "raise":
        for r in requests:
            if r.error is not None:
                raise r.error
    return MaskdecDatasource(table, requests, sample_units(requests, images=opts.images), opts,
                             on_failure=on_failure, samples_per_block=samples_per_block)


def sample_units(requests: Sequence[SampleRequest], *, images: bool) -> list[list[int]]:
    """Plan positions of the decodable requests in export work units (each ascending):
    all the samples of a media file are in one unit."""
    return [[p for g in groups for p in g.positions]
            for groups in make_units(requests, images=images, shard=None, shard_size=1)]


def _check_count(name: str, value: Optional[int]) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise OptionError(f"option {name!r} must be an integer >= 1, got {value!r}")


def _ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError:
        raise MissingExtraError("maskdec.ray needs Ray Data; install it with `pip install maskdec[ray]`") from None
    return ray
