"""A realistic synthetic dataset, made on demand, with the ground truth of every pixel.

Frames shaped like real annotation exports (issue 14), unlike the tidy
`maskdec.example`:
  - every frame lists its own ROIs, in random order, only for objects visible in
    that frame (one ROI per object, several ROIs sharing a class colour, some
    ROIs with attribute labels, a frame tag without a mask); now and then an
    annotator skipped a visible object, so its colour is undeclared in that frame;
  - an undeclared background colour (black): pixels that must become ignore_index;
  - an instance mask whose colours are reused for other objects of other classes;
  - a two-camera FrameGroup (sources "left" and "right", each with its own mask
    video): most ROIs say ``"sources": ["left", "right"]``, and one colour is
    declared by a left-only ROI as one class and by a right-only ROI as another;
  - the clips' frames interleaved (a shuffled merge) in frames.jsonl;
  - a long-GOP clip (x264's default keyint 250) referenced in shuffled order.

`RealisticDataset.truth(line, source_id, mask_id)` gives what each mask frame
shows and declares; `expected_label_map` the label map FORMAT.md §3 asks for.

    ds = make_realistic(folder, scale="test", seed=0, lossless=True)
    for sample in maskdec.iter_samples(ds.frames_path, images=False): ...
"""
from __future__ import annotations

import json
import math
import os
from collections import deque
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from .media.writer import write_video

__all__ = ["Scale", "SCALES", "CLASS_COLOURS", "BACKGROUND", "INSTANCE_COLOURS", "MaskTruth", "RealisticDataset",
           "make_realistic"]

Colour = tuple  # (r, g, b)

#: The colour of unlabelled pixels; no frame ever declares it.
BACKGROUND: Colour = (0, 0, 0)
#: Cityscapes colours. "traffic light" and "traffic sign" share one colour on purpose: the
#: left camera's ROIs declare it as the first, the right camera's as the second.
CLASS_COLOURS: dict[str, Colour] = {
    "road": (128, 64, 128), "sidewalk": (244, 35, 232), "building": (70, 70, 70),
    "vegetation": (107, 142, 35), "sky": (70, 130, 180),
    "person": (220, 20, 60), "rider": (255, 0, 0), "car": (0, 0, 142), "truck": (0, 0, 70),
    "bus": (0, 60, 100), "train": (0, 80, 100), "motorcycle": (0, 0, 230), "bicycle": (119, 11, 32),
    "traffic light": (250, 170, 30), "traffic sign": (250, 170, 30),
}
STUFF = ("sky", "building", "vegetation", "sidewalk", "road")
#: Instance colours, pairwise more than 60 apart (the default lossy tolerance).
INSTANCE_COLOURS: tuple[Colour, ...] = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200),
                                        (145, 30, 180), (70, 240, 240))
_CLASSES = tuple(CLASS_COLOURS)
_CLASS_ID = {name: i for i, name in enumerate(_CLASSES)}
_SEG_COLOURS = tuple(dict.fromkeys(CLASS_COLOURS.values()))  # distinct
_SEG_POSITION = np.array([_SEG_COLOURS.index(CLASS_COLOURS[n]) for n in _CLASSES] + [-1], np.int16)
# (relative width, height, shape) at the nearest row; smaller further up
_SIZES = {"person": (0.04, 0.17, "ellipse"), "rider": (0.05, 0.16, "ellipse"), "car": (0.17, 0.12, "rect"),
          "truck": (0.24, 0.17, "rect"), "bus": (0.30, 0.19, "rect"), "train": (0.42, 0.15, "rect"),
          "motorcycle": (0.08, 0.09, "ellipse"), "bicycle": (0.07, 0.08, "ellipse"),
          "traffic light": (0.025, 0.16, "rect"), "traffic sign": (0.06, 0.06, "rect")}
