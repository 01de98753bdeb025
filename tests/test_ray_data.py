"""maskdec.ray.read_samples on a real local Ray instance: the samples of iter_samples, as a Ray Data dataset."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import maskdec
from maskdec.errors import LabelError, MediaNotFoundError, OptionError
from maskdec.realistic import make_realistic
from maskdec.samples import SampleIterator, _as_frames, plan_samples
from test_export import make_dataset

# Ray binds a single-node instance to the loopback address only with this (see test_ray.py).
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
import maskdec.ray as mray  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    """A 2-CPU local Ray instance for this module."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def realistic(tmp_path_factory):
    """Issue 14's realistic dataset: shuffled frames over several clips, a two-camera group,
    an instance mask; lossless masks."""
    return make_realistic(tmp_path_factory.mktemp("realistic"), scale="test", seed=0, lossless=True)


def key(row) -> tuple:
    return int(row["frame_index"]), str(row["source_id"]), str(row["mask_id"])


def reference(frames, **options) -> dict:
    return {(s.frame_index, s.source_id, s.mask_id): s for s in maskdec.iter_samples(frames, **options)}


def media_files(source) -> set[str]:
    return {uri for r in source.requests for uri in (r.mask_uri, r.image_uri)}


def test_every_sample_once_with_the_arrays_of_iter_samples(local_ray, realistic):
    expected = reference(realistic.frames_path)
    ds = mray.read_samples(realistic.frames_path)
    rows = ds.take_all()
    keys = [key(r) for r in rows]
    assert len(keys) == len(set(keys)) == len(expected) == 72
    assert set(keys) == set(expected)
    for row in rows:
        sample = expected[key(row)]
        assert row["image"].dtype == np.uint8 and row["image"].shape == sample.image.shape
        assert np.array_equal(row["image"], sample.image), key(row)
        assert row["label_map"].dtype == sample.label_map.dtype
        assert np.array_equal(row["label_map"], sample.label_map), key(row)
        assert (row["timestamp"], row["mask_timestamp"]) == (sample.timestamp, sample.mask_timestamp)
    assert set(ds.input_files()) == {os.path.join(realistic.root, f) for f in _uris(realistic)}


def _uris(realistic) -> set[str]:
    return {uri for frame in realistic.frames for s in frame["sources"]
            for uri in [s["uri"]] + [m["uri"] for m in s["masks"]]}


def test_read_tasks_are_the_export_work_units(realistic):
    """Each media file is read by exactly one task (so decoded once); packing keeps units whole."""
    source = mray.samples_datasource(realistic.frames_path)
    assert len(source.units) >= 4  # the clips do not share files: several units, run in parallel
    for n_tasks in (len(source.units), 2):
        tasks = source.get_read_tasks(n_tasks)
        assert len(tasks) == n_tasks
        seen: set[str] = set()
        for task in tasks:
            files = set(task.metadata.input_files)
            assert not files & seen, f"{files & seen} read by two tasks"
            seen |= files
        assert seen == media_files(source)
        assert sum(t.metadata.num_rows for t in tasks) == 72


def test_a_read_task_streams_blocks_of_a_few_samples(realistic):
    source = mray.samples_datasource(realistic.frames_path, images=False, samples_per_block=3)
    task = max(source.get_read_tasks(len(source.units)), key=lambda t: t.metadata.num_rows)
    assert task.metadata.num_rows > 3
    blocks = iter(task())
    first = next(blocks)  # made before the rest of the unit is decoded
    sizes = [first.num_rows] + [b.num_rows for b in blocks]
    assert sizes[0] == 3 and max(sizes) <= 3 and sum(sizes) == task.metadata.num_rows
    assert "image" not in first.column_names


