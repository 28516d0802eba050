"""Checks a built carafe-ops wheel: it imports, it reports the backends and CUDA architectures its version label
claims, its binary holds code for every claimed architecture (cuobjdump), and the op runs (on the GPU too where
there is one) and agrees with the reference.

    python ci/check_wheel.py build/wheels/cu130/carafe_ops-0.1.0+cu130-*.whl [--cuobjdump PATH] [--json OUT]

Exits non-zero with the reason when a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

# Runs in a fresh interpreter with the unpacked wheel first on sys.path.
PROBE = r"""
import json, sys
sys.meta_path = [f for f in sys.meta_path if "ScikitBuild" not in type(f).__name__]  # a dev editable install
import torch, carafe_ops
from carafe_ops.testing import compare_with_reference, make_inputs
assert carafe_ops.__file__.startswith(sys.argv[1]), f"imported {carafe_ops.__file__}, not the wheel"
info = carafe_ops.build_info()
devices = ["cpu"] + (["cuda"] if "cuda" in info["backends"] and torch.cuda.is_available() else [])
errors = {}
for device in devices:
    features, masks = make_inputs(2, 8, 7, 9, 5, 2, 2, device=device)
    errors[device] = compare_with_reference(carafe_ops.carafe, features, masks, 5, 2, 2)
print(json.dumps({"version": carafe_ops.__version__, "build_info": info, "errors": errors, "ran_on": devices}))
"""


def fail(message: str) -> None:
    raise SystemExit(f"check_wheel: FAIL: {message}")


def find_cuobjdump(given: str | None) -> str | None:
    for candidate in (given, os.environ.get("CUOBJDUMP"), shutil.which("cuobjdump")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def embedded_architectures(library: Path, cuobjdump: str) -> tuple[set[int], set[int]]:
    """(architectures with SASS, architectures with PTX) found in the binary."""
    listing = subprocess.run([cuobjdump, "--list-elf", "--list-ptx", str(library)], check=True,
                             capture_output=True, text=True).stdout
    sass = {int(m) for m in re.findall(r"^ELF file .*\.sm_(\d+)a?\.cubin$", listing, re.M)}
    ptx = {int(m) for m in re.findall(r"^PTX file .*\.sm_(\d+)a?\.ptx$", listing, re.M)}
    return sass, ptx


def claimed_architectures(arch_list: list[str]) -> tuple[set[int], set[int]]:
    """CMake's CUDA_ARCHITECTURES entries ('90-real', '120-virtual', '120') as (SASS, PTX) sets."""
    sass, ptx = set(), set()
    for entry in arch_list:
        number, _, kind = entry.partition("-")
        if kind in ("", "real"):
            sass.add(int(number))
        if kind in ("", "virtual"):
            ptx.add(int(number))
    return sass, ptx


def check(wheel: Path, cuobjdump: str | None) -> dict:
    label = re.search(r"-\d[^-]*\+([a-z0-9.]+)-", wheel.name)
    if not label:
        fail(f"{wheel.name} has no local version label (+cpu, +cu130, ...)")
    label = label.group(1)
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(tmp)
        probe = subprocess.run([sys.executable, "-c", PROBE, tmp], capture_output=True, text=True,
                               env={**os.environ, "PYTHONPATH": tmp})
        if probe.returncode != 0:
            fail(f"importing {wheel.name} failed:\n{probe.stderr[-3000:]}")
        report = json.loads(probe.stdout.strip().splitlines()[-1])
        info = report["build_info"]
        for device, errors in report["errors"].items():
            for name, (error, allowed) in errors.items():
                if error > allowed:
                    fail(f"{device} {name}: error {error:.3g} > allowed {allowed:.3g}")
        if not report["version"].endswith("+" + label):
            fail(f"carafe_ops.__version__ is {report['version']}, the file name says +{label}")
        if label == "cpu":
            if info["backends"] != ["cpu"]:
                fail(f"a +cpu wheel reports backends {info['backends']}")
        else:
            major, minor = re.fullmatch(r"cu(\d+?)(\d)", label).groups()
            if info["cuda_version"] != f"{major}.{minor}":
                fail(f"a +{label} wheel was built with CUDA {info['cuda_version']}")
            (library,) = Path(tmp).glob("carafe_ops/_C*.so")
            if cuobjdump is None:
                fail("cuobjdump not found (put it on PATH, set CUOBJDUMP, or pip install nvidia-cuda-cuobjdump)")
            sass, ptx = embedded_architectures(library, cuobjdump)
            want_sass, want_ptx = claimed_architectures(info["cuda_architectures"])
            if want_sass - sass or want_ptx - ptx:
                fail(f"claimed SASS {sorted(want_sass)} / PTX {sorted(want_ptx)}, binary has SASS {sorted(sass)} / "
                     f"PTX {sorted(ptx)}")
            report["sass"], report["ptx"] = sorted(sass), sorted(ptx)
    report["wheel"] = wheel.name
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", type=Path)
    parser.add_argument("--cuobjdump", default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    report = check(args.wheel, find_cuobjdump(args.cuobjdump))
    info = report["build_info"]
    arch = f", SASS {report['sass']} PTX {report['ptx']}" if "sass" in report else ""
    print(f"check_wheel: ok: {report['wheel']}: backends {info['backends']}, CUDA {info['cuda_version']}{arch}, "
          f"agrees with the reference on {report['ran_on']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