_MOVERS = ("car", "car", "person", "person", "truck", "bicycle", "rider", "motorcycle", "bus")
_STEREO_SHIFT = {"left": (0.0, 0.0), "right": (-0.015, -0.05)}  # (stuff, things) x shift per camera
_SHADES = np.array([(90, 90, 95), (180, 170, 160), (120, 110, 100), (40, 120, 40), (135, 190, 235),
                    (240, 200, 160), (200, 60, 60), (200, 30, 30), (220, 220, 230), (60, 90, 200),
                    (30, 140, 160), (30, 30, 30), (150, 60, 150), (240, 240, 60), (240, 240, 60),
                    (25, 25, 25)], np.float32)  # image shades per class, the last for background


@dataclass(frozen=True)
class Scale:
    """How big the dataset is: frame size and frames per clip."""

    width: int = 160
    height: int = 120
    street_clips: int = 2
    street_frames: int = 8
    instance_frames: int = 12
    stereo_frames: int = 8
    long_frames: int = 16
    fps: int = 30
    crf: int = 18  # lossy masks (H.264 yuv420p)


#: "test": a few seconds to make; "bench": 1080p with the 300-frame long-GOP clip.
SCALES: dict[str, Scale] = {
    "test": Scale(),
    "bench": Scale(width=1920, height=1080, street_clips=3, street_frames=30, instance_frames=30,
                   stereo_frames=30, long_frames=300),
}


@dataclass(frozen=True)
class Thing:
    """A moving object: class, shape and track (relative units), the frames it is in
    the scene, and the frames in which the annotator skipped it."""

    uid: str
    name: str
    x: float  # centre at frame `first`
    y: float  # bottom edge
    w: float
    h: float
    vx: float  # per frame
    first: int
    last: int
    camera: Optional[str] = None  # only this camera sees it
    skipped: frozenset = frozenset()

    def box(self, t: int, shift: float) -> tuple[float, float, float, float]:
        cx = self.x + self.vx * (t - self.first) + shift
        return cx - self.w / 2, self.y - self.h, cx + self.w / 2, self.y


@dataclass(frozen=True)
class Scene:
    """One clip's world: stuff layout and things; `inst` maps thing uid -> instance colour."""

    name: str
    n_frames: int
    cameras: tuple[str, ...]
    horizon: float
    buildings: tuple  # (x0, x1, top) relative
    trees: tuple  # (cx, cy, rx, ry) relative
    things: tuple[Thing, ...]
    inst: Mapping[str, Colour] = field(default_factory=dict)

    def render(self, t: int, height: int, width: int, camera: str) -> tuple[np.ndarray, np.ndarray]:
        """(class index per pixel, -1 unlabelled; thing index per pixel, -1 none) at frame t."""
        stuff_dx, thing_dx = _STEREO_SHIFT.get(camera, (0.0, 0.0))
        cls = np.full((height, width), -1, np.int16)
        obj = np.full((height, width), -1, np.int16)
        hz = self.horizon + 0.02 * math.sin(t / 9.0)
        row = lambda v: min(max(int(round(v * height)), 0), height)  # noqa: E731
        col = lambda v: min(max(int(round(v * width)), 0), width)  # noqa: E731
        cls[: row(hz)] = _CLASS_ID["sky"]
        for x0, x1, top in self.buildings:
            cls[row(top): row(hz + 0.12), col(x0 + stuff_dx): col(x1 + stuff_dx)] = _CLASS_ID["building"]
        for cx, cy, rx, ry in self.trees:
            sl, inside = _ellipse((cx + stuff_dx - rx, cy - ry, cx + stuff_dx + rx, cy + ry), height, width)
            cls[sl][inside] = _CLASS_ID["vegetation"]
        cls[row(hz + 0.2): row(hz + 0.27)] = _CLASS_ID["sidewalk"]
        cls[row(hz + 0.27): row(0.93)] = _CLASS_ID["road"]  # below: the ego car's hood, unlabelled
        order = sorted(range(len(self.things)), key=lambda k: self.things[k].y)  # nearer (lower) drawn later
        for k in order:
            thing = self.things[k]
            if not thing.first <= t <= thing.last or thing.camera not in (None, camera):
                continue
            box = thing.box(t, thing_dx)
            if _SIZES[thing.name][2] == "ellipse":
                sl, inside = _ellipse(box, height, width)
                cls[sl][inside], obj[sl][inside] = _CLASS_ID[thing.name], k
            else:
                sl = (slice(row(box[1]), row(box[3])), slice(col(box[0]), col(box[2])))
                cls[sl], obj[sl] = _CLASS_ID[thing.name], k
        return cls, obj