def test_options_reach_the_read_tasks(local_ray, realistic):
    derived = mray.samples_datasource(realistic.frames_path).labels
    assert derived.ids == maskdec.iter_samples(realistic.frames_path).labels.ids
    labels = {name: 20 + i for i, name in enumerate(sorted(derived.ids, reverse=True))}  # not the derived ids
    options = dict(images=False, instances=True, stats=True, labels=labels, ignore_index=200)
    expected = reference(realistic.frames_path, **options)
    ds = mray.read_samples(realistic.frames_path, **options)
    assert "image" not in ds.columns()
    rows = ds.take_all()
    assert len(rows) == len(expected)
    for row in rows:
        sample = expected[key(row)]
        assert np.array_equal(row["label_map"], sample.label_map)
        assert np.array_equal(row["instance_map"], sample.instance_map)
        assert (row["stats_exact"], row["stats_snapped"], row["stats_unknown"]) == \
            (sample.stats.exact, sample.stats.snapped, sample.stats.unknown)
    assert any(np.any(r["label_map"] == 200) for r in rows)  # the undeclared background
    assert all(np.isin(r["label_map"], [200, *labels.values()]).all() for r in rows)


def test_limit_and_fewer_read_tasks(local_ray, realistic):
    """ds.limit (Ray pushes a row limit into the read tasks) and override_num_blocks (units packed whole)."""
    expected = reference(realistic.frames_path, images=False)
    rows = mray.read_samples(realistic.frames_path, images=False).limit(5).take_all()
    assert len(rows) == 5 and len({key(r) for r in rows}) == 5
    packed = mray.read_samples(realistic.frames_path, images=False, override_num_blocks=2)
    rows = packed.take_all()
    assert sorted(key(r) for r in rows) == sorted(expected)
    for row in rows:
        assert np.array_equal(row["label_map"], expected[key(row)].label_map)


@pytest.mark.parametrize("options, match", [
    ({"tolerence": 3}, "tolerance"),  # misspelt
    ({"images": "yes"}, "images"),
    ({"on_failure": "ignore"}, "on_failure"),
    ({"samples_per_block": 0}, "samples_per_block"),
    ({"override_num_blocks": -1}, "override_num_blocks"),
])
def test_a_bad_option_is_an_option_error(realistic, options, match):
    with pytest.raises(OptionError, match=match):
        mray.read_samples(realistic.frames_path, **options)


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> Path:
    """Two clips and a still; clip b's mask video is gone."""
    root = tmp_path_factory.mktemp("broken")
    frames = make_dataset(root)
    os.remove(root / "b" / "mask.mp4")
    return frames


def test_a_failed_sample_fails_the_read_by_default(local_ray, broken):
    """As iter_samples raises it: Ray's error is also a MediaNotFoundError, naming the file."""
    ds = mray.read_samples(broken)
    with pytest.raises(MediaNotFoundError, match=r"media file not found: .*b/mask\.mp4"):
        ds.take_all()


def test_failed_samples_are_left_out_with_on_failure_skip(local_ray, broken):
    table, requests = plan_samples(_as_frames(broken))
    made = list(SampleIterator.of(table, requests, maskdec.Options(), raise_errors=False))
    expected = {(s.frame_index, s.source_id, s.mask_id): s for s in made if isinstance(s, maskdec.Sample)}
    assert expected and len(expected) < len(made)  # clip b's samples fail, the others do not
    rows = mray.read_samples(broken, on_failure="skip").take_all()
    assert sorted(key(r) for r in rows) == sorted(expected)
    for row in rows:
        assert np.array_equal(row["image"], expected[key(row)].image)
        assert np.array_equal(row["label_map"], expected[key(row)].label_map)


def test_a_frame_whose_colours_conflict_fails_on_the_driver(local_ray, tmp_path):
    """As iter_samples raises it (strict): before any task runs; on_failure="skip" leaves its sample out."""
    frames = make_dataset(tmp_path)
    lines = frames.read_text().splitlines()
    frame = json.loads(lines[1])
    frame["rois"].append({"label": ["car"], "mask": {"id": frame["rois"][0]["mask"]["id"],
                                                     "value": frame["rois"][0]["mask"]["value"]}})
    lines[1] = json.dumps(frame)
    frames.write_text("\n".join(lines) + "\n")
    with pytest.raises(LabelError, match=r"frames\[1\]"):
        mray.read_samples(frames)
    rows = mray.read_samples(frames, on_failure="skip").take_all()
    assert len(rows) == len(lines) - 1 and 1 not in {key(r)[0] for r in rows}


