"""Image decoding: any image file as uint8 RGB (or BGR) in its upright frame, whatever its mode, bit
depth or EXIF orientation (:func:`load_rgb`), what a file needs fixing (:func:`inspect_image`), and
the frames of a video (:class:`Video`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from .labels import FIXED, Problem


def inspect_image(path: Path) -> tuple[tuple[int, int], list[Problem]]:
    """(height, width) in the upright frame, and the fixes the image needs; raises on bad files."""
    problems = []
    if not path.exists():
        raise FileNotFoundError("missing")
    if path.stat().st_size == 0:
        raise ValueError("empty file")
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        im.load()  # decodes fully: catches truncation
        orientation = im.getexif().get(0x0112, 1)
        if orientation not in (1, None):
            problems.append(Problem(path, "EXIF orientation", FIXED, f"orientation {orientation}"))
            im = ImageOps.exif_transpose(im)
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            problems.append(Problem(path, "16-bit image", FIXED, im.mode))
        elif im.mode in ("RGBA", "LA", "PA"):
            problems.append(Problem(path, "alpha channel", FIXED, im.mode))
        elif im.mode != "RGB":
            problems.append(Problem(path, "non-RGB image", FIXED, im.mode))
        w, h = im.size
    return (h, w), problems


# EXIF orientation -> the numpy view that makes an image upright (as PIL's ``exif_transpose``)
_UPRIGHT = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
            5: lambda a: a.transpose(1, 0, 2), 6: lambda a: a.transpose(1, 0, 2)[:, ::-1],
            7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1], 8: lambda a: a.transpose(1, 0, 2)[::-1]}


def _decode_jpeg(data: bytes, order: str, buffer: np.ndarray | None = None) -> np.ndarray | None:
    """JPEG bytes decoded by libjpeg-turbo through simplejpeg into ``order`` ("BGR", "RGBX", ...),
    upright; None where it declines.

    The pixels are OpenCV's (the same library with the same slow integer DCT and fancy upsampling;
    tests check it), faster, and 4-channel output costs no more than 3. Files simplejpeg does
    not take strictly (damaged ones, or simplejpeg missing) return None for OpenCV and PIL to decode.
    """
    try:
        import simplejpeg

        img = simplejpeg.decode_jpeg(data, order, buffer=buffer)
    except Exception:  # any refusal (or no simplejpeg) falls back to OpenCV, which applies its own rules
        return None
    if b"Exif" in data[:65536]:
        from io import BytesIO

        with Image.open(BytesIO(data)) as im:
            orientation = im.getexif().get(0x0112, 1)
        if orientation in _UPRIGHT:
            img = np.ascontiguousarray(_UPRIGHT[orientation](img))
    return img


def load_rgb(path: Path, bgr: bool = False, channels: int = 3, buffer: np.ndarray | None = None) -> np.ndarray:
    """An image as uint8 ``(H, W, channels)`` RGB (or BGR) in the upright frame, whatever its mode or bit depth.

    ``channels=4`` appends a fourth channel (255) for OpenCV's 4-channel fast paths. JPEGs take a fast
    path (:func:`_decode_jpeg`, else OpenCV; both apply the EXIF orientation); other files, which may
    carry alpha or 16-bit samples, go through PIL.
    """
    img = None
    if path.suffix.lower() in (".jpg", ".jpeg"):
        img = _decode_jpeg(path.read_bytes(), ("BGR" if bgr else "RGB") + "X" * (channels == 4), buffer)
        if img is not None:
            return img
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is not None and not bgr:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img is None:
        img = _load_with_pil(path, bgr)
    return cv2.cvtColor(img, cv2.COLOR_BGR2BGRA) if channels == 4 else img  # (appends 255 in either order)


def _load_with_pil(path: Path, bgr: bool) -> np.ndarray:
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode.startswith("I"):
            arr = np.asarray(im, dtype=np.float64)
            top = 65535.0 if arr.max() > 255 else 255.0
            return np.repeat((arr / top * 255).round().astype(np.uint8)[..., None], 3, 2)
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            grey = Image.new("RGBA", im.size, (114, 114, 114, 255))
            im = Image.alpha_composite(grey, im)
        rgb = np.asarray(im.convert("RGB"))
        return np.ascontiguousarray(rgb[..., ::-1]) if bgr else rgb


@dataclass(frozen=True)
class Video:
    """A video file read through OpenCV: its frame rate, frame count (as the container states it) and
    frame size; iterating gives its frames as BGR uint8 ``(H, W, 3)``."""

    path: Path
    fps: float
    frames: int
    width: int
    height: int

    @classmethod
    def open(cls, path: Path) -> Video:
        """The video at ``path``; ``OSError`` if OpenCV cannot read it."""
        cap = cv2.VideoCapture(str(path))
        try:
            if not cap.isOpened():
                raise OSError(f"{path}: OpenCV cannot read this video")
            return cls(Path(path), cap.get(cv2.CAP_PROP_FPS) or 30.0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)),
                       int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        finally:
            cap.release()

    def __iter__(self) -> Iterator[np.ndarray]:
        return video_frames(self.path)

    def writer(self, path: Path) -> cv2.VideoWriter:
        """An OpenCV writer for a video of this one's rate and size at ``path`` (MJPG in ``.avi``, else mp4v)."""
        fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))
        writer = cv2.VideoWriter(str(path), fourcc, self.fps, (self.width, self.height))
        if not writer.isOpened():
            raise OSError(f"{path}: OpenCV cannot write this kind of video; use .mp4 or .avi")
        return writer


def video_frames(path: Path) -> Iterator[np.ndarray]:
    """The frames of the video at ``path`` as BGR uint8 ``(H, W, 3)``, read through one OpenCV capture;
    ``OSError`` (at the first frame asked for) if OpenCV cannot read it."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise OSError(f"{path}: OpenCV cannot read this video")
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield frame
    finally:
        cap.release()
