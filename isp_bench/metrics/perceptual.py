"""LPIPS (Zhang et al., 2018): the ``lpips`` package, AlexNet backbone, linear heads v0.1.

The linear heads ship in the ``lpips`` wheel (``lpips/weights/v0.1/alex.pth``). The ImageNet
AlexNet backbone does not: as torchvision does, isp-bench looks for ``alexnet-owt-7be5be79.pth`` in

1. the ``weights`` argument of :func:`load_lpips_model` / :func:`lpips_distance`,
2. the environment variable ``ISP_BENCH_ALEXNET_WEIGHTS`` (a file path),
3. ``$TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth`` (torchvision's own cache),

and when it is in none of them downloads it once into 3. from download.pytorch.org with the
published hash checked, unless offline (see :mod:`isp_bench.metrics.weights`). The file found is
checked against the published hash too, whichever way it was named: another file (another .pth,
a truncated copy) is one :class:`~isp_bench.metrics.MetricWeightsError` naming the file, what is
wrong and the fix, never a backbone with other weights and never another copy in its place.

Large images are scored in tiles whose per-layer maps are stitched on the global feature grid, so a
12 MP pair runs in bounded memory and gives the untiled value (up to float32 summation order).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from ._registry import MetricSpec, MetricWeightsError, as_pair, register_metric
from .weights import WeightFile, hub_checkpoints, package_file, register_weight_file

#: File name of torchvision's ImageNet AlexNet weights (``AlexNet_Weights.IMAGENET1K_V1``).
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
#: Environment variable naming an explicit path to the AlexNet weights.
ALEXNET_ENV = "ISP_BENCH_ALEXNET_WEIGHTS"
#: Tile side (pixels, multiple of 16) and context margin used for large images.
TILE = 1024
MARGIN = 128

# AlexNet feature layers LPIPS taps (relu1..relu5): total stride of each.
_STRIDES = (4, 8, 16, 16, 16)


def _alexnet_locations() -> list[tuple[str, Path | None]]:
    env = os.environ.get(ALEXNET_ENV)
    return [(f"${ALEXNET_ENV}", Path(env) if env else None),
            ("torch hub cache", hub_checkpoints() / ALEXNET_FILE)]


ALEXNET_WEIGHTS = register_weight_file(WeightFile(
    name="lpips-alexnet",
    used_by="LPIPS (ImageNet AlexNet backbone)",
    filename=ALEXNET_FILE,
    locations=_alexnet_locations,
    url=f"https://download.pytorch.org/models/{ALEXNET_FILE}",
    sha256_prefix="7be5be79",
    how_to_get=(f"copy torchvision's AlexNet_Weights.IMAGENET1K_V1 (download.pytorch.org/models/{ALEXNET_FILE}) "
                f"into $TORCH_HOME/hub/checkpoints/, or set {ALEXNET_ENV}=/path/to/{ALEXNET_FILE}"),
))
LPIPS_LINEAR_WEIGHTS = register_weight_file(WeightFile(
    name="lpips-alex-linear",
    used_by="LPIPS (linear heads v0.1)",
    filename="alex.pth",
    locations=lambda: [("lpips package", package_file("lpips", "weights", "v0.1", "alex.pth"))],
    how_to_get="`pip install lpips` (the wheel ships weights/v0.1/alex.pth)",
))


def alexnet_weights_path(weights: str | os.PathLike | None = None) -> Path:
    """Where the AlexNet ImageNet backbone is: ``weights`` when given (it must exist), else the
    first of ``$ISP_BENCH_ALEXNET_WEIGHTS`` and the torch hub cache, fetched there on first use
    unless offline. Either way the file must be the published one (its SHA-256 prefix).

    Raises
    ------
    MetricWeightsError
        Not on disk and not fetched, or not the published file; the message says which file,
        where it was looked for or what is wrong with it, and how to get the right one.
    """
    if weights is not None:
        if not Path(weights).is_file():
            raise MetricWeightsError(f"{weights}: AlexNet backbone file not found; "
                                     f"{ALEXNET_WEIGHTS.how_to_get}")
        return ALEXNET_WEIGHTS.verify(weights)
    return ALEXNET_WEIGHTS.path()


def load_lpips_model(weights: str | None = None, *, random_backbone: bool = False, seed: int = 0):
    """An ``lpips.LPIPS(net='alex', version='0.1')`` in eval mode, built without network access.

    The backbone file is looked up (and checked) on every call, so a changed
    ``$ISP_BENCH_ALEXNET_WEIGHTS`` is followed; the model built from one file is cached.

    Parameters
    ----------
    weights : str, optional
        Path to ``alexnet-owt-7be5be79.pth``; see the module docstring for the search order.
    random_backbone : bool
        Use a randomly initialised backbone (seeded with ``seed``) instead of ImageNet weights.
        Only for testing the plumbing: the distances are meaningless.

    Raises
    ------
    MetricWeightsError
        The backbone is missing, not the published file, or not readable as torchvision's AlexNet
        state dict.
    """
    path = None if random_backbone else str(alexnet_weights_path(weights))
    return _lpips_model(path, seed)


@functools.lru_cache(maxsize=4)
def _lpips_model(path: str | None, seed: int):
    """:func:`load_lpips_model` for a checked backbone file (``None``: random backbone)."""
    import warnings

    import lpips as lpips_pkg
    import torch

    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision's 'pretrained' deprecation
        torch.manual_seed(seed)
        net = lpips_pkg.LPIPS(
            net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False
        )
    if path is not None:
        net.net.load_state_dict(_alexnet_features(path, net.net.state_dict()))
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


load_lpips_model.cache_clear = _lpips_model.cache_clear  # the cache of built models, as before


def _alexnet_features(path: str, wanted: dict) -> dict:
    """The tensors of torchvision's AlexNet ``features`` in ``path``, under lpips's names (the
    keys of ``wanted``, ``"sliceK.<index in torchvision's features>.<weight|bias>"``).

    Raises
    ------
    MetricWeightsError
        The file is not a torch state dict, or lacks AlexNet's feature tensors (or their shapes).
    """
    import re

    import torch

    def wrong(what: str) -> MetricWeightsError:
        return MetricWeightsError(ALEXNET_WEIGHTS.wrong_file_message(path, what, ALEXNET_WEIGHTS.label_of(path)))

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many kinds on a file it cannot read
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()
        detail = f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__
        raise wrong(f"it cannot be read as a torch state dict ({detail})") from exc
    if not isinstance(state, dict):
        raise wrong(f"it holds a {type(state).__name__}, not a state dict")
    keys = {name: "features.{}.{}".format(*name.split(".")[1:]) for name in wanted}
    missing = [k for k in keys.values() if k not in state]
    if missing:
        raise wrong(f"a state dict without torchvision AlexNet's {', '.join(missing[:3])}"
                    f"{', …' if len(missing) > 3 else ''} ({len(missing)} of its {len(keys)} feature tensors missing)")
    out = {}
    for name, key in keys.items():
        value = state[key]
        if not isinstance(value, torch.Tensor) or value.shape != wanted[name].shape:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise wrong(f"{key} is {shape}, torchvision AlexNet's is {tuple(wanted[name].shape)}")
        out[name] = value
    return out


def _to_lpips_input(img: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32))[None] * 2 - 1


def _layer_maps(net, x0, x1) -> list:
    """The five weighted squared-difference maps LPIPS averages (1×1×h×w each)."""
    import lpips as lpips_pkg

    f0 = net.net.forward(net.scaling_layer(x0))
    f1 = net.net.forward(net.scaling_layer(x1))
    out = []
    for kk in range(net.L):
        d = (lpips_pkg.normalize_tensor(f0[kk]) - lpips_pkg.normalize_tensor(f1[kk])) ** 2
        out.append(net.lins[kk](d))
    return out


def _feature_len(n: int) -> tuple[int, ...]:
    """Length of each tapped AlexNet feature map along a side of ``n`` pixels."""
    c1 = (n + 4 - 11) // 4 + 1
    p1 = (c1 - 3) // 2 + 1
    p2 = (p1 - 3) // 2 + 1
    return (c1, p1, p2, p2, p2)


def lpips_distance(
    pred,
    target,
    *,
    weights: str | None = None,
    model=None,
    tile: int = TILE,
    margin: int = MARGIN,
) -> float:
    """LPIPS distance (AlexNet, v0.1) between two sRGB images; lower is more similar.

    Parameters
    ----------
    pred, target : array_like
        H×W×3 sRGB images in [0, 1] (mapped to [-1, 1] as the ``lpips`` package expects).
    weights : str, optional
        Path to ``alexnet-owt-7be5be79.pth``.
    model : lpips.LPIPS, optional
        A preloaded model (e.g. from :func:`load_lpips_model`).
    tile, margin : int
        Images larger than ``tile``×``tile`` are processed in tiles of that core size with
        ``margin`` pixels of context (both multiples of 16); per-layer maps are stitched on the
        global feature grid, so the value equals the untiled one.

    References
    ----------
    .. [1] R. Zhang, P. Isola, A. A. Efros, E. Shechtman, O. Wang, "The unreasonable effectiveness
       of deep features as a perceptual metric", CVPR 2018; ``lpips`` 0.1.4 (richzhang).
    """
    import torch

    p, t = as_pair(pred, target)
    net = model if model is not None else load_lpips_model(weights)
    if tile % 16 or margin % 16:
        raise ValueError(f"tile ({tile}) and margin ({margin}) must be multiples of 16")
    h, w = p.shape[:2]
    with torch.no_grad():
        if h <= tile and w <= tile:
            maps = _layer_maps(net, _to_lpips_input(p), _to_lpips_input(t))
            return float(sum(m.double().mean() for m in maps))
        n_h, n_w = _feature_len(h), _feature_len(w)
        sums = [0.0] * len(_STRIDES)
        for y0 in range(0, h, tile):
            y1 = min(y0 + tile, h)
            ya, yb = max(0, y0 - margin), min(h, y1 + margin)
            for x0 in range(0, w, tile):
                x1 = min(x0 + tile, w)
                xa, xb = max(0, x0 - margin), min(w, x1 + margin)
                maps = _layer_maps(
                    net,
                    _to_lpips_input(p[ya:yb, xa:xb]),
                    _to_lpips_input(t[ya:yb, xa:xb]),
                )
                for k, (m, s) in enumerate(zip(maps, _STRIDES)):
                    ra = y0 // s - ya // s
                    rb = (n_h[k] if y1 == h else y1 // s) - ya // s
                    ca = x0 // s - xa // s
                    cb = (n_w[k] if x1 == w else x1 // s) - xa // s
                    sums[k] += float(m[0, 0, ra:rb, ca:cb].double().sum())
        return float(sum(s / (n_h[k] * n_w[k]) for k, s in enumerate(sums)))


def lpips(pred, target) -> float:
    """Registered ``lpips`` metric: :func:`lpips_distance` with the default weight lookup."""
    return lpips_distance(pred, target)


LPIPS = register_metric(
    MetricSpec(
        name="lpips",
        fn=lpips,
        default_suite=True,
        reference="Zhang et al. CVPR 2018; lpips package (richzhang/PerceptualSimilarity), AlexNet, v0.1",
        settings={
            "net": "alex",
            "version": "0.1",
            "input": "sRGB [0,1] mapped to [-1,1]",
            "backbone_weights": ALEXNET_FILE,
            "reduction": "sum over layers of spatial means (lpips spatial=False)",
            "tile": TILE,
            "tile_margin": MARGIN,
        },
        higher_is_better=False,
    )
)
