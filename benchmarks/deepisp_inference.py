"""DeepISP's low-level stage at inference: variants of its layer loop, each checked against the training path
and timed, to choose the one that brings DeepISP's 12 MP inference under 0.10 s on an H100/H200 in bf16.

Rerun (a GPU: one 4032×3024 frame in bf16, channels-last, ~1 minute with --compile)::

    python3 benchmarks/deepisp_inference.py [--compile]

On the CPU it runs a 256×384 frame in float32 (a correctness check more than a timing). Writes
benchmarks/results/deepisp-inference-<device>.json.

Why: on the H200 (commit e1b934e, ``benchmarks/train.py --inference-only``) a tiled 12 MP frame spent 178 ms in
GPU kernels, of which 35 ms convolutions; the rest element-wise work on PyTorch's generic (unvectorised)
kernel: 52 ms the ReLU written into the padded buffer's strided view, 49 ms the bias added after every
convolution, 12 ms bf16 copies, 6 ms tanh. The floor: 12.9 TFLOP (≈ 16 ms at the bf16 matmul roof) and one read
and one write of 64 channels per layer (≈ 40 GB, ≈ 8 ms at 4.8 TB/s). Variants:

- ``cat``: the training path (:meth:`LowLevelStage._forward_concatenated`: reflection pad, conv, ReLU of the
  61 feature channels, tanh of the 3 residual ones, concatenation of [image, features]);
- ``padded_buffer``: the model's inference path (:meth:`LowLevelStage._forward_in_padded_buffers`; since the
  profile above, its ReLU is one pass over whole pixels instead of the strided one over 61 of 64 channels);
- ``zero_pad``: convolutions with cuDNN's own zero padding (no padded copy), the 1-pixel border ring recomputed
  from reflection-padded strips; the ReLU in place on all 64 channels (contiguous, vectorised) after the
  residual channels' tanh is taken, then the image written over the 3 residual channels, so that the next
  layer's input is the convolution's output itself, its channels [features, image] (the next weights permuted
  to match);
- ``fused`` (CUDA): ``zero_pad`` with the feature channels' convolution, bias and ReLU in one cuDNN call
  (``torch.cudnn_convolution_relu``, cuDNN's runtime-fused conv-bias-activation: no separate bias add and no
  ReLU pass over 64 channels) and the 3 residual channels from a convolution of their own (3 output channels:
  one more read of the input, ~1/20 of the compute); the fused call's 3 extra output channels have zero weights
  and bias, so ReLU leaves them zero and the image is written there. On the CPU the fused call is a convolution
  and a ReLU (a check of everything around it);
- ``compiled`` (``--compile``): ``torch.compile`` of the training path, which may fuse the element-wise work.

Each variant's output is compared with ``cat``'s (max |difference|; the same bits are not expected where the
order of the sums changes).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Callable

import torch
import torch.nn.functional as F

from _common import sync

FULL_FRAME = (3024, 4032)
CPU_FRAME = (256, 384)
REPEATS = 5


def _border_strips(x: torch.Tensor):
    """(rows, columns) of the 1-pixel border ring of a 3×3 convolution's output on ``x`` (rows 0 and H−1, then
    columns 0 and W−1, corners included), each with the reflection-padded strip of ``x`` that gives it."""
    every = slice(None)
    return (((slice(0, 1), every), F.pad(x[:, :, :2], (1, 1, 1, 0), mode="reflect")),
            ((slice(-1, None), every), F.pad(x[:, :, -2:], (1, 1, 0, 1), mode="reflect")),
            ((every, slice(0, 1)), F.pad(x[..., :2], (1, 0, 1, 1), mode="reflect")),
            ((every, slice(-1, None)), F.pad(x[..., -2:], (0, 1, 1, 1), mode="reflect")))


def _conv_reflect_border(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """A 3×3 convolution with reflection padding 1, as cuDNN's zero-padded convolution with its border ring
    recomputed from reflection-padded strips."""
    out = F.conv2d(x, weight, bias, padding=1)
    for (rows, cols), strip in _border_strips(x):
        out[:, :, rows, cols] = F.conv2d(strip, weight, bias)
    return out


def zero_pad_path(stage, rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """See the module notes: no padded copy, no concatenation, the ReLU on whole contiguous tensors."""
    first, *rest = stage.layers
    r = first.residual
    y = _conv_reflect_border(rgb, first.conv.weight, first.conv.bias)
    image = rgb + torch.tanh(y[:, -r:])
    for layer in rest:
        y.relu_()  # the residual channels too: they are overwritten by the image next
        y[:, -r:] = image  # the next input, channels [features, image]
        weight = torch.cat([layer.conv.weight[:, r:], layer.conv.weight[:, :r]], dim=1)
        y = _conv_reflect_border(y, weight, layer.conv.bias)
        image = image + torch.tanh(y[:, -r:])
    return F.relu(y[:, :-r]), image


def _conv_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """relu(conv2d(x, weight, bias, padding=1)): one cuDNN call on CUDA, two operations elsewhere."""
    if x.is_cuda:
        return torch.cudnn_convolution_relu(x, weight, bias, (1, 1), (1, 1), (1, 1), 1)
    return F.relu(F.conv2d(x, weight, bias, padding=1))


def fused_path(stage, rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """See the module notes: ``zero_pad`` with conv + bias + ReLU fused, the residual channels convolved apart."""
    first, *rest = stage.layers
    r = first.residual
    y = _conv_reflect_border(rgb, first.conv.weight, first.conv.bias)
    image = rgb + torch.tanh(y[:, -r:])
    y.relu_()
    for layer in rest:
        y[:, -r:] = image  # the input, channels [features, image]
        weight = torch.cat([layer.conv.weight[:, r:], layer.conv.weight[:, :r]], dim=1).to(y.dtype)
        bias = layer.conv.bias.to(y.dtype)
        # the fused call's last r output channels: zero weights and bias, so ReLU leaves zeros for the image
        features_weight = torch.cat([weight[:-r], torch.zeros_like(weight[-r:])])
        features_bias = torch.cat([bias[:-r], torch.zeros_like(bias[-r:])])
        x, y = y, _conv_relu(y, features_weight, features_bias)
        residual = F.conv2d(x, weight[-r:], bias[-r:], padding=1)
        for (rows, cols), strip in _border_strips(x):  # the border ring, from reflection-padded strips
            border = F.conv2d(strip, weight, bias)
            y[:, :-r, rows, cols] = F.relu(border[:, :-r])
            residual[:, :, rows, cols] = border[:, -r:]
        image = image + torch.tanh(residual)
    return y[:, :-r], image


def time_variant(run: Callable[[], object], device: str) -> float:
    """Median seconds of :data:`REPEATS` calls after one warm-up (cuDNN autotuning, compilation)."""
    run()
    times = []
    for _ in range(REPEATS):
        sync(device)
        start = time.perf_counter()
        run()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile of the training path")
    args = parser.parse_args()

    from _common import provenance, save
    from isp_bench.devices import autocast, configure_for_speed, memory_format, resolve_device, resolve_precision
    from isp_bench.models import create_model

    device = resolve_device(args.device)
    precision = resolve_precision("auto", device)
    configure_for_speed(device)
    cuda = device.startswith("cuda")
    height, width = FULL_FRAME if cuda else CPU_FRAME
    torch.manual_seed(0)
    model = create_model("deepisp").to(device, memory_format=memory_format(device)).eval()
    for layer in model.low_level.layers:  # non-zero residual channels, as a trained model has
        torch.nn.init.normal_(layer.conv.weight, std=0.05)
    stage = model.low_level
    rgb = torch.rand(1, 3, height, width, device=device).contiguous(memory_format=memory_format(device))
    variants: dict[str, Callable] = {"cat": stage._forward_concatenated,
                                     "padded_buffer": stage._forward_in_padded_buffers,
                                     "zero_pad": lambda x: zero_pad_path(stage, x),
                                     "fused": lambda x: fused_path(stage, x)}
    if args.compile:
        variants["compiled"] = torch.compile(stage._forward_concatenated)
    payload = {"benchmark": "deepisp-inference", "device": device, "precision": precision, "frame": [height, width],
               "layers": len(stage.layers), "repeats": REPEATS, "variants": [],
               "provenance": provenance(("isp-bench", "torch"), device=device, argv=sys.argv[1:])}
    rows, reference = payload["variants"], None
    with torch.no_grad(), autocast(device, precision):
        for name, fn in variants.items():
            call = lambda fn=fn: fn(rgb)  # noqa: E731
            try:
                seconds = time_variant(call, device)
                feats, image = call()
            except Exception as error:  # noqa: BLE001 — one variant's failure is reported, the others still run
                rows.append({"variant": name, "error": f"{type(error).__name__}: {error}"})
                print(f"{name:14s} failed: {rows[-1]['error']}", flush=True)
                continue
            if reference is None:
                reference = (feats.float(), image.float())
            difference = max((feats.float() - reference[0]).abs().max().item(),
                             (image.float() - reference[1]).abs().max().item())
            rows.append({"variant": name, "seconds": seconds, "max_abs_difference_from_cat": difference})
            print(f"{name:14s} {seconds * 1e3:8.1f} ms   max |Δ| from cat {difference:.3g}", flush=True)
            # written after every variant: a run cut off (compiling, say) keeps what it measured
            path = save(f"deepisp-inference-{device.replace(':', '')}", payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
