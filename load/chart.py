"""The throughput chart: MiB/s against compression ratio, per codec and level."""
from __future__ import annotations

from pathlib import Path


def throughput_chart(rows: list[dict], title: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=100)
    for codec, marker in (("zstd", "o"), ("brotli", "s"), ("gzip", "^")):
        pts = [r for r in rows if r["codec"] == codec]
        ax.plot([r["ratio"] for r in pts], [r["mib_s"] for r in pts], marker=marker, label=codec)
        for r in pts:
            ax.annotate(str(r["level"]), (r["ratio"], r["mib_s"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel("compression ratio (input / output)")
    ax.set_ylabel("compress_stream throughput, MiB/s (log)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
