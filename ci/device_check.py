"""The one-call device check: on a machine with an NVIDIA GPU, proves or disproves the GPU half of the toolkit
and measures it; on a machine without one, runs every step's plumbing and reports the CUDA steps as skipped.

    bash ci/device_check.sh OUTDIR [--wheels DIR] [--budget SECONDS] [--steps NAME ...]

It uses the machine's own Python (PYTHON, default python3) and its PyTorch: no virtual environment, no downloads.
carafe-ops is built from source for the present GPU's architecture only and installed, with the pure-Python
packages and the wheels of --wheels (packages that machine lacks: `bash ci/device_wheels.sh` collects them),
into a folder of the work directory (--work, default /tmp/carafe-device-check), never into the machine's
site-packages. Each step runs under its own time limit, inside the overall --budget, and the check goes on past
failures. OUTDIR receives at most five files: summary.md (each step: status, duration, headline numbers, the
measured ratios against the kernel targets), summary.json (the same, machine-readable), log.txt (every command's
output), bench.json (python -m carafe_ops.bench) and step_benchmarks.json (the task packages' step benchmarks).
Exit status: 0 when no step failed (skipped steps do not fail), 1 otherwise, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
PACKAGES = REPO / "packages"
PURE_PACKAGES = ["carafe-engine", "carafe-seg", "carafe-inpaint", "carafe-det"]
# third-party modules the task packages import, and the pip name of each (for the message when one is missing)
TASK_MODULES = {"pycocotools": "pycocotools", "skimage": "scikit-image", "scipy": "scipy", "yaml": "pyyaml",
                "PIL": "pillow", "torchvision": "torchvision", "matplotlib": "matplotlib", "numpy": "numpy"}
# the steps in the order they run (most wanted first: a run cut short by the budget loses the last ones), each with
# the most seconds it may take on a GPU machine and the fewest it is worth starting with (a CPU run gets
# PLUMBING_SLACK times both)
STEPS = {"environment": (60, 5), "install": (240, 60), "ctest": (60, 10), "pytest-cuda": (180, 60),
         "bench": (120, 50), "large-tensors": (60, 25), "training": (150, 60), "step-benchmarks": (100, 40),
         "sanitizer": (100, 40)}
STEP_NAMES = list(STEPS)
PLUMBING_SLACK = 3
# the kernel targets of the GPU issue, as (workload, dtype, method, pass, largest ratio to the traffic floor)
FLOOR_TARGETS = [(w, "float32", "carafe", p, t) for w in ("mmcv-shape", "batch8-64")
                 for p, t in (("forward", 1.5), ("backward", 2.5))]


class UsageError(Exception):
    pass


@dataclass
class StepResult:
    name: str
    status: str  # pass, fail, skipped
    seconds: float = 0.0
    headline: str = ""
    details: dict = field(default_factory=dict)
    tail: list = field(default_factory=list)  # the end of the failing command's output


class StepFailed(Exception):
    def __init__(self, headline: str, tail: list | None = None, details: dict | None = None):
        super().__init__(headline)
        self.headline, self.tail, self.details = headline, tail or [], details or {}


class StepSkipped(Exception):
    def __init__(self, headline: str, details: dict | None = None):
        super().__init__(headline)
        self.headline, self.details = headline, details or {}


@dataclass
class Command:
    returncode: int | None  # None: killed at its time limit
    seconds: float
    tail: list  # the last lines of its output
    head: list = field(default_factory=list)  # the first lines
    cut_by_budget: bool = False  # killed at a limit that the step's or the check's time budget had shortened
    lines: int = 0  # how many lines it printed

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def text(self) -> str:
        """Its first and last lines, each printed line once."""
        overlap = len(self.head) + len(self.tail) - self.lines
        if overlap > 0:
            return "\n".join(self.head + self.tail[overlap:])
        return "\n".join(self.head + ["..."] + self.tail)


class Running:
    """A started command whose output a thread copies into the log as it comes (so that it never blocks on a
    full pipe), keeping its first and last lines."""

    def __init__(self, process: subprocess.Popen, log_file, tail_lines: int = 60):
        self.process, self.started = process, time.monotonic()
        self.head: list = []
        self.lines = 0
        self.tail: collections.deque = collections.deque(maxlen=tail_lines)
        self.reader = threading.Thread(target=self._pump, args=(log_file,), daemon=True)
        self.reader.start()

    def _pump(self, log_file) -> None:
        for line in self.process.stdout:
            line = line.rstrip("\n")
            self.tail.append(line)
            self.lines += 1
            if len(self.head) < 30:
                self.head.append(line)
            log_file.write("    " + line + "\n")
        self.ended = time.monotonic()  # its output closed: the command has ended

    def seconds(self) -> float:
        return getattr(self, "ended", time.monotonic()) - self.started

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class DeviceCheck:
    def __init__(self, args):
        self.out: Path = args.outdir
        self.work: Path = args.work
        self.python: str = args.python
        self.wheels: Path | None = args.wheels
        self.deadline = time.monotonic() + args.budget
        self.budget = args.budget
        self.steps = args.steps or STEP_NAMES
        self.out.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        self.site = self.work / "site"
        self.log_file = open(self.out / "log.txt", "a", buffering=1)
        self.results: list[StepResult] = []
        self.env_info: dict = {}
        self.gpu = False
        self.missing_modules: dict[str, str] = {}
        self.source_paths: list[str] = []  # src folders used when the pure packages could not be installed
        self.core_built = False  # the CTest CUDA program (GPU mode)
        self.started = datetime.datetime.now(datetime.timezone.utc)
        self.step_deadline = self.deadline
        self.live: set[Running] = set()
        self.notes: list[str] = list(args.notes)
        signal.signal(signal.SIGTERM, self.terminate)

    def terminate(self, signum, frame):
        """Stopped from outside (the device tool's time limit, say): no command of the check outlives it."""
        for running in list(self.live):
            running.kill()
        self.log("terminated: the commands still running were killed")
        self.write_summary()
        sys.exit(128 + signum)

    # --- running commands -------------------------------------------------------------------------------

    def log(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        for line in text.splitlines() or [""]:
            print(f"[{stamp}] {line}", flush=True)
            self.log_file.write(f"[{stamp}] {line}\n")

    def environ(self, **extra) -> dict:
        env = dict(os.environ)
        paths = [str(self.site), *self.source_paths]
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env.update(PYTHONPATH=os.pathsep.join(paths), PYTHONUNBUFFERED="1", MPLBACKEND="Agg",
                   PATH=os.pathsep.join([str(self.site / "bin"), env.get("PATH", "")]),
                   PYTHONDONTWRITEBYTECODE="1")
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def start(self, cmd: list, env: dict | None = None, cwd: Path = REPO) -> Running:
        """Starts a command in a process group of its own (not a session: it ends with the check's session)."""
        self.log("$ " + " ".join(map(str, cmd)))
        process = subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=env or self.environ(), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, errors="replace", preexec_fn=os.setpgrp)
        running = Running(process, self.log_file)
        self.live.add(running)
        return running

    def time_left(self) -> float:
        """Seconds until the current step's deadline (itself within the check's budget)."""
        return min(self.step_deadline, self.deadline - 10) - time.monotonic()

    def finish(self, running: Running, limit: float) -> Command:
        """Waits for a started command until it ends or `limit` seconds after its start pass, cut to what the
        step and the check have left; then its whole process group is killed."""
        allowed = min(limit, self.time_left() + (time.monotonic() - running.started))
        try:
            running.process.wait(timeout=max(1.0, allowed - (time.monotonic() - running.started)))
        except subprocess.TimeoutExpired:
            running.kill()
            running.process.wait()
            running.reader.join(timeout=5)
            self.live.discard(running)
            cut = allowed < limit
            self.log(f"killed after {allowed:.0f} s (" + ("the time budget" if cut else "its time limit") + ")")
            return Command(None, time.monotonic() - running.started, list(running.tail), running.head, cut,
                           running.lines)
        running.reader.join(timeout=5)
        self.live.discard(running)
        seconds = running.seconds()
        self.log(f"exit status {running.process.returncode} after {seconds:.1f} s")
        return Command(running.process.returncode, seconds, list(running.tail), running.head, lines=running.lines)

    def run(self, cmd: list, limit: float, env: dict | None = None, cwd: Path = REPO) -> Command:
        return self.finish(self.start(cmd, env, cwd), limit)

    def py(self, *args) -> list:
        return [self.python, *args]

    def require(self, command: Command, what: str) -> Command:
        if command.cut_by_budget:
            raise StepSkipped(f"the time budget ran out during {what}")
        if command.returncode is None:
            raise StepFailed(f"{what}: timed out after {command.seconds:.0f} s", command.tail)
        if not command.ok:
            raise StepFailed(f"{what}: exit status {command.returncode}", command.tail)
        return command

    def require_modules(self, *modules: str) -> None:
        missing = [m for m in modules if m in self.missing_modules]
        if missing:
            names = ", ".join(self.missing_modules[m] for m in missing)
            raise StepSkipped(f"missing {names}: put its wheel in --wheels (bash ci/device_wheels.sh)")

    # --- steps ----------------------------------------------------------------------------------------------

    def step_environment(self) -> tuple[str, dict]:
        probe = self.run(self.py("-c", PROBE), 120)
        if not probe.ok:
            raise StepFailed(f"{self.python} cannot import torch", probe.tail)
        info = json.loads(probe.tail[-1])
        info["python_executable"] = self.python
        info["cpus"] = os.cpu_count()
        info["platform"] = platform.platform()
        smi = shutil.which("nvidia-smi")
        if smi:
            query = self.run([smi, "--query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit",
                              "--format=csv,noheader"], 30)
            if query.ok and query.tail:
                info["nvidia_smi"] = query.tail[0]
        for tool in ("nvcc", "cmake", "ninja", "compute-sanitizer"):
            found = self.find_tool(tool)
            info[tool] = str(found) if found else None
        nvcc = info.get("nvcc")
        if nvcc:
            version = self.run([nvcc, "--version"], 30)
            match = re.search(r"release ([\d.]+)", version.text())
            info["nvcc_version"] = match.group(1) if match else None
        info["label"] = os.environ.get("CARAFE_CHECK_LABEL", "")
        self.env_info = info
        self.gpu = bool(info.get("cuda_available"))
        if self.gpu:
            headline = (f"{info['gpu']} (sm_{info['capability']}, {info['sms']} SMs, {info['gpu_memory_gib']:.0f} GiB), "
                        f"torch {info['torch']} (CUDA {info['torch_cuda']}), Python {info['python']}")
        else:
            headline = f"no CUDA GPU: plumbing mode on the CPU; torch {info['torch']}, Python {info['python']}"
        return headline, info

    def find_tool(self, name: str) -> Path | None:
        for folder in (Path(self.python).parent, Path(sys.executable).parent):
            if (folder / name).exists():
                return folder / name
        found = shutil.which(name)
        if found:
            return Path(found)
        for folder in (os.environ.get("CUDA_HOME", ""), "/usr/local/cuda"):
            if folder and (Path(folder) / "bin" / name).exists():
                return Path(folder) / "bin" / name
        return None

    def arch(self) -> str:
        return self.env_info["capability"] + "-real"

    def step_install(self) -> tuple[str, dict]:
        if self.site.exists():
            shutil.rmtree(self.site)
        self.site.mkdir(parents=True)
        details = {}
        pip = self.py("-m", "pip", "install", "--no-deps", "--no-compile", "--no-cache-dir", "--upgrade",
                      "--target", self.site, "--disable-pip-version-check")
        if self.wheels:
            wheels = sorted(self.wheels.glob("*.whl"))
            if wheels:
                self.require(self.run([*pip, "--no-index", *wheels], 120), "installing the wheels of --wheels")
            details["wheels"] = [w.name for w in wheels]
        cuda = "ON" if self.gpu else "OFF"
        arch = self.arch() if self.gpu else "auto"
        jobs = str(os.cpu_count() or 2)
        build_env = self.environ(CARAFE_CUDA=cuda, CARAFE_CUDA_ARCHITECTURES=arch, CMAKE_BUILD_PARALLEL_LEVEL=jobs)
        if self.gpu and self.env_info.get("nvcc") and "CUDACXX" not in build_env:
            build_env["CUDACXX"] = self.env_info["nvcc"]
        started = time.monotonic()
        ops = self.start([*pip, "--no-build-isolation", f"-Cbuild-dir={self.work / 'build' / 'carafe-ops'}",
                          PACKAGES / "carafe-ops"], build_env)
        core = None
        if self.gpu:  # the CTest CUDA program, built beside carafe-ops
            cmake = self.find_tool("cmake")
            core_dir = self.work / "build" / "core"
            configure = [cmake, "-S", REPO / "core", "-B", core_dir, "-DCMAKE_BUILD_TYPE=Release", "-DCARAFE_CUDA=ON",
                         f"-DCARAFE_CUDA_ARCHITECTURES={arch}"]
            if self.find_tool("ninja"):
                configure += ["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={self.find_tool('ninja')}"]
            core = self.start(["bash", "-c", " ".join(f"'{c}'" for c in configure) +
                               f" && '{cmake}' --build '{core_dir}' --parallel {jobs}"], build_env)
        ops_result = self.finish(ops, 300)
        if core is not None:
            core_result = self.finish(core, 300)
            details["core_build_s"] = round(core_result.seconds, 1)
            self.core_built = core_result.ok
            if not core_result.ok:
                details["core_build"] = "failed: " + " | ".join(core_result.tail[-5:])
        self.require(ops_result, "building carafe-ops")
        details["carafe_ops_build_s"] = round(time.monotonic() - started, 1)

        pure = self.run([*pip, "--no-build-isolation", *(PACKAGES / p for p in PURE_PACKAGES)], 180)
        if pure.ok:
            details["pure_packages"] = "installed"
        else:  # no poetry-core, say: the packages are plain src folders, importable as they are
            self.source_paths = [str(PACKAGES / p / "src") for p in PURE_PACKAGES]
            details["pure_packages"] = "from their src folders (pip could not build them: " + pure.tail[-1] + ")"
        check = self.run(self.py("-c", IMPORT_PROBE, json.dumps(list(TASK_MODULES))), 120)
        self.require(check, "importing the installed packages")
        imported = json.loads(check.tail[-1])
        details.update(imported)
        self.missing_modules = {m: TASK_MODULES[m] for m in imported["missing"]}
        info = imported["build_info"]
        if self.gpu and "cuda" not in info["backends"]:
            raise StepFailed(f"carafe-ops was built without its CUDA backend: {info}", details=details)
        if not imported["carafe_ops_file"].startswith(str(self.site)):
            raise StepFailed(f"carafe_ops imports from {imported['carafe_ops_file']}, not from {self.site}")
        headline = (f"carafe-ops {info['version']} ({', '.join(info['backends'])}"
                    f"{', CUDA ' + info['cuda_version'] + ' for ' + ','.join(info['cuda_architectures']) if info.get('cuda_version') else ''}) "
                    f"built in {details['carafe_ops_build_s']:.0f} s; task packages {details['pure_packages']}")
        if self.missing_modules:
            headline += "; missing: " + ", ".join(self.missing_modules.values())
        return headline, details

    def step_ctest(self) -> tuple[str, dict]:
        if not self.gpu:
            raise StepSkipped("no GPU (ci/test.sh builds the CUDA CTest program; here it would only skip)")
        if not self.core_built:
            raise StepFailed("the CUDA CTest program was not built (see install)")
        ctest = self.find_tool("ctest") or "ctest"
        result = self.run([ctest, "--test-dir", self.work / "build" / "core", "-V", "--no-tests=error", "-R",
                           "^test_cuda_backend$"], 300)
        self.require(result, "ctest test_cuda_backend")
        if re.search(r"\bSkipped\b|Not Run", result.text()):
            raise StepFailed("test_cuda_backend skipped although a GPU is present", result.tail)
        cases = [line.strip() for line in result.tail if "cases agree" in line or "empty batch" in line]
        return "; ".join(cases) or "passed", {"output": cases}

    def pytest(self, paths: list, marker: str, limit: float, extra: tuple = (), env: dict | None = None):
        """(the command, its counts) of a pytest run; short tracebacks, so that a mass failure cannot make
        log.txt too large to come back from the device machine."""
        cmd = self.py("-m", "pytest", *paths, "-m", marker, "-q", "-rfE", "--tb=short", "-o",
                      f"cache_dir={self.work / 'pytest-cache'}", "-W", "ignore::DeprecationWarning", *extra)
        result = self.run(cmd, limit, env)
        return result, pytest_counts(result.text())

    def step_pytest_cuda(self) -> tuple[str, dict]:
        tests = [PACKAGES / "carafe-ops" / "tests"]
        marker = "cuda and not heavy"
        if not self.gpu:
            result, counts = self.pytest(tests, marker, 300, ("--collect-only", "-qq"))
            collected = counts.get("collected", counts.get("tests collected", 0))
            if not result.ok or not collected:
                raise StepFailed("collecting the CUDA cases failed", result.tail)
            raise StepSkipped(f"no GPU; {collected} CUDA cases collected", counts)
        extra = ["--maxfail=50"]
        if self.has_module("xdist"):
            extra += ["-n", "8"]
        if self.has_module("pytest_timeout"):
            extra += ["--timeout", "120"]  # a hung kernel fails its test, not the whole step
        result, counts = self.pytest(tests, marker, 300, tuple(extra))
        details = {"counts": counts}
        if result.cut_by_budget:
            raise StepSkipped("the time budget ran out during the CUDA tests", details)
        if result.returncode is None:
            raise StepFailed("timed out", result.tail, details)
        if not result.ok:
            # the failures again, one launch at a time, so that a device fault is blamed on the right call; -x:
            # after a fault the CUDA context is lost and every later test would fail too
            rerun, rerun_counts = self.pytest(tests, marker, 150, ("--lf", "-x", "-p", "no:xdist"),
                                              self.environ(CUDA_LAUNCH_BLOCKING=1))
            details["rerun_with_CUDA_LAUNCH_BLOCKING"] = rerun_counts
            raise StepFailed(f"{format_counts(counts)}; rerun with CUDA_LAUNCH_BLOCKING=1: "
                             f"{format_counts(rerun_counts)}", result.tail + ["--- rerun ---"] + rerun.tail, details)
        if not counts.get("passed"):
            raise StepFailed("no CUDA test ran", result.tail, details)
        return format_counts(counts), details

    def has_module(self, name: str) -> bool:
        return subprocess.run([self.python, "-c", f"import {name}"], capture_output=True, env=self.environ()).returncode == 0

    def step_large_tensors(self) -> tuple[str, dict]:
        tests = [PACKAGES / "carafe-ops" / "tests" / "test_large_tensors.py"]
        if not self.gpu:
            result, counts = self.pytest(tests, "heavy and cuda", 120, ("--collect-only", "-qq"))
            collected = counts.get("collected", counts.get("tests collected", 0))
            if not result.ok or not collected:
                raise StepFailed("collecting the large-tensor CUDA cases failed", result.tail)
            raise StepSkipped(f"no GPU; {collected} CUDA cases collected", counts)
        result, counts = self.pytest(tests, "heavy and cuda", 240)
        if result.cut_by_budget:
            raise StepSkipped("the time budget ran out during the large-tensor tests", counts)
        if not result.ok or not counts.get("passed"):
            raise StepFailed(format_counts(counts) or "failed", result.tail, counts)
        return format_counts(counts), counts

    def step_bench(self) -> tuple[str, dict]:
        if self.gpu:
            target = self.out / "bench.json"
            args = ["--device", "cuda", "--suite", "fpn", "seg", "inpaint", "detector", "--json", target]
        else:  # the same command on the CPU, on sizes a CPU gets through in seconds
            target = self.work / "bench.json"
            args = ["--device", "cpu", "--suite", "quick", "detector", "--no-reference", "--detector-size", "128",
                    "160", "--detector-batch", "1", "--json", target]
        result = self.require(self.run(self.py("-m", "carafe_ops.bench", *args), 360), "python -m carafe_ops.bench")
        data = json.loads(target.read_text())
        headline, details = bench_summary(data, with_targets=self.gpu)
        details["table"] = [line for line in result.tail if line.strip()][-12:]
        return (headline if self.gpu else "plumbing on the CPU ran: " + headline), details

    def step_benchmark_commands(self) -> list[tuple[str, list, Path]]:
        """(task, command, JSON file) of each task package's step benchmark: the paper's per-GPU batch and input
        size on a GPU; tiny configs and sizes, one step, on the CPU."""
        work = self.work / "step"
        if self.gpu:
            return [
                ("det", ["-m", "carafe_det.cli.step_benchmark", "--warmup", "2", "--steps", "5", "--output",
                         work / "det.json"], work / "det.json"),
                ("seg", ["-m", "carafe_seg.cli.step_benchmark", "--warmup", "2", "--steps", "5", "--output",
                         work / "seg.json"], work / "seg.json"),
                ("inpaint", ["-m", "carafe_inpaint.cli.step_benchmark", "--warmup", "2", "--steps", "5", "--output",
                             work / "inpaint.json"], work / "inpaint.json"),
            ]
        return [
            ("det", ["-m", "carafe_det.cli.step_benchmark", "--device", "cpu", "--size", "128", "160", "--warmup", "0",
                     "--steps", "1", "--output", work / "det.json", "torchvision/tiny_shapes_mask_rcnn.yaml",
                     "torchvision/tiny_shapes_mask_rcnn_carafe.yaml"], work / "det.json"),
            ("seg", ["-m", "carafe_seg.cli.step_benchmark", "--device", "cpu", "--size", "96", "128", "--warmup", "0",
                     "--steps", "1", "--output", work / "seg.json", "tiny.yaml", "tiny_carafe.yaml"], work / "seg.json"),
            ("inpaint", ["-m", "carafe_inpaint.cli.step_benchmark", "--device", "cpu", "--batch", "2", "--size", "64",
                         "64", "--warmup", "0", "--steps", "1", "--output", work / "inpaint.json", "places_deconv.yaml",
                         "places_carafe.yaml"], work / "inpaint.json"),
        ]

    def step_step_benchmarks(self) -> tuple[str, dict]:
        self.require_modules("torchvision", "skimage", "scipy")
        results, failures, tails = {}, [], []
        for task, args, target in self.step_benchmark_commands():
            target.parent.mkdir(parents=True, exist_ok=True)
            result = self.run(self.py(*args), 200)
            if result.ok and target.exists():
                results[task] = json.loads(target.read_text())
            else:
                failures.append(task)
                tails += [f"--- {task} ---", *result.tail[-25:]]
        (self.out / "step_benchmarks.json" if self.gpu else self.work / "step_benchmarks.json").write_text(
            json.dumps(results, indent=2))
        headline = "; ".join(step_summary(task, data) for task, data in results.items())
        if failures:
            raise StepFailed(f"failed: {', '.join(failures)}; " + headline, tails, results)
        return headline, {task: step_summary(task, data) for task, data in results.items()}

    def step_training(self) -> tuple[str, dict]:
        self.require_modules("pycocotools", "skimage", "scipy", "torchvision")
        summaries, failures, tails = {}, [], []
        for spec in training_specs(self.gpu, self.work / "train"):
            try:
                summaries[spec.task] = self.train_kill_resume_evaluate(spec)
            except StepFailed as failure:
                failures.append(f"{spec.task}: {failure.headline}")
                tails += [f"--- {spec.task} ---", *failure.tail[-25:]]
        headline = "; ".join(f"{task}: {s['headline']}" for task, s in summaries.items())
        if failures:
            raise StepFailed("; ".join(failures) + ("; " + headline if headline else ""), tails, summaries)
        return headline, summaries

    def train_kill_resume_evaluate(self, spec: "TrainingSpec") -> dict:
        """Trains, kills the run once its first checkpoint exists, resumes it to the end, evaluates the final
        weights with --eval-only: the training command working end to end."""
        if spec.output.exists():
            shutil.rmtree(spec.output)
        if spec.make_data:
            self.require(self.run(self.py(*spec.make_data), 120), f"making the {spec.task} dataset")
        train = self.py("-m", spec.module, "--config-file", spec.config)
        running = self.start(train + spec.opts)
        killed_at = None
        while running.process.poll() is None and self.time_left() > 5:
            checkpoints = sorted(spec.output.glob("model_0*.pth"))
            if checkpoints and (spec.output / "last_checkpoint").exists():
                running.kill()
                killed_at = checkpoints[0].name
                break
            time.sleep(0.1)
        first = self.finish(running, 150)
        if first.cut_by_budget:
            raise StepSkipped("the time budget ran out during training")
        if killed_at is None and not first.ok:
            raise StepFailed("training failed before its first checkpoint", first.tail)
        resumed = self.require(self.run(train + ["--resume", *spec.opts], 200), "resumed training")
        if not (spec.output / "model_final.pth").exists():
            raise StepFailed("the resumed run wrote no model_final.pth", resumed.tail)
        if killed_at and "resum" not in resumed.text():
            raise StepFailed("the run after the kill did not say that it resumed", resumed.tail)
        evaluation = self.run(self.py("-m", spec.module, "--config-file", spec.config, "--eval-only", *spec.opts,
                                      "MODEL.WEIGHTS", spec.output / "model_final.pth", "OUTPUT_DIR",
                                      spec.output / "eval"), 150)
        self.require(evaluation, "--eval-only")
        metrics = json.loads((spec.output / "eval" / spec.eval_file).read_text())
        metric = {name: metrics_value(metrics, path) for name, path in spec.metrics.items()}
        train_s = first.seconds + resumed.seconds
        shown = ", ".join(f"{k} {v:.2f}" for k, v in metric.items() if isinstance(v, (int, float)))
        kill_text = f"killed at {killed_at}, resumed" if killed_at else "finished before a checkpoint could be killed"
        return {"headline": f"{spec.iterations} it in {train_s:.0f} s ({kill_text}); eval {shown}",
                "iterations": spec.iterations, "train_s": train_s, "killed_at": killed_at, "metrics": metric}

    def step_sanitizer(self) -> tuple[str, dict]:
        if not self.gpu:
            raise StepSkipped("no GPU")
        sanitizer = self.env_info.get("compute-sanitizer")
        if not sanitizer:
            raise StepSkipped("compute-sanitizer not found")
        if not self.core_built:
            raise StepFailed("the CUDA CTest program was not built (see install)")
        program = self.work / "build" / "core" / "tests" / "test_cuda_backend"
        details, failed = {}, []
        for tool, every in (("memcheck", 16), ("initcheck", 32)):
            result = self.run([sanitizer, "--tool", tool, "--error-exitcode", "99", "--print-limit", "20", program,
                               "--every", every], 200)
            if result.cut_by_budget:
                details[tool] = {"every": every, "summary": "not finished within the time budget"}
                continue
            summary = next((line for line in reversed(result.tail) if "ERROR SUMMARY" in line), "no summary")
            details[tool] = {"every": every, "returncode": result.returncode, "summary": summary.strip()}
            if not result.ok:
                failed.append(tool)
                if "Device not supported" in result.text() or "LibraryNotLoaded" in result.text():
                    raise StepSkipped(f"compute-sanitizer cannot use this device: {summary}", details)
        headline = "; ".join(f"{tool} (every {d['every']}th case): {d['summary']}" for tool, d in details.items())
        if failed:
            raise StepFailed(headline, details=details)
        return headline, details

    # --- the whole check ----------------------------------------------------------------------------------

    def run_step(self, name: str, step: Callable[[], tuple[str, dict]]) -> StepResult:
        cap, least = STEPS[name]
        if not self.gpu:
            cap, least = cap * PLUMBING_SLACK, least * PLUMBING_SLACK
        self.log(f"=== {name} ({self.remaining():.0f} s of the budget left; this step at most {cap} s)")
        started = time.monotonic()
        self.step_deadline = started + cap
        if self.remaining() - 10 < least:
            result = StepResult(name, "skipped", 0.0, f"the time budget is spent ({self.remaining():.0f} s left, "
                                                      f"the step needs at least {least} s)")
        else:
            try:
                headline, details = step()
                result = StepResult(name, "pass", 0.0, headline, details)
            except StepSkipped as skip:
                result = StepResult(name, "skipped", 0.0, skip.headline, skip.details)
            except StepFailed as failure:
                result = StepResult(name, "fail", 0.0, failure.headline, failure.details, failure.tail)
            except Exception as error:  # a bug in this script or an unexpected file: report it, go on
                result = StepResult(name, "fail", 0.0, f"{type(error).__name__}: {error}")
        result.seconds = round(time.monotonic() - started, 1)
        self.log(f"--- {name}: {result.status} in {result.seconds:.0f} s: {result.headline}")
        self.results.append(result)
        self.write_summary()
        return result

    def main(self) -> int:
        self.log(f"device check of {REPO} with {self.python}; budget {self.budget:.0f} s; output {self.out}")
        for note in self.notes:
            self.log(f"note: {note}")
        steps = {"environment": self.step_environment, "install": self.step_install, "ctest": self.step_ctest,
                 "pytest-cuda": self.step_pytest_cuda, "large-tensors": self.step_large_tensors,
                 "bench": self.step_bench, "step-benchmarks": self.step_step_benchmarks,
                 "training": self.step_training, "sanitizer": self.step_sanitizer}
        environment = self.run_step("environment", self.step_environment)
        if environment.status == "fail":
            return 1
        install = None
        for name in STEP_NAMES[1:]:
            if name not in self.steps and name != "install":
                continue
            if install is not None and install.status == "fail":
                self.results.append(StepResult(name, "skipped", 0.0, "install failed"))
                continue
            result = self.run_step(name, steps[name])
            if name == "install":
                install = result
        self.write_summary()
        failed = [r.name for r in self.results if r.status == "fail"]
        self.log(f"done in {self.elapsed():.0f} s: " + (f"FAILED: {', '.join(failed)}" if failed else "no failures"))
        return 1 if failed else 0

    def elapsed(self) -> float:
        return self.budget - self.remaining()

    def write_summary(self) -> None:
        summary = {"started": self.started.isoformat(timespec="seconds"), "elapsed_s": round(self.elapsed(), 1),
                   "budget_s": self.budget, "mode": "gpu" if self.gpu else "plumbing (no GPU)",
                   "environment": self.env_info, "notes": self.notes, "steps": [asdict(r) for r in self.results]}
        write_atomic(self.out / "summary.json", json.dumps(summary, indent=2, default=str))
        write_atomic(self.out / "summary.md", render_markdown(summary))


# --- what the steps parse ----------------------------------------------------------------------------------

PROBE = r"""
import json, platform, torch
info = {"python": platform.python_version(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available()}
if info["cuda_available"]:
    p = torch.cuda.get_device_properties(0)
    info.update(gpu=p.name, capability=f"{p.major}{p.minor}", sms=p.multi_processor_count,
                gpu_memory_gib=p.total_memory / 2**30, gpu_count=torch.cuda.device_count())
print(json.dumps(info))
"""

IMPORT_PROBE = r"""
import importlib, json, sys
import carafe_ops, carafe_engine, carafe_seg, carafe_inpaint, carafe_det
missing = []
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except Exception:
        missing.append(name)
print(json.dumps({"build_info": carafe_ops.build_info(), "carafe_ops_file": carafe_ops.__file__,
                  "missing": missing}))
"""


def pytest_counts(text: str) -> dict:
    """{'passed': 10, 'failed': 1, ...} from pytest's last summary line (or its --collect-only line)."""
    counts = {}
    for line in reversed(text.splitlines()):
        found = re.findall(r"(\d+)(?:/\d+)? (passed|failed|skipped|deselected|errors?|xfailed|xpassed|warnings?|"
                           r"tests? collected)", line)
        if found:
            for number, word in found:
                counts["collected" if "collected" in word else word.rstrip("s") if word.startswith("error")
                       else word] = int(number)
            seconds = re.search(r"in ([\d.]+)s", line)
            if seconds:
                counts["seconds"] = float(seconds.group(1))
            break
    if not counts:  # --collect-only -qq: a "path.py: N" line per file
        per_file = re.findall(r"^\S+\.py: (\d+)$", text, flags=re.M)
        if per_file:
            counts["collected"] = sum(map(int, per_file))
    return counts


def format_counts(counts: dict) -> str:
    parts = [f"{counts[k]} {k}" for k in ("passed", "failed", "error", "skipped") if counts.get(k)]
    text = ", ".join(parts)
    return text + (f" in {counts['seconds']:.0f} s" if "seconds" in counts else "")


def find_row(rows, workload, dtype, method, phase):
    for row in rows:
        if (row["workload"]["name"], row["dtype"], row["method"], row["pass"]) == (workload, dtype, method, phase):
            return row
    return None


def bench_summary(data: dict, with_targets: bool = True) -> tuple[str, dict]:
    """The numbers the GPU issue's targets are stated in, from a carafe_ops.bench JSON (with_targets False: a
    CPU plumbing run, whose numbers the GPU targets do not apply to)."""
    rows = data["results"]
    details = {"device": data["device"], "copy_bandwidth_gbs": data["copy_bandwidth_gbs"], "targets": []}
    for workload, dtype, method, phase, target in FLOOR_TARGETS if with_targets else ():
        row = find_row(rows, workload, dtype, method, phase)
        if row:
            details["targets"].append({"what": f"{method} {phase} {dtype} {workload}: x floor",
                                       "measured": row["ratio_to_floor"], "target": target,
                                       "met": row["ratio_to_floor"] <= target, "ms": row["ms"]})
    for workload in ("mmcv-shape", "batch8-64") if with_targets else ():
        for phase in ("forward", "backward"):
            base = find_row(rows, workload, "float32", "carafe", phase)
            for dtype in ("float16", "bfloat16"):
                low = find_row(rows, workload, dtype, "carafe", phase)
                if base and low:
                    ratio = low["ms"] / base["ms"]
                    details["targets"].append({"what": f"carafe {phase} {dtype} / float32 time, {workload}",
                                               "measured": ratio, "target": 0.6, "met": ratio <= 0.6})
    detector = data.get("detector") or []
    if len(detector) == 2 and with_targets:
        nearest, pack = detector
        ratio = pack["ms"] / nearest["ms"]
        details["targets"].append({"what": "detector FPN forward, CARAFE / nearest", "measured": ratio,
                                   "target": 1.25, "met": ratio <= 1.25})
        if nearest.get("peak_training_mb") and pack.get("peak_training_mb"):
            memory = pack["peak_training_mb"] / nearest["peak_training_mb"]
            details["targets"].append({"what": "detector peak training memory, CARAFE / nearest",
                                       "measured": memory, "target": 1.10, "met": memory <= 1.10})
    fused_faster, compared = 0, 0
    for row in rows:
        if row["method"] == "CARAFEPack":
            other = find_row(rows, row["workload"]["name"], row["dtype"], "unfused-pack", row["pass"])
            if other:
                compared += 1
                fused_faster += row["ms"] <= other["ms"]
    details["fused_normalizer_faster"] = f"{fused_faster} of {compared}"
    met = [t for t in details["targets"] if t["met"]]
    if details["targets"]:
        headline = f"{len(met)} of {len(details['targets'])} targets met; "
    else:  # the CPU plumbing run has none of the target workloads: show its first op rows
        headline = ", ".join(f"{r['workload']['name']} {r['method']} {r['pass']} {r['ratio_to_floor']:.1f}x floor"
                             for r in rows if r["method"] == "carafe")[:200] + "; "
    headline += f"fused normalizer faster than unfused in {details['fused_normalizer_faster']} cases"
    return headline, details


def step_summary(task: str, data) -> str:
    """'det: faster FPN nearest 0.41 s 5.1 GiB, ...' from a step benchmark's JSON (list or {'results': [...]})."""
    rows = data["results"] if isinstance(data, dict) else data
    parts = []
    for row in rows:
        name = (row.get("model") or row.get("upsamplers") or row.get("variant")).replace(", ", " + ")
        seconds = row["median_step_s"] if "median_step_s" in row else row["step_ms_median"] / 1000
        memory = f" {row['peak_memory_gib']:.1f} GiB" if row.get("peak_memory_gib") is not None else ""
        parts.append(f"{name} {seconds:.3f} s{memory}")
    return f"{task}: " + ", ".join(parts)


def metrics_value(metrics: dict, path: str):
    value = metrics
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


@dataclass
class TrainingSpec:
    task: str
    module: str
    config: str
    opts: list
    output: Path
    iterations: int
    eval_file: str
    metrics: dict
    make_data: list | None = None


def training_specs(gpu: bool, work: Path) -> list[TrainingSpec]:
    """Each task's tiny config, short: on the GPU long enough to kill the run after its first checkpoint and
    resume it; on the CPU a handful of iterations on a few images."""
    iterations, period = (200, 20) if gpu else (6, 2)
    device = "cuda" if gpu else "cpu"
    seg_data, det_data, inpaint_data = work / "data-seg", work / "data-det", work / "data-inpaint"
    return [
        TrainingSpec("seg", "carafe_seg.cli.train", "tiny_carafe.yaml",
                     ["DATASETS.ROOT", str(seg_data), "OUTPUT_DIR", str(work / "seg"), "SOLVER.EPOCHS", "1",
                      "SOLVER.ITERS_PER_EPOCH", str(iterations), "SOLVER.CHECKPOINT_PERIOD", str(period),
                      "SOLVER.IMS_PER_BATCH", "8" if gpu else "2"],
                     work / "seg", iterations, "eval.json", {"mIoU": "mIoU", "pixel_accuracy": "pixel_accuracy"},
                     ["-m", "carafe_seg.cli.make_data", "--output", str(seg_data), "--train", "32" if gpu else "4",
                      "--val", "8" if gpu else "2"]),
        TrainingSpec("det", "carafe_det.cli.train", "torchvision/tiny_shapes_mask_rcnn_carafe.yaml",
                     ["DATASETS.ROOT", str(det_data), "OUTPUT_DIR", str(work / "det"), "MODEL.DEVICE", device,
                      "SOLVER.MAX_ITER", str(iterations), "SOLVER.CHECKPOINT_PERIOD", str(period),
                      "SOLVER.WARMUP_ITERS", str(period), "SOLVER.IMS_PER_BATCH", "8" if gpu else "2"],
                     work / "det", iterations, "eval.json", {"box AP50": "bbox.AP50", "mask AP50": "segm.AP50"},
                     ["-m", "carafe_det.cli.make_data", "--output", str(det_data), "--train", "64" if gpu else "4",
                      "--val", "16" if gpu else "2", "--size", "128" if gpu else "96"]),
        TrainingSpec("inpaint", "carafe_inpaint.cli.train", "tiny_carafe.yaml",
                     ["DATASETS.TRAIN", str(inpaint_data / "photos" / "train"), "DATASETS.VAL",
                      str(inpaint_data / "photos" / "val"), "DATASETS.VAL_MASKS", str(inpaint_data / "masks"),
                      "OUTPUT_DIR", str(work / "inpaint"), "MODEL.DEVICE", device, "SOLVER.MAX_ITER", str(iterations),
                      "SOLVER.CHECKPOINT_PERIOD", str(period), "TEST.EVAL_PERIOD", str(iterations),
                      "VIS.PERIOD", str(iterations), *(() if gpu else ("DATASETS.IMAGE_SIZE", "32",
                                                                         "SOLVER.IMS_PER_BATCH", "2",
                                                                         "DATASETS.VAL_MASKS_PER_IMAGE", "1",
                                                                         "TEST.PRECISE_BN.NUM_ITER", "2"))],
                     work / "inpaint", iterations, "eval.json", {"PSNR": "model.psnr", "SSIM": "model.ssim"},
                     ["-m", "carafe_inpaint.cli.make_data", "--output", str(inpaint_data / "masks"), "--count",
                      "50" if gpu else "3", "--size", "64" if gpu else "32", "--photographs",
                      str(inpaint_data / "photos")]),
    ]


def render_markdown(summary: dict) -> str:
    env = summary["environment"]
    lines = [f"# Device check, {summary['started']}", ""]
    if env.get("label"):
        lines += [f"Tree: {env['label']}", ""]
    if env.get("gpu"):
        lines.append(f"- GPU: {env['gpu']} (sm_{env['capability']}, {env['sms']} SMs, {env['gpu_memory_gib']:.0f} GiB"
                     f"{', ' + str(env['gpu_count']) + ' GPUs' if env.get('gpu_count', 1) > 1 else ''})")
    if env.get("nvidia_smi"):
        lines.append(f"- nvidia-smi: {env['nvidia_smi']} (name, driver, memory, max SM clock, power limit)")
    if env:
        lines.append(f"- software: Python {env.get('python')}, torch {env.get('torch')} (CUDA {env.get('torch_cuda')}), "
                     f"nvcc {env.get('nvcc_version')}, {env.get('cpus')} CPUs, {env.get('platform')}")
    lines += [f"- mode: {summary['mode']}; {summary['elapsed_s']:.0f} s of a {summary['budget_s']:.0f} s budget"]
    lines += [f"- note: {note}" for note in summary.get("notes", [])]
    lines += ["",
              "| step | status | time | result |", "|---|---|---|---|"]
    for step in summary["steps"]:
        headline = step["headline"].replace("|", "/").replace("\n", " ")
        lines.append(f"| {step['name']} | {step['status']} | {step['seconds']:.0f} s | {headline} |")
    for step in summary["steps"]:
        targets = step["details"].get("targets") if isinstance(step["details"], dict) else None
        if step["name"] == "bench" and targets:
            lines += ["", "## Kernel targets", "", "| measured | value | target | met |", "|---|---|---|---|"]
            for t in targets:
                lines.append(f"| {t['what']} | {t['measured']:.2f} | {t['target']} | {'yes' if t['met'] else 'no'} |")
    failed = [s for s in summary["steps"] if s["status"] == "fail" and s["tail"]]
    if failed:
        lines += ["", "## Failures"]
        for step in failed:
            lines += ["", f"### {step['name']}", "", "```", *step["tail"][-40:], "```"]
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="ci/device_check.sh", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("outdir", type=Path, help="where summary.md and the other results go")
    parser.add_argument("--wheels", type=Path, default=None, help="a folder of wheels to install first")
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "carafe-device-check",
                        help="builds, the installed packages, data and training runs")
    parser.add_argument("--budget", type=float, default=480, help="seconds for the whole check (default 480)")
    parser.add_argument("--steps", nargs="+", choices=STEP_NAMES, default=None,
                        help="run only these steps (environment and install always run)")
    parser.add_argument("--python", default=os.environ.get("PYTHON", "python3"), help="the Python to use")
    args = parser.parse_args(argv)
    args.notes = []
    if args.wheels is not None and not args.wheels.is_dir():
        # not worth losing a GPU run over: the steps that need a missing package say which
        args.notes.append(f"--wheels {args.wheels} is not a folder: going on without it")
        args.wheels = None
    args.outdir, args.work = args.outdir.resolve(), args.work.resolve()
    if args.budget < 60:
        raise UsageError(f"--budget {args.budget:.0f}: give the check at least 60 seconds")
    resolved = shutil.which(args.python)
    if resolved is None:
        raise UsageError(f"--python {args.python}: not found")
    args.python = os.path.abspath(resolved)  # absolute (tools are found beside it), symlinks kept (a venv's)
    return args


def main(argv=None) -> int:
    try:
        args = parse_args(argv)
        check = DeviceCheck(args)
    except (UsageError, OSError) as error:
        print(f"device_check: error: {error}", file=sys.stderr)
        return 2
    return check.main()


if __name__ == "__main__":
    sys.exit(main())
