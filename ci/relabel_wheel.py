"""Gives a wheel a local version label (0.1.0 -> 0.1.0+cu130) so that the variants of one release are told apart.

    python ci/relabel_wheel.py dist/carafe_ops-0.1.0-cp311-cp311-linux_x86_64.whl cu130 [--out DIR]

Unpacks the wheel, renames its .dist-info and the METADATA version, and packs it again (`wheel pack` rewrites
RECORD); the original file is removed when the output lands in the same folder.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def relabel(wheel: Path, label: str, out_dir: Path) -> Path:
    if not re.fullmatch(r"[a-z0-9]+(\.[a-z0-9]+)*", label):
        raise SystemExit(f"relabel_wheel: {label!r} is not a valid local version label")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "wheel", "unpack", str(wheel), "-d", tmp], check=True,
                       stdout=subprocess.DEVNULL)
        (root,) = Path(tmp).iterdir()
        (dist_info,) = root.glob("*.dist-info")
        name, version = dist_info.name[: -len(".dist-info")].rsplit("-", 1)
        public = version.split("+", 1)[0]
        new_version = f"{public}+{label}"
        metadata = dist_info / "METADATA"
        metadata.write_text(re.sub(r"^Version: .*$", f"Version: {new_version}", metadata.read_text(), count=1,
                                   flags=re.M))
        dist_info.rename(dist_info.with_name(f"{name}-{new_version}.dist-info"))
        before = set(out_dir.glob("*.whl"))
        subprocess.run([sys.executable, "-m", "wheel", "pack", str(root), "-d", str(out_dir)], check=True,
                       stdout=subprocess.DEVNULL)
        (new,) = set(out_dir.glob("*.whl")) - before - {wheel}
    if new.resolve() != wheel.resolve() and wheel.parent.resolve() == out_dir.resolve():
        wheel.unlink()
    return new


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", type=Path)
    parser.add_argument("label")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    print(relabel(args.wheel, args.label, args.out or args.wheel.parent))


if __name__ == "__main__":
    main()
