"""The frames a monitor session shows, rendered offscreen as sRGB uint8 arrays (H×W×3).

Every frame is a pure function of the display size and the frame's arguments, so the session log
plus this module reproduce exactly what was on screen. Frame types:

- ``black`` / ``white``: flat fields (dark level and vignetting/flat-field of the camera);
- ``colorchecker``: a 6×4 ColorChecker rendering (N. Ohta's reflectances under D65, as sRGB);
- ``fiducials``: four ArUco markers (``DICT_4X4_50`` ids 0–3) in the corners of the image area,
  each on a white quiet zone, for the capture→source homography;
- ``image``: a source image fitted into the image area (aspect kept, letterboxed on black).

Coordinates follow OpenCV's convention: pixel centres at integers, so the outer edge of a marker
drawn over columns ``x0 … x0+s-1`` lies at ``x0 - 0.5`` and ``x0 + s - 0.5``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FRAME_TYPES = ("black", "white", "colorchecker", "fiducials", "image")
ARUCO_DICT = cv2.aruco.DICT_4X4_50
MARKER_IDS = (0, 1, 2, 3)  # top-left, top-right, bottom-right, bottom-left


@dataclass(frozen=True)
class DisplayLayout:
    """Geometry of the slideshow on a display of ``height`` × ``width`` pixels.

    The image area is the display minus ``margin`` (a fraction of the shorter side) on every side;
    markers are ``marker_frac`` of the shorter side, inset by ``quiet`` of their size.
    """

    height: int
    width: int
    margin: float = 0.04
    marker_frac: float = 0.2

    @property
    def image_rect(self) -> tuple[int, int, int, int]:
        """(top, left, height, width) of the image area in display pixels."""
        m = round(self.margin * min(self.height, self.width))
        return m, m, self.height - 2 * m, self.width - 2 * m

    @property
    def marker_size(self) -> int:
        return max(24, round(self.marker_frac * min(self.height, self.width)))

    def marker_origins(self) -> list[tuple[int, int]]:
        """(y0, x0) of each marker's top-left pixel, in MARKER_IDS order."""
        top, left, h, w = self.image_rect
        s, q = self.marker_size, self.marker_size // 4
        return [(top + q, left + q), (top + q, left + w - q - s), (top + h - q - s, left + w - q - s),
                (top + h - q - s, left + q)]

    def marker_corners(self) -> dict[int, np.ndarray]:
        """Marker id → its 4 outer corners (x, y) in display coordinates, ArUco order (TL, TR, BR, BL)."""
        s = self.marker_size
        out = {}
        for mid, (y0, x0) in zip(MARKER_IDS, self.marker_origins()):
            a, b = x0 - 0.5, y0 - 0.5
            out[mid] = np.array([[a, b], [a + s, b], [a + s, b + s], [a, b + s]], dtype=np.float64)
        return out

    def fit(self, image_hw: tuple[int, int]) -> tuple[float, float, float]:
        """(scale, offset_y, offset_x): source pixel (x, y) is shown at display
        (offset_x + scale·(x + 0.5) - 0.5, offset_y + scale·(y + 0.5) - 0.5)."""
        top, left, h, w = self.image_rect
        ih, iw = image_hw
        scale = min(h / ih, w / iw)
        return scale, top + (h - scale * ih) / 2, left + (w - scale * iw) / 2

    def source_to_display(self, image_hw: tuple[int, int]) -> np.ndarray:
        """3×3 homography mapping source-image pixel coordinates to display coordinates."""
        s, oy, ox = self.fit(image_hw)
        return np.array([[s, 0, ox + 0.5 * s - 0.5], [0, s, oy + 0.5 * s - 0.5], [0, 0, 1]], dtype=np.float64)


def _flat(layout: DisplayLayout, value: int) -> np.ndarray:
    return np.full((layout.height, layout.width, 3), value, dtype=np.uint8)


def colorchecker_srgb() -> np.ndarray:
    """The 24 ColorChecker patches as sRGB uint8 (N. Ohta's reflectances under D65), (24, 3)."""
    import colour

    from isp_bench.synth import spectral

    linear = np.clip(spectral.colorchecker_srgb_linear("D65"), 0, 1)
    return np.round(colour.cctf_encoding(linear, function="sRGB") * 255).astype(np.uint8)


def render_colorchecker(layout: DisplayLayout) -> np.ndarray:
    frame = _flat(layout, 0)
    top, left, h, w = layout.image_rect
    patches = colorchecker_srgb()
    ph, pw = h / 4, w / 6
    gap = 0.08
    for i in range(24):
        r, c = divmod(i, 6)
        y0, y1 = int(top + (r + gap) * ph), int(top + (r + 1 - gap) * ph)
        x0, x1 = int(left + (c + gap) * pw), int(left + (c + 1 - gap) * pw)
        frame[y0:y1, x0:x1] = patches[i]
    return frame


def render_fiducials(layout: DisplayLayout) -> np.ndarray:
    frame = _flat(layout, 0)
    dictionary = cv2.aruco.getPredefinedDictionary(ARUCO_DICT)
    s, q = layout.marker_size, layout.marker_size // 4
    for mid, (y0, x0) in zip(MARKER_IDS, layout.marker_origins()):
        frame[y0 - q : y0 + s + q, x0 - q : x0 + s + q] = 255
        marker = cv2.aruco.generateImageMarker(dictionary, mid, s)
        frame[y0 : y0 + s, x0 : x0 + s] = marker[..., None]
    return frame


def render_image(layout: DisplayLayout, image: np.ndarray) -> np.ndarray:
    """``image`` (H×W×3 uint8 sRGB) fitted into the image area, by the exact homography of :meth:`fit`."""
    frame = _flat(layout, 0)
    m = layout.source_to_display(image.shape[:2])[:2]
    area = cv2.warpAffine(np.ascontiguousarray(image[..., :3]), m, (layout.width, layout.height),
                          flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    top, left, h, w = layout.image_rect
    frame[top : top + h, left : left + w] = area[top : top + h, left : left + w]
    return frame


def render_frame(layout: DisplayLayout, frame_type: str, image: np.ndarray | None = None) -> np.ndarray:
    """Render one frame of ``frame_type`` (one of :data:`FRAME_TYPES`)."""
    if frame_type == "black":
        return _flat(layout, 0)
    if frame_type == "white":
        return _flat(layout, 255)
    if frame_type == "colorchecker":
        return render_colorchecker(layout)
    if frame_type == "fiducials":
        return render_fiducials(layout)
    if frame_type == "image":
        if image is None:
            raise ValueError("an 'image' frame needs the source image")
        return render_image(layout, image)
    raise ValueError(f"unknown frame type {frame_type!r}; expected one of {', '.join(FRAME_TYPES)}")
