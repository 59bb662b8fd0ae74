"""Training objectives of the papers' recipes, as functions ``(model, batch) -> scalar loss``.

Colour conversions are differentiable torch versions of IEC 61966-2-1 sRGB decoding and CIE 1976
L*a*b* with the D65 white; tests check them against colour-science.

The model runs under the trainer's autocast (bf16 or fp16 on a GPU); every loss is computed from its
outputs in float32 with autocast off (:func:`in_float32`): under autocast a colour matrix or a blur
would run in 16 bits, and a variance by cancellation (MS-SSIM's ``E[x²] − E[x]²`` on L* ≈ 50) or a
16-bit output against a 32-bit target would give a perfect output a loss.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import torch
import torch.nn.functional as F

from isp_bench.colorimetry import D65_WHITE_XYZ_5DP, SRGB_TO_XYZ, srgb_decode_torch
from isp_bench.errors import unknown_name_error

Objective = Callable[..., torch.Tensor]
"""``objective(model, batch, **objective_args) -> scalar loss``."""

OBJECTIVES: dict[str, Objective] = {}
"""Training objectives by name (a recipe stage's ``objective``); filled by :func:`register_objective`."""


ValidatedOutput = Callable[[Any, dict[str, Any]], tuple[torch.Tensor, str]]
"""``validated_output(model, batch) -> (output, truth key)``: what validation scores while an objective trains."""


def register_objective(*, needs: tuple[str, ...] = (),
                       validated_output: ValidatedOutput | None = None) -> Callable[[Objective], Objective]:
    """Register ``fn(model, batch, **objective_args) -> loss`` under its name. ``needs`` names the batch
    targets beyond ``target`` it reads (e.g. ``("linear_target",)``); the trainer checks that every
    training pair has them before the first step, and its loader cuts only ``target``, these and a target
    an argument names (so a target read without being declared is not in the batch). ``validated_output`` is for an objective that trains a
    part of the model: the part's output and the batch key it is scored against, so that a stage's validation
    (and its plateau test) follows what the stage trains; its docstring's first line describes it in
    the training record. Without it, validation scores the whole model's output against the recipe's
    ``eval.truth``. A model module may register its own objectives."""

    def decorator(fn: Objective) -> Objective:
        fn.needs = tuple(needs)
        fn.validated_output = validated_output
        OBJECTIVES[fn.__name__] = fn
        return fn

    return decorator


def in_float32(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """``fn`` evaluated with autocast off and its 16-bit floating-point tensor arguments (positional or
    keyword) as float32 (see the module docstring); other arguments pass as they are."""

    def widen(value: Any) -> Any:
        is_half = isinstance(value, torch.Tensor) and value.dtype in (torch.float16, torch.bfloat16)
        return value.float() if is_half else value

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> torch.Tensor:
        device = next(v.device.type for v in (*args, *kwargs.values()) if isinstance(v, torch.Tensor))
        with torch.autocast(device, enabled=False):
            return fn(*map(widen, args), **{k: widen(v) for k, v in kwargs.items()})

    return wrapped


@functools.lru_cache(maxsize=None)
def _lab_constants(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The sRGB → XYZ matrix (rounded to float32 first: the precision the Lab loss has always used) and
    the D65 white, on ``device``: made once, not copied to a GPU at every step."""
    with torch.inference_mode(False):  # made under inference mode, they could not take part in training later
        matrix = torch.tensor(SRGB_TO_XYZ, dtype=torch.float32).to(device=device, dtype=dtype)
        white = torch.tensor(D65_WHITE_XYZ_5DP, dtype=dtype, device=device)[None, :, None, None]
    return matrix, white


def srgb_to_lab(srgb: torch.Tensor) -> torch.Tensor:
    """sRGB B×3×H×W in [0, 1] → CIE L*a*b* (D65, 5-decimal white), L in [0, 100]. The decoding is
    not clamped, so that a training output outside [0, 1] still gets a gradient back into range."""
    matrix, white = _lab_constants(srgb.device, srgb.dtype)
    xyz = torch.einsum("ij,bjhw->bihw", matrix, srgb_decode_torch(srgb, clamp=False))
    t = xyz / white
    delta = 6.0 / 29.0
    f = torch.where(t > delta**3, t.clamp_min(1e-12) ** (1.0 / 3.0), t / (3 * delta**2) + 4.0 / 29.0)
    return torch.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], dim=1)


def _output(model, batch):
    return model(batch)


mse = in_float32(F.mse_loss)
l1 = in_float32(F.l1_loss)


@register_objective()
def srgb_mse(model, batch) -> torch.Tensor:
    return mse(_output(model, batch), batch["target"])


@register_objective()
def srgb_l1(model, batch) -> torch.Tensor:
    return l1(_output(model, batch), batch["target"])


@register_objective()
def deepisp_lab_msssim(model, batch, *, alpha: float, win_size: int = 5, scales: int = 2) -> torch.Tensor:
    """DeepISP: ``(1 − α)·‖Lab(out) − Lab(gt)‖₁ + α·(1 − MS-SSIM(L(out), L(gt)))``, MS-SSIM on the L
    channel with ``win_size`` windows over ``scales`` scales (equal weights)."""
    return _lab_msssim_loss(_output(model, batch), batch["target"], alpha=alpha, win_size=win_size, scales=scales)


@in_float32
def _lab_msssim_loss(out: torch.Tensor, target: torch.Tensor, *, alpha: float, win_size: int,
                     scales: int) -> torch.Tensor:
    out_lab, gt_lab = srgb_to_lab(out), srgb_to_lab(target)
    lab_l1 = (out_lab - gt_lab).abs().mean()
    similarity = ms_ssim_small(out_lab[:, :1], gt_lab[:, :1], data_range=100.0, win_size=win_size, scales=scales)
    return (1 - alpha) * lab_l1 + alpha * (1 - similarity)


def _gaussian_window(size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    x = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum())


def ms_ssim_small(x: torch.Tensor, y: torch.Tensor, *, data_range: float, win_size: int = 5, scales: int = 2,
                  sigma: float = 1.5, k: tuple[float, float] = (0.01, 0.03)) -> torch.Tensor:
    """Differentiable MS-SSIM (Wang et al. 2003) over ``scales`` scales with equal exponents and a
    ``win_size`` Gaussian window ('valid' filtering, 2×2 average pooling between scales), for
    single-channel B×1×H×W inputs. Unlike pytorch-msssim it works on small training patches."""
    g = _gaussian_window(win_size, sigma, x)
    c1, c2 = (k[0] * data_range) ** 2, (k[1] * data_range) ** 2

    def blur(t):
        t = F.conv2d(t, g.view(1, 1, 1, -1))
        return F.conv2d(t, g.view(1, 1, -1, 1))

    value = torch.ones((), dtype=x.dtype, device=x.device)
    for scale in range(scales):
        mx, my = blur(x), blur(y)
        sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
        cs = ((2 * sxy + c2) / (sxx + syy + c2)).mean()
        if scale == scales - 1:
            value = value * (((2 * mx * my + c1) / (mx**2 + my**2 + c1)).mean() * cs).clamp_min(1e-6) ** (1 / scales)
        else:
            value = value * cs.clamp_min(1e-6) ** (1 / scales)
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return value


@in_float32
def _restore_loss(pred: torch.Tensor, truth: torch.Tensor, *, eps: float) -> torch.Tensor:
    log_diff = torch.log(pred.clamp_min(eps)) - torch.log(truth.clamp_min(eps))
    return (pred - truth).abs().mean() + log_diff.abs().mean()


def _restore_net_output(model, batch) -> tuple[torch.Tensor, str]:
    """Restore-Net's linear output against linear_target"""
    return model.restore(batch["raw"]), "linear_target"


def _enhance_net_output(model, batch) -> tuple[torch.Tensor, str]:
    """Enhance-Net's sRGB output, fed linear_target, against target"""
    return model.enhance(batch["linear_target"]), "target"


@register_objective(needs=("linear_target",), validated_output=_restore_net_output)
def cameranet_restore(model, batch, *, eps: float = 1e-4) -> torch.Tensor:
    """Restore-Net alone against the linear (restoration) target."""
    return _restore_loss(model.restore(batch["raw"]), batch["linear_target"], eps=eps)


@register_objective(needs=("linear_target",), validated_output=_enhance_net_output)
def cameranet_enhance(model, batch) -> torch.Tensor:
    """Enhance-Net alone, fed the restoration ground truth, L1 against sRGB."""
    return l1(model.enhance(batch["linear_target"]), batch["target"])


@register_objective(needs=("linear_target",))
def cameranet_joint(model, batch, *, eps: float = 1e-4, **kwargs: Any) -> torch.Tensor:
    """``λ·L_restore + (1 − λ)·L_enhance`` through the whole network (``λ``: keyword ``lambda``)."""
    if set(kwargs) != {"lambda"}:
        raise TypeError(f"cameranet_joint takes eps and lambda, not {sorted(set(kwargs) - {'lambda'}) or 'no lambda'}")
    lam = kwargs["lambda"]
    linear = model.restore(batch["raw"])
    return lam * _restore_loss(linear, batch["linear_target"], eps=eps) + (1 - lam) * l1(
        model.enhance(linear), batch["target"])


@register_objective()
def restoration_mse(model, batch, *, target: str = "linear_target") -> torch.Tensor:
    """ℓ2 between the model's output and ``batch[target]``: a restoration network (DeepISP's low-level
    stage alone, the joint denoising + demosaicking experiment) against the *linear* ground truth.
    ``target`` is ``linear_target`` where the target is display sRGB (the synthetic set) and ``target``
    where the dataset's own target is already linear (MSR). The trainer treats a target named in the
    arguments as a need, like ``needs``."""
    return mse(_output(model, batch), batch[target])


def get_objective(name: str) -> Objective:
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise unknown_name_error("training objective", name, list(OBJECTIVES)) from None
