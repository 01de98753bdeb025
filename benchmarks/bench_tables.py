"""Colour table build times: maskdec.tables against the old builders, measured in one run.

Builds the palette index tables (RGB, and YUV bt709 limited range with its distance table)
for 20 and 255 colours (Cityscapes' 19 colours, then random ones, sorted) at tolerance 60
(radius2 3600) and prints, per table, the seconds of the new builders (best of N with the
kernel threads, best of N with one thread as export and DataLoader workers run, and the
first call of the run) beside the old builders' and the ratio. The old builders are
kernels.build_rgb_lut / build_yuv_lut as ColourTable.rgb_lut / yuv_lut called them before
maskdec.tables (kept in benchmarks/old_builders.pyx, compiled on the fly when Cython is
importable; ids 1..n, ignore 0); their tables are checked equal to the new ones.
Goals (issue 14): 20 colours <= 0.1 s and 255 colours <= 1 s for each table.

    python benchmarks/bench_tables.py [--repeat 5] [--no-old] [--json benchmarks/results/tables.json]

table_build_times() gives the new builders' figures alone (bench_real.py prints them).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np

from maskdec.tables import rgb_index_table, yuv_index_table
from maskdec.threads import kernel_threads

RADIUS2 = 3600  # tolerance 60
MATRIX, FULL_RANGE = "bt709", False
SIZES = (20, 255)
GOALS_S = {20: 0.1, 255: 1.0}
CITYSCAPES = [(128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
              (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
              (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32)]


def palette(n: int, seed: int = 0) -> np.ndarray:
    """n distinct colours, sorted: Cityscapes' 19, then random ones."""
    rng = np.random.default_rng(seed)
    found = {tuple(c) for c in CITYSCAPES[:n]}
    while len(found) < n:
        found.add(tuple(int(x) for x in rng.integers(0, 256, 3)))
    return np.array(sorted(found), np.uint8)


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def best_of(fn: Callable[[], object], repeat: int) -> float:
    return min(timed(fn) for _ in range(repeat))


@contextlib.contextmanager
def kernel_thread_count(threads: Optional[int]) -> Iterator[None]:
    """MASKDEC_KERNEL_THREADS set to `threads` (None: left alone) for the duration."""
    old = os.environ.get("MASKDEC_KERNEL_THREADS")
    if threads is not None:
        os.environ["MASKDEC_KERNEL_THREADS"] = str(threads)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MASKDEC_KERNEL_THREADS", None)
        else:
            os.environ["MASKDEC_KERNEL_THREADS"] = old


def new_builders(colours: np.ndarray) -> dict[str, Callable[[], object]]:
    return {"rgb": lambda: rgb_index_table(colours, RADIUS2, np.uint8),
            "yuv": lambda: yuv_index_table(colours, RADIUS2, MATRIX, FULL_RANGE, np.uint8)}