def _ellipse(box, height: int, width: int) -> tuple[tuple[slice, slice], np.ndarray]:
    """The bounding slices and the inside pixels of the ellipse inscribed in a relative box."""
    x0, y0, x1, y1 = box
    r0, r1 = max(int(math.floor(y0 * height)), 0), min(int(math.ceil(y1 * height)), height)
    c0, c1 = max(int(math.floor(x0 * width)), 0), min(int(math.ceil(x1 * width)), width)
    ys = (np.arange(r0, r1) + 0.5) / height
    xs = (np.arange(c0, c1) + 0.5) / width
    cy, cx, ry, rx = (y0 + y1) / 2, (x0 + x1) / 2, (y1 - y0) / 2, (x1 - x0) / 2
    inside = ((ys[:, None] - cy) / ry) ** 2 + ((xs[None, :] - cx) / rx) ** 2 <= 1.0
    return (slice(r0, max(r1, r0)), slice(c0, max(c1, c0))), inside


# ------------------------------------------------------------------ scenes

def _mover(rng: np.random.Generator, uid: str, name: str, first: int, last: int, *, x=None, vx=None,
           y=None, skip: float = 0.1) -> Thing:
    y = float(rng.uniform(0.66, 0.92)) if y is None else y
    near = 0.55 + (y - 0.6) * 1.6  # apparent size grows towards the bottom
    w, h, _shape = _SIZES[name]
    skipped = frozenset(t for t in range(first, last + 1) if rng.random() < skip)
    return Thing(uid, name, float(rng.uniform(0.1, 0.9)) if x is None else x, y, w * near, h * near,
                 float(rng.uniform(-0.02, 0.02)) if vx is None else vx, first, last, skipped=skipped)


def _stuff(rng: np.random.Generator) -> dict:
    xs = np.sort(rng.uniform(0.0, 1.0, 6))
    buildings = tuple((float(xs[i]), float(xs[i + 1]), float(rng.uniform(0.08, 0.25))) for i in (0, 2, 4))
    trees = tuple((float(rng.uniform(0.1, 0.9)), float(rng.uniform(0.38, 0.45)), 0.06, 0.08) for _ in range(2))
    return {"horizon": float(rng.uniform(0.3, 0.36)), "buildings": buildings, "trees": trees}


