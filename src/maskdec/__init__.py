"""maskdec: dataset frames in, aligned (image, label map) pairs out.

    import maskdec
    for image, label_map in maskdec.iter_samples("frames.jsonl"):
        ...
"""
from .errors import (FrameFormatError, LabelError, MaskdecError, MaskdecWarning, MediaAccessError, MediaDecodeError,
                     MediaNotFoundError, MissingExtraError, OptionError, SizeMismatchError, TimestampRangeError)
from .frames import Frame, Mask, Roi, RoiMask, Source, load_frames
from .labels import LabelTable
from .lut import ColourTable, map_pixels
from .options import OptionError, Options
from .rois import RoiSample
from .samples import Sample, SampleFailure, iter_roi_samples, iter_samples, plan_samples
from .dataset import MaskDataset

__version__ = "0.1.0"

__all__ = [
    "MaskdecError", "FrameFormatError", "LabelError", "MediaNotFoundError", "MediaDecodeError",
    "TimestampRangeError", "SizeMismatchError", "MissingExtraError", "MediaAccessError", "OptionError",
    "MaskdecWarning",
    "Frame", "Source", "Mask", "Roi", "RoiMask", "load_frames",
    "LabelTable", "ColourTable", "map_pixels",
    "Sample", "SampleFailure", "iter_samples", "plan_samples", "MaskDataset", "RoiSample", "iter_roi_samples",
    "Options", "OptionError",
]