def compile_old_builders(build_dir: Path):
    """benchmarks/old_builders.pyx (the brute-force builders of 8d769ee) compiled as setup.py
    compiles the kernels (-O3), or None without Cython or a compiler."""
    try:
        from Cython.Build import cythonize
        from setuptools import Distribution, Extension
    except ImportError:
        return None
    ext = Extension("old_builders", [str(Path(__file__).with_name("old_builders.pyx"))],
                    include_dirs=[np.get_include()], extra_compile_args=["-O3"],
                    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")])
    dist = Distribution({"ext_modules": cythonize([ext], build_dir=str(build_dir), quiet=True)})
    cmd = dist.get_command_obj("build_ext")
    cmd.build_lib, cmd.build_temp = str(build_dir), str(build_dir / "tmp")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            dist.run_command("build_ext")
    except Exception as exc:  # no compiler, say
        print(f"old builders not compiled: {exc}")
        return None
    spec = importlib.util.spec_from_file_location("old_builders", cmd.get_ext_fullpath("old_builders"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def old_builders(colours: np.ndarray, kernels) -> Optional[dict[str, Callable[[], object]]]:
    """The builders ColourTable.rgb_lut / yuv_lut ran before maskdec.tables (None if not compiled)."""
    if kernels is None:
        return None
    ids = np.arange(1, len(colours) + 1, dtype=np.uint8)
    kr, kb = 0.2126, 0.0722  # bt709
    codes = np.arange(256, dtype=np.float64)
    luma, chroma = (codes - 16.0) / 219.0, (codes - 128.0) / 224.0

    def rgb() -> np.ndarray:
        lut = np.zeros(1 << 24, np.uint8)
        kernels.build_rgb_lut(colours, ids, RADIUS2, lut, np.full(1 << 24, 0xFFFFFFFF, np.uint32))
        return lut

    def yuv() -> tuple[np.ndarray, np.ndarray]:
        lut, dist = np.zeros(1 << 24, np.uint8), np.full(1 << 24, 255, np.uint8)
        kernels.build_yuv_lut(colours.astype(np.float64), ids, float(RADIUS2), luma, chroma, kr, kb, lut, dist)
        return lut, dist

    return {"rgb": rgb, "yuv": yuv}


def same(new, old, kind: str) -> None:
    """The new table equals the old one (YUV `dist`: where the new one is exact, up to the cap 61)."""
    if kind == "rgb":
        assert np.array_equal(new, old), "RGB tables differ"
        return
    (table, dist), (old_table, old_dist) = new, old
    assert np.array_equal(table, old_table), "YUV tables differ"
    assert np.array_equal(dist, np.where(old_dist <= 61, old_dist, 255)), "YUV distances differ"


def table_build_times(repeat: int = 3, threads: Optional[int] = None) -> dict[str, float]:
    """Seconds (best of `repeat`) to build the RGB and the YUV table for 20 and 255 colours at
    tolerance 60, with `threads` kernel threads (default kernel_threads())."""
    out = {}
    with kernel_thread_count(threads):
        for n in SIZES:
            for kind, build in new_builders(palette(n)).items():
                out[f"{kind}_{n}_colours_s"] = round(best_of(build, repeat), 4)
    return out


def measure(repeat: int, old_kernels) -> list[dict]:
    """A row per table and palette size: new builders (threads, one thread, first call), old builder, ratio."""
    rows = []
    for n in SIZES:
        colours = palette(n)
        new = new_builders(colours)
        old = old_builders(colours, old_kernels)
        for kind in ("rgb", "yuv"):
            first = timed(new[kind])  # the run's first build of this table: what a fresh worker pays
            best = best_of(new[kind], repeat)
            with kernel_thread_count(1):
                single = best_of(new[kind], repeat)
            old_s = None
            if old is not None:  # once: the old YUV build of 255 colours takes seconds
                t0 = time.perf_counter()
                want = old[kind]()
                old_s = time.perf_counter() - t0
                same(new[kind](), want, kind)
            rows.append({"table": kind, "colours": n, "new_s": round(best, 4), "new_1_thread_s": round(single, 4),
                         "new_first_call_s": round(first, 4), "old_s": None if old_s is None else round(old_s, 3),
                         "old_over_new": None if old_s is None else round(old_s / best, 1),
                         "goal_s": GOALS_S[n], "goal_met": best <= GOALS_S[n] and single <= GOALS_S[n]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="best of N builds (new builders)")
    ap.add_argument("--no-old", action="store_true", help="skip the old builders (about 15 s)")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "tables.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old_kernels = None if args.no_old else compile_old_builders(Path(tmp))
        rows = measure(args.repeat, old_kernels)
    result = {
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
                   f"{kernel_threads()} kernel threads",
        "load_average_1min": round(os.getloadavg()[0], 2),  # the VM is shared: figures are noisy when it is high
        "tables": f"2**24 cells, tolerance 60 (radius2 {RADIUS2}), YUV {MATRIX} "
                  f"{'full' if FULL_RANGE else 'limited'} range; Cityscapes' 19 colours + random ones",
        "rows": rows,
    }
    header = ["table", "colours", "new_s", "new_1_thread_s", "new_first_call_s", "old_s", "old_over_new",
              "goal_s", "goal_met"]
    print("  ".join(f"{h:>16}" for h in header))
    for row in rows:
        print("  ".join(f"{'-' if row[h] is None else row[h]!s:>16}" for h in header))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
