"""Opening media URIs and reading frames from them with PyAV."""
from .reader import MediaReader, image_rgb, mask_pixels
from .uri import is_remote, resolve_uri

__all__ = ["MediaReader", "image_rgb", "mask_pixels", "is_remote", "resolve_uri"]