def test_images_of_several_sizes(local_ray, tmp_path):
    """Each clip its own size: rows keep their shapes (Ray's variable-shaped tensors)."""
    lines = []
    for size, part in (((64, 48), "small"), ((96, 64), "large")):
        make_dataset(tmp_path / part, n=4, width=size[0], height=size[1])
        for line in (tmp_path / part / "frames.jsonl").read_text().splitlines():
            frame = json.loads(line)
            for s in frame["sources"]:
                s["uri"] = f"{part}/{s['uri']}"
                for m in s["masks"]:
                    m["uri"] = f"{part}/{m['uri']}"
            lines.append(json.dumps(frame) + "\n")
    frames = tmp_path / "frames.jsonl"
    frames.write_text("".join(lines))
    expected = reference(frames)
    rows = mray.read_samples(frames).take_all()
    assert sorted(key(r) for r in rows) == sorted(expected)
    assert {r["image"].shape for r in rows} == {(48, 64, 3), (64, 96, 3)}
    for row in rows:
        assert np.array_equal(row["image"], expected[key(row)].image)
        assert np.array_equal(row["label_map"], expected[key(row)].label_map)


def checksums(samples) -> list[tuple]:
    return sorted((s.frame_index, s.timestamp, int(s.image.sum(dtype=np.int64)), int(s.label_map.sum(dtype=np.int64)))
                  for s in samples)


def test_iter_torch_batches(local_ray, realistic):
    import torch

    ds = mray.read_samples(realistic.frames_path).select_columns(["image", "label_map", "frame_index", "timestamp"])
    seen = []
    for batch in ds.iter_torch_batches(batch_size=8):
        assert batch["image"].dtype == torch.uint8 and batch["image"].shape[1:] == (120, 160, 3)
        assert batch["label_map"].shape == batch["image"].shape[:3]
        seen += [(int(f), int(t), int(i.sum(dtype=torch.int64)), int(m.sum(dtype=torch.int64)))
                 for f, t, i, m in zip(batch["frame_index"], batch["timestamp"], batch["image"], batch["label_map"])]
    assert sorted(seen) == checksums(maskdec.iter_samples(realistic.frames_path))


def test_ray_train_reads_the_dataset(local_ray, realistic, tmp_path):
    """A TorchTrainer worker iterates its shard as torch batches."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    def loop(config):
        import ray.train

        seen = []
        for batch in ray.train.get_dataset_shard("train").iter_torch_batches(batch_size=4):
            seen += [[int(f), int(v)] for f, v in zip(batch["frame_index"], batch["label_map"].flatten(1).sum(1))]
        Path(config["out"]).write_text(json.dumps(seen))

    ds = mray.read_samples(realistic.frames_path, images=False).select_columns(["label_map", "frame_index"])
    out = tmp_path / "seen.json"
    TorchTrainer(loop, train_loop_config={"out": str(out)}, scaling_config=ScalingConfig(num_workers=1),
                 datasets={"train": ds}, run_config=RunConfig(storage_path=str(tmp_path / "train"))).fit()
    seen = sorted(map(tuple, json.loads(out.read_text())))
    expected = sorted((s.frame_index, int(s.label_map.sum(dtype=np.int64)))
                      for s in maskdec.iter_samples(realistic.frames_path, images=False))
    assert seen == expected


def test_a_new_process_joins_the_running_instance_by_address(local_ray, realistic):
    """Without ray.init in the process, ray_address says where to run (as --ray-address does)."""
    code = ("import maskdec.ray, ray; ds = maskdec.ray.read_samples(%r, images=False, ray_address=%r); "
            "print(ds.count(), ray.get_runtime_context().gcs_address)" % (str(realistic.frames_path), local_ray))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == ["72", local_ray]


def test_without_ray_a_missing_extra_error_names_the_extra(realistic):
    code = ("import sys; sys.modules['ray'] = None\n"  # `import ray` fails as if Ray were not installed
            "import maskdec.ray\n"
            "try:\n"
            "    maskdec.ray.read_samples(%r)\n"
            "except maskdec.MissingExtraError as exc:\n"
            "    print(exc)\n" % str(realistic.frames_path))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "pip install maskdec[ray]" in done.stdout
