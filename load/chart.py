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
            ax.annotate(
                str(r["level"]), (r["ratio"], r["mib_s"]), textcoords="offset points", xytext=(4, 4), fontsize=8
            )
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


def latency_chart(series: dict[str, list[float]], title: str, path: Path) -> Path:
    """Per-file end-to-end latency (created -> finished): a histogram and the CDF, one panel per series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {k: sorted(v) for k, v in series.items() if v}
    fig, axes = plt.subplots(1, len(series), figsize=(4.2 * len(series), 3.8), dpi=90, squeeze=False)
    for ax, (label, values) in zip(axes[0], series.items(), strict=False):
        ax.hist(values, bins=min(40, max(5, len(values) // 10)), color="#4c72b0", alpha=0.75)
        ax.set_xlabel("created -> finished, s")
        ax.set_ylabel("files")
        ax.set_title(label, fontsize=9)
        cdf = ax.twinx()
        n = len(values)
        cdf.plot(values, [(i + 1) / n for i in range(n)], color="#dd8452")
        cdf.set_ylim(0, 1.02)
        cdf.set_ylabel("fraction finished (CDF)")
        for q in (50, 95, 99):
            v = values[min(n - 1, int(round((n - 1) * q / 100)))]
            ax.axvline(v, color="grey", linestyle=":", linewidth=1)
            ax.annotate(
                f"p{q} {v:.1f}s",
                (v, 0),
                xytext=(2, 4 + q / 5),
                textcoords="offset points",
                fontsize=7,
                rotation=90,
                va="bottom",
            )
        ax.grid(True, alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
