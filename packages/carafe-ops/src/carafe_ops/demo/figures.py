"""The demo's pictures, drawn with matplotlib (Agg: no screen needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def benchmark_bars(bench: dict, path: Path) -> None:
    rows = [r for r in bench["results"] if r["dtype"] == "float32"]
    labels = [f"{r['method']}\n{r['pass']}" for r in rows]
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(rows)), 3.6))
    ax.bar(range(len(rows)), [r["ms"] for r in rows], color=["C1" if r["method"] == "carafe" else "C0" for r in rows])
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(labels, fontsize=6, rotation=60, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("ms (median)")
    wl = rows[0]["workload"]
    ax.set_title(f"{bench['device']}: features ({wl['n']}, {wl['c']}, {wl['h']}, {wl['w']}), k_up {wl['k']}, "
                 f"sigma {wl['s']}, float32", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