def _street(rng: np.random.Generator, name: str, n: int, *, bus_and_train: bool) -> Scene:
    things = []
    for k in range(int(rng.integers(4, 7))):
        first = int(rng.integers(-n // 2, n - 1))
        last = first + int(rng.integers(n // 3 + 1, n + 1))
        things.append(_mover(rng, f"{name}/{k}", _MOVERS[int(rng.integers(len(_MOVERS)))], first, last))
    if bus_and_train:  # a train the annotator labelled in odd frames only, behind a bus always labelled:
        # in even frames its colour, 20 from the bus's, is undeclared (FORMAT.md §3 nearest rule)
        things.append(Thing(f"{name}/train", "train", 0.5, 0.62, 0.5, 0.1, 0.004, 0, n - 1,
                            skipped=frozenset(range(0, n, 2))))
        things.append(_mover(rng, f"{name}/bus", "bus", 0, n - 1, x=0.3, vx=0.006, y=0.8, skip=0.0))
    return Scene(name, n, ("front",), things=tuple(things), **_stuff(rng))


def _instances(rng: np.random.Generator, name: str, n: int) -> Scene:
    """Short-lived objects sharing a few instance colours: a freed colour goes to the next
    object, always of another class than its last owner's."""
    life = max(3, n // 3)
    count = 2 * len(INSTANCE_COLOURS) + 2
    free, busy, owner_class = deque(INSTANCE_COLOURS), [], {}
    things, inst = [], {}
    for k in range(count):
        first = int(round(k * (n + life) / count)) - life // 2
        last = first + life - 1
        for entry in sorted(busy):
            if entry[0] < first:
                busy.remove(entry)
                free.append(entry[1])
        if not free:
            continue
        colour = free.popleft()
        classes = [c for c in ("car", "person", "bicycle", "truck", "rider") if c != owner_class.get(colour)]
        cls = classes[int(rng.integers(len(classes)))]
        owner_class[colour] = cls
        thing = _mover(rng, f"{name}/{k}", cls, first, last, x=float(rng.uniform(0.15, 0.85)),
                       vx=float(rng.uniform(-0.3, 0.3)) / life)
        things.append(thing)
        inst[thing.uid] = colour
        busy.append((last, colour))
    return Scene(name, n, ("cam",), things=tuple(things), inst=inst, **_stuff(rng))


def _stereo(rng: np.random.Generator, name: str, n: int) -> Scene:
    scene = _street(rng, name, n, bus_and_train=False)
    own = (Thing(f"{name}/light", "traffic light", 0.12, 0.5, 0.03, 0.16, 0.0, 0, n - 1, camera="left"),
           Thing(f"{name}/sign", "traffic sign", 0.8, 0.45, 0.06, 0.08, 0.0, 0, n - 1, camera="right"))
    return Scene(name, n, ("left", "right"), scene.horizon, scene.buildings, scene.trees, scene.things + own)


# ------------------------------------------------------------------ the dataset

@dataclass(frozen=True)
class Track:
    """One mask file: which scene, camera and kind ("seg": class colours, "inst": instance colours)."""

    scene: Scene
    source_id: str
    mask_id: str
    uri: str

    @property
    def kind(self) -> str:
        return self.mask_id


@dataclass(frozen=True)
class MaskTruth:
    """What one mask frame shows and what its frame declares for it.

    colour_index: (H, W) int16 positions in `colours` (distinct), -1 for BACKGROUND;
    declared: colour -> class name, the frame's declarations for this mask;
    palette: every colour any frame declares for this mask file, sorted;
    objects: (H, W) int16 thing positions in `roi_ids` (-1: none or not declared).
    """

    colour_index: np.ndarray
    colours: tuple[Colour, ...]
    declared: Mapping[Colour, str]
    palette: tuple[Colour, ...]
    objects: np.ndarray
    roi_ids: tuple[str, ...]

    def class_names(self) -> np.ndarray:
        """(H, W) object array of class names, None where ignore_index is expected."""
        names = np.array([self.declared.get(c) for c in self.colours] + [None], object)
        return names[self.colour_index]

    def label_map(self, ids: Mapping[str, int], ignore_index: int = 255, dtype=np.uint8) -> np.ndarray:
        """The label map FORMAT.md §3 gives: the declared class's id, else ignore_index."""
        lut = np.array([ids.get(self.declared[c], ignore_index) if c in self.declared else ignore_index
                        for c in self.colours] + [ignore_index], dtype)
        return lut[self.colour_index]


class RealisticDataset:
    """The frames and ground truth of one generated dataset (media written by make_realistic)."""

    def __init__(self, root: Union[str, os.PathLike], *, scale: Union[str, Scale] = "test", seed: int = 0,
                 lossless: bool = False) -> None:
        self.root = Path(root)
        self.scale = SCALES[scale] if isinstance(scale, str) else scale
        self.seed = seed
        self.lossless = lossless
        self.frames_path = self.root / "frames.jsonl"
        s = self.scale
        rng = lambda k: np.random.default_rng([seed, k])  # noqa: E731
        scenes = [_street(rng(i), f"street{i}", s.street_frames, bus_and_train=i == 0)
                  for i in range(s.street_clips)]
        scenes += [_instances(rng(100), "instances", s.instance_frames), _stereo(rng(101), "stereo", s.stereo_frames),
                   _street(rng(102), "long", s.long_frames, bus_and_train=False)]
        self.scenes = {scene.name: scene for scene in scenes}
        ext = "mkv" if lossless else "mp4"
        self.tracks: dict[tuple[str, str, str], Track] = {}
        for scene in scenes:
            for camera in scene.cameras:
                masks = ("seg", "inst") if scene.inst else ("seg",)
                for mask_id in masks:
                    stem = mask_id if len(scene.cameras) == 1 else f"{camera}_{mask_id}"
                    self.tracks[(scene.name, camera, mask_id)] = Track(scene, camera, mask_id,
                                                                       f"{scene.name}/{stem}.{ext}")
        self.order = _merge_order(scenes, np.random.default_rng([seed, 200]))  # (scene, t) per line

    # ---- frames

    @cached_property
    def frames(self) -> list[dict]:
        """The frames.jsonl lines as dicts (URIs relative to `root`)."""
        rng = np.random.default_rng([self.seed, 300])
        s = self.scale
        return [self._frame(self.scenes[name], t, rng, s) for name, t in self.order]

    def _frame(self, scene: Scene, t: int, rng: np.random.Generator, s: Scale) -> dict:
        ts = int(t * 1000 / s.fps)  # writers truncate
        sources = []
        for camera in scene.cameras:
            uri = f"{scene.name}/image.mp4" if len(scene.cameras) == 1 else f"{scene.name}/{camera}.mp4"
            masks = [{"id": m, "uri": tr.uri, "content_type": "video/x-matroska" if self.lossless else "video/mp4"}
                     for (name, cam, m), tr in self.tracks.items() if name == scene.name and cam == camera]
            sources.append({"id": camera, "uri": uri, "content_type": "video/mp4", "timestamp": ts,
                            "width": s.width, "height": s.height, "masks": masks})
        seen: dict[str, list[str]] = {}  # what each camera shows: stuff names, thing uids
        for camera in scene.cameras:
            cls, obj = scene.render(t, s.height, s.width, camera)
            for k in np.unique(cls[cls >= 0]):
                seen.setdefault(_CLASSES[k], []).append(camera)
            for k in np.unique(obj[obj >= 0]):
                seen.setdefault(scene.things[k].uid, []).append(camera)
        rois: list[dict] = []
        for name in STUFF:
            if name in seen:
                rois.append(_roi(f"{scene.name}/{name}", [name], seen[name], "seg", CLASS_COLOURS[name], rng,
                                 len(scene.cameras)))
        for thing in scene.things:
            cams = seen.get(thing.uid)
            if not cams or t in thing.skipped:
                continue
            labels = [thing.name] + (["occluded"] if rng.random() < 0.2 else [])
            rois.append(_roi(thing.uid, labels, cams, "seg", CLASS_COLOURS[thing.name], rng, len(scene.cameras)))
            if thing.uid in scene.inst:
                rois.append(_roi(thing.uid, [thing.name], cams, "inst", scene.inst[thing.uid], rng, 1))
        rois.append({"id": "tags", "label": ["weather:sunny", "daytime"]})  # a frame tag: no mask
        rois = [rois[i] for i in rng.permutation(len(rois))]
        return {"id": f"{scene.name}-{t:04d}", "context_id": scene.name, "timestamp": ts, "sources": sources,
                "rois": rois}

    def keys(self) -> list[tuple[int, str, str]]:
        """(line, source id, mask id) of every sample, in iter_samples order."""
        return [(i, src["id"], m["id"]) for i, f in enumerate(self.frames) for src in f["sources"]
                for m in src["masks"]]

    def load(self, frames: Optional[Sequence[dict]] = None) -> list:
        """maskdec.Frame objects of `frames` (default: self.frames), relative URIs under root."""
        from .frames import Frame

        return [Frame.from_dict(f, path=f"$[{i}]", base_dir=self.root)
                for i, f in enumerate(self.frames if frames is None else frames)]

    # ---- declarations and truth

    def declared(self, line: int) -> dict[tuple[str, str], dict[Colour, str]]:
        """(source id, mask id) -> {colour: class} of one line (ROI rule 1, every listed source)."""
        frame = self.frames[line]
        out: dict = {(src["id"], m["id"]): {} for src in frame["sources"] for m in src["masks"]}
        for roi in frame["rois"]:
            if "mask" not in roi:
                continue
            for sid in roi.get("sources") or [frame["sources"][0]["id"]]:
                out[(sid, roi["mask"]["id"])][tuple(roi["mask"]["value"])] = roi["label"][0]
        return out

    @cached_property
    def palettes(self) -> dict[str, tuple[Colour, ...]]:
        """Mask URI -> every colour any line declares for it, sorted."""
        out: dict[str, set] = {}
        for line, frame in enumerate(self.frames):
            uris = {(src["id"], m["id"]): m["uri"] for src in frame["sources"] for m in src["masks"]}
            for key, decl in self.declared(line).items():
                out.setdefault(uris[key], set()).update(decl)
        return {uri: tuple(sorted(colours)) for uri, colours in out.items()}

    def track(self, line: int, source_id: str, mask_id: str) -> tuple[Track, int]:
        name, t = self.order[line]
        return self.tracks[(name, source_id, mask_id)], t

    def truth(self, line: int, source_id: str, mask_id: str) -> MaskTruth:
        """The ground truth of one sample."""
        track, t = self.track(line, source_id, mask_id)
        index, colours, obj = self._layer(track, t)
        frame = self.frames[line]
        declared_uids = {r["id"] for r in frame["rois"] if "mask" in r and r["mask"]["id"] == mask_id
                         and source_id in (r.get("sources") or [frame["sources"][0]["id"]])}
        things = track.scene.things
        ok = np.array([thing.uid in declared_uids for thing in things] + [False])
        objects = np.where(ok[obj], obj, -1).astype(np.int16)
        return MaskTruth(index, colours, self.declared(line)[(source_id, mask_id)], self.palettes[track.uri],
                         objects, tuple(thing.uid for thing in things))

    def _layer(self, track: Track, t: int) -> tuple[np.ndarray, tuple[Colour, ...], np.ndarray]:
        """(positions in the distinct colours of the track's kind, -1 for BACKGROUND; those
        colours; thing positions) of frame t of a track."""
        cls, obj = track.scene.render(t, self.scale.height, self.scale.width, track.source_id)
        if track.kind == "inst":
            where = [INSTANCE_COLOURS.index(track.scene.inst[thing.uid]) for thing in track.scene.things]
            return np.array(where + [-1], np.int16)[obj], INSTANCE_COLOURS, obj
        return _SEG_POSITION[cls], _SEG_COLOURS, obj

    def expected_label_map(self, line: int, source_id: str, mask_id: str, labels) -> np.ndarray:
        """The label map of one sample under `labels` (a maskdec LabelTable)."""
        return self.truth(line, source_id, mask_id).label_map(labels.ids, labels.ignore_index, labels.dtype)

    def mask_image(self, track: Track, t: int) -> np.ndarray:
        """(H, W, 3) RGB mask frame t of a track."""
        index, colours, _obj = self._layer(track, t)
        return np.array(colours + (BACKGROUND,), np.uint8)[index]

    def complete_frames(self) -> list[dict]:
        """The same lines with one complete, sorted ROI list per mask: every colour of the mask
        file's palette, each with one fixed class (the first it is declared with), on every line.
        The same pixels and the same work per frame, minus the per-frame variation."""
        first_class: dict[tuple[str, Colour], str] = {}
        for line, frame in enumerate(self.frames):
            uris = {(src["id"], m["id"]): m["uri"] for src in frame["sources"] for m in src["masks"]}
            for key, decl in self.declared(line).items():
                for colour, name in decl.items():
                    first_class.setdefault((uris[key], colour), name)
        out = []
        for frame in self.frames:
            rois = [{"label": [first_class[(m["uri"], c)]], "sources": [src["id"]],
                     "mask": {"id": m["id"], "value": list(c)}}
                    for src in frame["sources"] for m in src["masks"] for c in self.palettes[m["uri"]]]
            out.append({**frame, "rois": rois})
        return out

    # ---- media

    def write(self) -> None:
        """Write every video and frames.jsonl under root."""
        s = self.scale
        for track in self.tracks.values():
            path = self.root / track.uri
            path.parent.mkdir(parents=True, exist_ok=True)
            frames = (self.mask_image(track, t) for t in range(track.scene.n_frames))
            if self.lossless:
                write_video(path, frames, fps=s.fps, codec="ffv1", pix_fmt="bgr0")
            else:  # x264's defaults otherwise: keyint 250, so the long clip is one long GOP
                write_video(path, frames, fps=s.fps, codec="libx264", pix_fmt="yuv420p",
                            options={"crf": str(s.crf)})
        for scene in self.scenes.values():
            for camera in scene.cameras:
                uri = "image.mp4" if len(scene.cameras) == 1 else f"{camera}.mp4"
                write_video(self.root / scene.name / uri, (self.image(scene, t, camera) for t in range(scene.n_frames)),
                            fps=s.fps, codec="libx264", pix_fmt="yuv420p", options={"crf": "28", "preset": "veryfast"})
        write_jsonl(self.frames_path, self.frames)

    def image(self, scene: Scene, t: int, camera: str) -> np.ndarray:
        """A shaded RGB rendering of frame t (not the mask colours)."""
        cls, _obj = scene.render(t, self.scale.height, self.scale.width, camera)
        h, w = cls.shape
        wave = 0.85 + 0.15 * np.sin(np.arange(w, dtype=np.float32) / 11.0 + t / 5.0)
        img = _SHADES[cls] * wave[None, :, None]
        return np.clip(img, 0, 255).astype(np.uint8)

    def stamp(self) -> dict:
        return {"generator": 1, "scale": asdict(self.scale), "seed": self.seed, "lossless": self.lossless}


def _roi(uid: str, labels: list[str], cameras: list[str], mask_id: str, colour: Colour, rng: np.random.Generator,
         n_cameras: int) -> dict:
    roi = {"id": uid, "label": labels, "mask": {"id": mask_id, "value": list(colour)}}
    if n_cameras > 1 or rng.random() < 0.5:  # one camera: "sources" left out half the time (the first source)
        roi["sources"] = list(cameras)
    return roi


def _merge_order(scenes: Sequence[Scene], rng: np.random.Generator) -> list[tuple[str, int]]:
    """A shuffled merge: each clip in its own time order (the long clip shuffled), interleaved at random."""
    queues = []
    for scene in scenes:
        ts = list(range(scene.n_frames))
        if scene.name == "long":
            ts = [int(t) for t in rng.permutation(scene.n_frames)]
        queues.append(deque((scene.name, t) for t in ts))
    out = []
    while any(queues):
        weights = np.array([len(q) for q in queues], np.float64)
        out.append(queues[int(rng.choice(len(queues), p=weights / weights.sum()))].popleft())
    return out


def write_jsonl(path: Union[str, os.PathLike], frames: Sequence[dict]) -> None:
    """Write frame dicts as JSON lines, atomically."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for frame in frames:
            fh.write(json.dumps(frame) + "\n")
    os.replace(tmp, path)


def make_realistic(root: Union[str, os.PathLike], *, scale: Union[str, Scale] = "test", seed: int = 0,
                   lossless: bool = False, reuse: bool = False) -> RealisticDataset:
    """Write the realistic dataset into `root` and return it with its ground truth.

    lossless: FFV1 (bgr0, .mkv) masks; else H.264 yuv420p at the scale's crf (.mp4).
    reuse: keep the media already in `root` when they were made with the same arguments.
    """
    dataset = RealisticDataset(root, scale=scale, seed=seed, lossless=lossless)
    stamp_path = dataset.root / "realistic.json"
    if reuse and stamp_path.exists() and dataset.frames_path.exists():
        if json.loads(stamp_path.read_text()) == dataset.stamp():
            with open(dataset.frames_path, encoding="utf-8") as fh:
                dataset.__dict__["frames"] = [json.loads(line) for line in fh]  # no re-rendering
            return dataset
    dataset.root.mkdir(parents=True, exist_ok=True)
    stamp_path.unlink(missing_ok=True)
    dataset.write()
    stamp_path.write_text(json.dumps(dataset.stamp()) + "\n")
    return dataset

