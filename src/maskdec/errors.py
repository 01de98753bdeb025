"""The maskdec error family: one base, each leaf also a matching builtin."""
from __future__ import annotations


class MaskdecError(Exception):
    """Base of everything maskdec raises."""


class MaskdecWarning(UserWarning):
    """Warnings of lenient mode (an ROI skipped, a size fixed up)."""


class FrameFormatError(MaskdecError, ValueError):
    """A frame does not follow the format; `path` is the JSON path of the culprit."""

    def __init__(self, message: str, path: str = "") -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class LabelError(MaskdecError, ValueError):
    """The label table cannot be built (colour conflicts, ids that do not fit)."""


class MediaNotFoundError(MaskdecError, FileNotFoundError):
    """A media file or frames file does not exist."""


class MediaDecodeError(MaskdecError, ValueError):
    """A media file cannot be opened or decoded (truncated, corrupt, not media)."""


class TimestampRangeError(MaskdecError, ValueError):
    """A timestamp lies outside the media file's range of presented frames."""


class SizeMismatchError(MaskdecError, ValueError):
    """A declared or paired size disagrees with the decoded one."""


class MissingExtraError(MaskdecError, ImportError):
    """An optional dependency is needed; the message names the extra to install."""


class MediaAccessError(MaskdecError, PermissionError):
    """A media URI the settings do not let maskdec read (a scheme outside
    MASKDEC_URI_SCHEMES, a local path outside MASKDEC_MEDIA_ROOTS) or the system refuses."""


class OptionError(MaskdecError, ValueError):
    """An option or environment setting has a value maskdec cannot use; the message names it."""
