"""Model zoo speed: ms per 512×512 tile, extrapolated s per 12 MP frame, achieved GFLOP/s vs matmul peak.

Rerun with::

    python benchmarks/models.py                 # all runnable models, CPU (and CUDA when present)
    python benchmarks/models.py --models deepisp cameranet --repeats 5 --threads 2

Prints a table and writes ``benchmarks/results/models.json`` (gitignored) with provenance
(package versions, machine, date). MACs come from the forward-hook counter
(:func:`isp_bench.models.count_macs`) at the tile size; "GFLOP/s" counts 2 FLOPs per MAC. The
12 MP figure is ms/tile × (4032·3024)/(512·512) and ignores tile overlap and the once-per-frame
global pass. Timings on a shared machine are noisy: compare runs, not digits.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import _common
from _common import sync

import torch
from isp_bench.files import atomic_write_text

TILE = 512
FRAME = 4032 * 3024


def matmul_peak_gflops(device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b
    times = []
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        times.append(time.perf_counter() - t)
    return 2 * n**3 / min(times) / 1e9


def bench_model(name: str, device: torch.device, repeats: int) -> dict:
    from isp_bench.models import count_macs, create_model, example_batch, model_card

    card = model_card(name)
    with torch.device("meta"):
        kwargs = {"pretrained": False} if "pretrained" in card.config else {}
        meta_model = create_model(name, **kwargs)
    macs = count_macs(meta_model, example_batch(card, (TILE, TILE), device="meta")).total
    model = create_model(name).to(device).eval()
    batch = example_batch(card, (TILE, TILE), device=device)
    times = []
    with torch.no_grad():
        model(batch)  # warm-up
        for _ in range(repeats):
            sync(device)
            t = time.perf_counter()
            model(batch)
            sync(device)
            times.append(time.perf_counter() - t)
    ms = 1e3 * statistics.median(times)
    return {
        "model": name,
        "device": str(device),
        "macs_per_tile": macs,
        "ms_per_tile": ms,
        "ms_per_tile_min": 1e3 * min(times),
        "s_per_12mp_frame": ms / 1e3 * FRAME / TILE**2,
        "achieved_gflops": 2 * macs / (ms / 1e3) / 1e9 if macs else None,
        "repeats": repeats,
    }


def provenance(threads: int) -> dict:
    return _common.provenance(("isp-bench", "torch", "timm", "numpy"), device="cuda" if torch.cuda.is_available()
                              else "cpu", torch_threads=threads, note="shared machine; timings are noisy")


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore")
    from isp_bench.models import list_models

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="*", default=None, help="model names (default: every runnable model)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "models.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = args.models or list_models(include_reported_only=False)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    result = {"provenance": provenance(args.threads), "tile": TILE, "peak_gflops": {}, "rows": []}
    for device in devices:
        peak = matmul_peak_gflops(device)
        result["peak_gflops"][str(device)] = peak
        print(f"{device}: fp32 matmul peak {peak:.1f} GFLOP/s ({args.threads} threads)" if device.type == "cpu"
              else f"{device} ({torch.cuda.get_device_name(0)}): fp32 matmul peak {peak:.1f} GFLOP/s")
        print(f"{'model':20s} {'GMACs/tile':>10s} {'ms/tile':>10s} {'s/12MP':>8s} {'GFLOP/s':>8s} {'% peak':>7s}")
        for name in names:
            row = bench_model(name, device, args.repeats)
            result["rows"].append(row)
            g = row["achieved_gflops"]
            print(f"{name:20s} {row['macs_per_tile'] / 1e9:10.2f} {row['ms_per_tile']:10.1f} "
                  f"{row['s_per_12mp_frame']:8.1f} {(g or 0):8.1f} {100 * (g or 0) / peak:6.1f}%", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
