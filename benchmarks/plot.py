#!/usr/bin/env python3
"""Figure of a benchmark run: the ratio A/B (ocirt/runc) of every metric, with its spread.

    python3 benchmarks/bench.py --json benchmarks/results_bench.json
    .venv/bin/python benchmarks/plot.py [benchmarks/results_bench.json] [--out docs/figures]
                                        [--name bench_ratios]

Reads the JSON that `bench.py --json` writes and makes NAME.png and NAME.svg (matplotlib: the
`plots` extra). bench.py alternates A B A B, so sample i of A and sample i of B ran back to back:
the figure shows, per metric, the distribution of these paired ratios A_i/B_i (box: quartiles,
whiskers: min-max, dots: every pair) and the ratio of the medians that bench.py prints (the
diamond). Metrics and their fields come from bench.py's own table (table_rows).
"""

import argparse
import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
FORMATS = ("png", "svg")


def metric_rows(doc):
    """[(title, metric key, sample field)] in bench.py's table order."""
    settings = doc.get("settings", {})
    try:
        import importlib.util

        if importlib.util.find_spec("click") is None:  # bench.py would re-exec itself under .venv
            raise ImportError("click")
        sys.path.insert(0, HERE)
        import bench

        rows = bench.table_rows(None, settings.get("lifecycles", 100), settings.get("workers", 2))
        return [(row[0].strip(), row[1], row[2]) for row in rows]  # (title, key, field, ...)
    except Exception:  # bench.py not importable here: every numeric field of every metric
        out = []
        for key, m in doc["samples"].items():
            first = (m.get("a") or [{}])[0]
            out += [
                (f"{key} {f}" if f != "t" else key, key, f)
                for f, v in first.items()
                if isinstance(v, (int, float))
            ]
        return out


def paired_ratios(doc):
    """[(title, [A_i/B_i], ratio of medians | None)] for every metric with samples of both."""
    summary = {s["metric"]: s.get("ratio") for s in doc.get("summary", [])}
    out = []
    for title, key, field in metric_rows(doc):
        m = doc["samples"].get(key)
        if not m:
            continue
        a = [x.get(field) for x in m["a"]]
        b = [x.get(field) for x in m["b"]]
        ratios = [x / y for x, y in zip(a, b) if x is not None and y]
        if ratios:
            med = summary.get(title)
            if med is None:
                va = [x for x in a if x is not None]
                vb = [y for y in b if y is not None]
                med = statistics.median(va) / statistics.median(vb) if va and vb else None
            out.append((title, ratios, med))
    return out


def _version(module):
    parts = []
    for p in module.__version__.split(".")[:2]:
        digits = "".join(c for c in p if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def plot(doc, out, name):
    try:
        import matplotlib
    except ImportError:
        sys.exit("plot.py: needs matplotlib: .venv/bin/pip install '.[plots]' (or pip install matplotlib)")
    matplotlib.use("Agg")
    matplotlib.rcParams.update(
        {
            "svg.hashsalt": "ocirt",
            "font.size": 8,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "svg.fonttype": "none",
        }
    )
    import matplotlib.pyplot as plt

    rows = paired_ratios(doc)
    if not rows:
        sys.exit("plot.py: no metric has samples of both runtimes")
    rows.reverse()  # the table's first metric on top
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(rows) + 1.3))
    ys = range(len(rows))
    horizontal = {"orientation": "horizontal"} if _version(matplotlib) >= (3, 10) else {"vert": False}
    ax.boxplot(
        [r[1] for r in rows],
        positions=list(ys),
        widths=0.55,
        whis=(0, 100),
        showfliers=False,
        patch_artist=True,
        **horizontal,
        boxprops={"facecolor": "#c6dbef", "edgecolor": "#4a6fa5", "linewidth": 0.8},
        medianprops={"color": "#4a6fa5"},
        whiskerprops={"color": "#4a6fa5", "linewidth": 0.8},
        capprops={"color": "#4a6fa5", "linewidth": 0.8},
    )
    for y, (_title, ratios, med) in zip(ys, rows):
        ax.scatter(ratios, [y] * len(ratios), s=5, color="#08306b", alpha=0.45, zorder=3, linewidths=0)
        if med is not None:
            ax.scatter([med], [y], marker="D", s=22, color="#d62728", zorder=4)
            ax.annotate(
                f"{med:.2f}x",
                (max(max(ratios), med), y),
                xytext=(6, -3),
                textcoords="offset points",
                fontsize=7,
            )
    ax.axvline(1.0, color="#555555", lw=0.8, ls="--")
    ax.set_xscale("log")
    lo = min(min(min(r[1]), r[2] or 1) for r in rows)
    hi = max(max(max(r[1]), r[2] or 1) for r in rows)
    ax.set_xlim(min(lo, 1.0) / 1.3, max(hi, 1.0) * 1.6)
    ticks = [t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20) if lo / 1.3 <= t <= hi * 1.6]
    ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
    ax.minorticks_off()
    ax.set_yticks(list(ys), [r[0] for r in rows])
    ra, rb = doc.get("runtimes", {}).get("a", {}), doc.get("runtimes", {}).get("b", {})
    name_a = os.path.basename(ra.get("path", "A"))
    name_b = os.path.basename(rb.get("path", "B"))
    ax.set_xlabel(f"{name_a} / {name_b} (log scale; < 1: {name_a} is faster or smaller)")
    s = doc.get("settings", {})
    host = doc.get("host", {})
    ax.set_title(
        f"benchmarks/bench.py: {name_a} against {name_b}, paired ratios A_i/B_i "
        f"({s.get('rounds', '?')} rounds, batches {s.get('batch_rounds', '?')} x "
        f"{s.get('lifecycles', '?')}; {host.get('cpus', '?')} CPUs)\n"
        "box: quartiles, whiskers: min-max, dots: each pair, diamond: ratio of the medians",
        fontsize=8,
    )
    fig.tight_layout()
    os.makedirs(out, exist_ok=True)
    paths = []
    for fmt in FORMATS:
        path = os.path.join(out, f"{name}.{fmt}")
        meta = {"Software": None} if fmt == "png" else {"Date": None, "Creator": None}
        fig.savefig(path, format=fmt, dpi=110, bbox_inches="tight", metadata=meta)
        paths.append(path)
    plt.close(fig)
    return paths


def main(argv=None):
    p = argparse.ArgumentParser(description="Plot the ratios of a bench.py --json run.")
    p.add_argument(
        "results",
        nargs="?",
        default=os.path.join(HERE, "results_bench.json"),
        help="bench.py --json output (default: benchmarks/results_bench.json)",
    )
    p.add_argument("--out", default=os.path.join(REPO, "docs", "figures"))
    p.add_argument("--name", default="bench_ratios", help="file name without extension")
    a = p.parse_args(argv)
    with open(a.results) as f:
        doc = json.load(f)
    for path in plot(doc, a.out, a.name):
        print(os.path.relpath(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
