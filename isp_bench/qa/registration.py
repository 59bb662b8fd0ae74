"""Registration of a pair's two images, and of monitor captures onto their source images.

- :func:`global_alignment`: shift, rotation and scale between two renderings of one scene, with
  sub-pixel accuracy: phase correlation (Kuglin & Hines 1975) for the translation, refined by ECC
  over an affine warp (Evangelidis & Psarakis 2008, ``cv2.findTransformECC``), reported as a
  similarity (dx, dy, rotation, scale) plus the largest displacement of the frame's corners.
- :func:`local_motion`: what is left after the global warp, per tile, by phase correlation.
- :func:`monitor_homography`: for monitor captures, the homography from the four ArUco fiducials
  (16 sub-pixel corners) refined by ECC against the rendered fiducial frame; it crops the monitor area
  and warps it onto the source image (:func:`warp_to_source`).

Images are compared on a structure-only representation (:func:`structure`): luminance, high-pass
filtered and divided by its local contrast, so that the tone curve, white balance, exposure and
vignetting of the two renderings do not matter.

References:
    C. D. Kuglin, D. C. Hines, "The phase correlation image alignment method", IEEE Conf. Cybernetics
    and Society, 1975. G. D. Evangelidis, E. Z. Psarakis, "Parametric image alignment using enhanced
    correlation coefficient maximization", IEEE TPAMI 30(10), 2008. S. Garrido-Jurado et al.,
    "Automatic generation and detection of highly reliable fiducial markers under occlusion",
    Pattern Recognition 47(6), 2014 (ArUco).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from isp_bench.capture.frames import ARUCO_DICT, MARKER_IDS, DisplayLayout, render_frame
from isp_bench.colorimetry import SRGB_TO_XYZ

_ECC_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 200, 1e-6)


def luminance(image: np.ndarray) -> np.ndarray:
    """Luma-like grey (float32) of an H×W×3 image in [0, 1] (or uint8), or the image itself if 2-D:
    the Y row of the sRGB → XYZ matrix (Rec. 709 weights) applied to the code values."""
    img = np.asarray(image)
    if img.dtype == np.uint8:
        img = img.astype(np.float32) / 255.0
    img = img.astype(np.float32)
    if img.ndim == 3:
        img = img[..., :3] @ SRGB_TO_XYZ[1].astype(np.float32)
    return img


def structure(image: np.ndarray, *, sigma: float = 1.5, scale_px: float = 12.0) -> np.ndarray:
    """Structure-only representation: grey, denoised by a Gaussian of ``sigma``, minus its local mean
    (Gaussian of ``scale_px``) and divided by the local standard deviation at the same scale."""
    g = luminance(image)
    g = np.sqrt(np.clip(g, 0, None) + 1e-4)  # compress highlights: exposures and tone curves differ
    if sigma > 0:
        g = cv2.GaussianBlur(g, (0, 0), sigma)
    mean = cv2.GaussianBlur(g, (0, 0), scale_px)
    hp = g - mean
    std = np.sqrt(cv2.GaussianBlur(hp * hp, (0, 0), scale_px))
    return (hp / (std + 0.02 * float(np.median(std)) + 1e-6)).astype(np.float32)


@dataclass
class Alignment:
    """How ``moving`` sits on ``fixed``: ``warp`` (2×3) maps fixed pixel coordinates to moving ones."""

    warp: np.ndarray
    dx: float
    dy: float
    rotation_deg: float
    scale: float
    max_displacement_px: float
    correlation: float
    converged: bool

    def to_dict(self) -> dict:
        return {"dx": round(self.dx, 4), "dy": round(self.dy, 4), "rotation_deg": round(self.rotation_deg, 5),
                "scale": round(self.scale, 6), "max_displacement_px": round(self.max_displacement_px, 4),
                "correlation": round(self.correlation, 4), "converged": self.converged}


def _hann(shape) -> np.ndarray:
    return cv2.createHanningWindow((shape[1], shape[0]), cv2.CV_32F)


def phase_shift(fixed: np.ndarray, moving: np.ndarray) -> tuple[float, float, float]:
    """(dx, dy, response): ``moving`` ≈ ``fixed`` shifted by (dx, dy) (sub-pixel, phase correlation)."""
    (dx, dy), response = cv2.phaseCorrelate(fixed.astype(np.float32), moving.astype(np.float32), _hann(fixed.shape))
    return float(dx), float(dy), float(response)


def global_alignment(fixed: np.ndarray, moving: np.ndarray, *, motion: int = cv2.MOTION_AFFINE,
                     model_margin: float = 0.1) -> Alignment:
    """Global alignment of two renderings of one scene (H×W×3 or grey, same size): phase correlation,
    then ECC over a translation, then over ``motion`` (affine: shift, rotation, scale and shear) kept only
    where it removes more than ``model_margin`` of the decorrelation left by the translation (1 − ρ).
    On the simulated brackets, fitting noise in unrotated pairs removes at most ~2 % (weakly textured
    or blurred pairs included), a real 0.3° rotation 15–17 %."""
    f, m = structure(fixed), structure(moving)
    h, w = f.shape
    dx, dy, _ = phase_shift(f, m)
    init = np.array([[1, 0, dx], [0, 1, dy]], dtype=np.float32)
    converged, corr, warp = True, float("nan"), init
    try:  # the translation first; a richer model only where it explains clearly more (model selection)
        corr, warp = cv2.findTransformECC(f, m, init.copy(), cv2.MOTION_TRANSLATION, _ECC_CRITERIA, None, 5)
    except cv2.error:
        converged = False
    if motion != cv2.MOTION_TRANSLATION:
        try:
            corr2, warp2 = cv2.findTransformECC(f, m, warp.copy(), motion, _ECC_CRITERIA, None, 5)
            if not converged or corr2 - corr > model_margin * (1.0 - corr):
                corr, warp, converged = corr2, warp2, True
        except cv2.error:
            pass
    warp = warp.astype(np.float64)
    a = warp[:, :2]
    scale = float(np.sqrt(abs(np.linalg.det(a))))
    rotation = float(np.degrees(np.arctan2(a[1, 0] - a[0, 1], a[0, 0] + a[1, 1])))
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    moved_centre = a @ centre + warp[:, 2]
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float64)
    disp = corners @ a.T + warp[:, 2] - corners
    return Alignment(warp, float(moved_centre[0] - centre[0]), float(moved_centre[1] - centre[1]), rotation, scale,
                     float(np.linalg.norm(disp, axis=1).max()), float(corr), converged)


def quadrant_disagreement(fixed: np.ndarray, moving: np.ndarray, alignment: Alignment) -> float:
    """How far (pixels) the translation measured in each quadrant of the frame alone is from the one
    ``alignment``'s warp gives at that quadrant's centre: the largest of the four. Near 0 when the global
    measurement is reproducible; pixels when the frame has too little unambiguous structure for it (a smooth,
    saturated colour wheel, whose renderings differ most there, measured 4–5 px on pixel-aligned synthetic
    pairs where textured scenes give at most 0.35 px)."""
    h, w = fixed.shape[:2]
    worst = 0.0
    for y0, y1 in ((0, h // 2), (h // 2, h)):
        for x0, x1 in ((0, w // 2), (w // 2, w)):
            part = global_alignment(fixed[y0:y1, x0:x1], moving[y0:y1, x0:x1], motion=cv2.MOTION_TRANSLATION)
            centre = np.array([(x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2])
            predicted = alignment.warp[:, :2] @ centre + alignment.warp[:, 2] - centre
            worst = max(worst, float(np.hypot(part.dx - predicted[0], part.dy - predicted[1])))
    return worst


def warp_moving(moving: np.ndarray, warp: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``moving`` resampled onto the fixed grid (``warp``: fixed → moving coordinates, 2×3 or 3×3)."""
    src = np.ascontiguousarray(moving.astype(np.float32))
    if warp.shape == (3, 3):
        return cv2.warpPerspective(src, warp, (shape[1], shape[0]), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    return cv2.warpAffine(src, warp.astype(np.float64), (shape[1], shape[0]),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)


@dataclass
class LocalMotion:
    max_px: float  # largest residual displacement of a textured tile
    p90_px: float
    tiles: int  # textured tiles measured
    moving_tiles: int  # tiles displaced by more than the threshold
    vectors: list = field(default_factory=list)  # (y, x, dy, dx) per textured tile

    def to_dict(self) -> dict:
        return {"max_px": round(self.max_px, 3), "p90_px": round(self.p90_px, 3), "tiles": self.tiles,
                "moving_tiles": self.moving_tiles}


def local_motion(fixed: np.ndarray, moving_aligned: np.ndarray, *, tile: int = 48, threshold_px: float = 1.0,
                 min_response: float = 0.5, valid: np.ndarray | None = None) -> LocalMotion:
    """Residual displacement per ``tile``×``tile`` tile (half-overlapping) of two globally aligned images,
    by phase correlation of their structure images; tiles without texture, with a weak correlation
    peak (below ``min_response``: noise, no common structure), with a peak beyond a third of the tile,
    or outside ``valid`` are skipped."""
    f, m = structure(fixed), structure(moving_aligned)
    h, w = f.shape
    win = _hann((tile, tile))
    vecs = []
    for y in range(0, h - tile + 1, tile // 2):
        for x in range(0, w - tile + 1, tile // 2):
            if valid is not None and not valid[y : y + tile, x : x + tile].all():
                continue
            a, b = f[y : y + tile, x : x + tile], m[y : y + tile, x : x + tile]
            if a.std() < 0.3 or b.std() < 0.3:
                continue
            (dx, dy), resp = cv2.phaseCorrelate(np.ascontiguousarray(a), np.ascontiguousarray(b), win)
            if resp >= min_response and np.hypot(dx, dy) < tile / 3:  # larger: a spurious peak
                vecs.append((y, x, float(dy), float(dx)))
    if not vecs:
        return LocalMotion(0.0, 0.0, 0, 0, [])
    mags = np.array([np.hypot(v[2], v[3]) for v in vecs])
    # a moving tile counts when a half-overlapping neighbour moves too (one tile alone is noise)
    moving = [v for v, mag in zip(vecs, mags) if mag > threshold_px]
    confirmed = [v for v in moving if any(w is not v and abs(w[0] - v[0]) <= tile // 2 and abs(w[1] - v[1]) <= tile // 2
                                          for w in moving)]
    return LocalMotion(float(mags.max()), float(np.percentile(mags, 90)), len(vecs), len(confirmed), vecs)


# -- monitor captures --------------------------------------------------------------------------------

@dataclass
class MonitorRegistration:
    """``display_to_capture``: 3×3 homography from display pixels to capture pixels."""

    display_to_capture: np.ndarray
    markers_found: int
    reprojection_px: float  # RMS residual of the 16 (or fewer) marker corners under the homography
    ecc_refined: bool
    ecc_correlation: float

    def source_to_capture(self, layout: DisplayLayout, source_hw: tuple[int, int]) -> np.ndarray:
        return self.display_to_capture @ layout.source_to_display(source_hw)

    def to_dict(self) -> dict:
        return {"display_to_capture": np.round(self.display_to_capture, 9).tolist(),
                "markers_found": self.markers_found, "reprojection_px": round(self.reprojection_px, 4),
                "ecc_refined": self.ecc_refined, "ecc_correlation": round(self.ecc_correlation, 4)}


class RegistrationError(RuntimeError):
    pass


def detect_fiducials(image: np.ndarray, method: str = "SUBPIX") -> dict[int, np.ndarray]:
    """ArUco marker id → its 4 corners (x, y) in ``image`` (sub-pixel), for the session's marker ids."""
    g = luminance(image)
    lo, hi = np.percentile(g, 1), np.percentile(g, 99.5)
    g8 = np.clip((g - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = getattr(cv2.aruco, f"CORNER_REFINE_{method}")
    params.cornerRefinementWinSize = 3
    params.adaptiveThreshWinSizeMax = 53  # large quiet zones under vignetting need wide threshold windows
    params.perspectiveRemovePixelPerCell = 8
    detector = cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(ARUCO_DICT), params)
    pad = 32  # ArUco misses quiet zones that come close to the image edge: give it a dark border
    g8 = cv2.copyMakeBorder(g8, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    out: dict[int, np.ndarray] = {}
    for up in (1, 2):  # small markers: retry on a 2× upsampled image
        img = g8 if up == 1 else cv2.resize(g8, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
        corners, ids, _ = detector.detectMarkers(img)
        if ids is not None:
            for c, i in zip(corners, ids.ravel()):
                if int(i) in MARKER_IDS and int(i) not in out:
                    # undo the upsampling (pixel centres: x = (x_up + 0.5) / up - 0.5) and the padding
                    out[int(i)] = (c.reshape(4, 2).astype(np.float64) + 0.5) / up - 0.5 - pad
        if len(out) == len(MARKER_IDS):
            break
    return out


def monitor_homography(capture: np.ndarray, layout: DisplayLayout, *, refine: bool = True, method: str = "SUBPIX") -> MonitorRegistration:
    """Homography display → capture from a photographed fiducial frame (H×W×3 rendering of the raw).

    Needs at least 3 of the 4 markers (12 corners); with ``refine``, ECC over a full homography
    against the rendered fiducial frame refines it to a fraction of a pixel."""
    found = detect_fiducials(capture, method)
    if len(found) < 3:
        raise RegistrationError(f"found {len(found)} of the 4 fiducial markers in the fiducial frame; "
                                "the monitor must fill the view with all four corners visible and in focus")
    expected = layout.marker_corners()
    src = np.concatenate([expected[i] for i in sorted(found)])
    dst = np.concatenate([found[i] for i in sorted(found)])
    h_dc, _ = cv2.findHomography(src, dst, 0)
    proj = cv2.perspectiveTransform(src[None], h_dc)[0]
    rms = float(np.sqrt(((proj - dst) ** 2).sum(axis=1).mean()))
    refined, corr = False, float("nan")
    if refine:
        template = render_frame(layout, "fiducials")
        # ECC in display coordinates: warp maps display (template) → capture (input)
        t = luminance(template)
        cap = luminance(capture)
        # compare only the marker regions: mask everything else
        mask = np.zeros(t.shape, np.uint8)
        s, q = layout.marker_size, layout.marker_size // 4
        for (y0, x0) in layout.marker_origins():
            mask[y0 - q : y0 + s + q, x0 - q : x0 + s + q] = 255
        warp = (h_dc / h_dc[2, 2]).astype(np.float32)
        try:
            corr, warp = cv2.findTransformECC(t, cap, warp, cv2.MOTION_HOMOGRAPHY, _ECC_CRITERIA, mask, 3)
            candidate = warp.astype(np.float64)
            # accept only a small correction of the marker estimate
            grid = src.reshape(-1, 2)
            moved = np.linalg.norm(cv2.perspectiveTransform(grid[None], candidate)[0]
                                   - cv2.perspectiveTransform(grid[None], h_dc)[0], axis=1).max()
            if moved < 2.0:
                h_dc, refined = candidate, True
        except cv2.error:
            pass
    return MonitorRegistration(h_dc / h_dc[2, 2], len(found), rms, refined, float(corr))


def warp_to_source(capture: np.ndarray, source_to_capture: np.ndarray, source_hw: tuple[int, int]) -> np.ndarray:
    """The monitor area of ``capture`` resampled onto the source image's pixel grid."""
    return warp_moving(capture, source_to_capture, source_hw)


def homography_error_px(estimated: np.ndarray, true: np.ndarray, points: np.ndarray) -> tuple[float, float]:
    """(mean, max) distance between where two homographies send ``points`` (N×2)."""
    a = cv2.perspectiveTransform(points[None].astype(np.float64), np.asarray(estimated, np.float64))[0]
    b = cv2.perspectiveTransform(points[None].astype(np.float64), np.asarray(true, np.float64))[0]
    d = np.linalg.norm(a - b, axis=1)
    return float(d.mean()), float(d.max())
