#!/usr/bin/env python3
"""Figures of the paper experiments, from their JSON results (matplotlib: the `plots` extra).

    .venv/bin/python experiments/plot.py [--ocirt experiments/results_ocirt.json]
        [--runc experiments/results_runc.json] [--http experiments/results_http.json]
        [--out docs/figures]

Writes, as PNG and SVG into --out:
  paper_table3.*  Table 3: each container's share of the CPU per case, ocirt and runc beside the
                  paper's (from cpu_shares.py --json);
  paper_table2.*  Table 2: requests/s by CPU count (http_cpus.py --json), the median of each
                  runtime with its min-max range, and the speed-up over 1 CPU beside the paper's
                  (and beside the CPU-bound shell loops of cpu_shares.py --table2).
A results file that is missing is skipped (its figure is not made).
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from cpu_shares import PAPER_TABLE2  # noqa: E402  (the paper's numbers, defined once)

COLORS = {
    "paper": "#9e9e9e",
    "ocirt": "#1f77b4",
    "runc": "#ff7f0e",
    "ocirt-netdevices": "#1f77b4",
    "ocirt-netns": "#6baed6",
    "runc-netns": "#ff7f0e",
}
LABELS = {
    "ocirt-netdevices": "ocirt (netDevices)",
    "ocirt-netns": "ocirt (script's netns)",
    "runc-netns": "runc (script's netns)",
}
FORMATS = ("png", "svg")


def pyplot():
    try:
        import matplotlib
    except ImportError:
        sys.exit("plot.py: needs matplotlib: .venv/bin/pip install '.[plots]' (or pip install matplotlib)")
    matplotlib.use("Agg")
    matplotlib.rcParams.update(
        {
            "svg.hashsalt": "ocirt",
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "svg.fonttype": "none",
        }
    )
    import matplotlib.pyplot as plt

    return plt


def load(path):
    if not path or not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def save(fig, out, name):
    """name.png and name.svg in out; returns their paths. Metadata without dates, so that the
    same results give the same files."""
    os.makedirs(out, exist_ok=True)
    paths = []
    for fmt in FORMATS:
        path = os.path.join(out, f"{name}.{fmt}")
        meta = {"Software": None} if fmt == "png" else {"Date": None, "Creator": None}
        fig.savefig(path, format=fmt, dpi=110, bbox_inches="tight", metadata=meta)
        paths.append(path)
    return paths


def table3(plt, results):
    """results: {"ocirt": doc, "runc": doc} of cpu_shares.py --json."""
    first = next(iter(results.values()))
    cases = [row["case"] for row in first["table3"]]
    series = [("paper", {r["case"]: r["paper"] for r in first["table3"]})]
    for name, doc in results.items():
        series.append((name, {r["case"]: r["measured"] for r in doc["table3"]}))
    fig, axes = plt.subplots(1, len(cases), figsize=(9, 3.1), sharey=True)
    width = 0.8 / len(series)
    for ax, case in zip(axes, cases):
        row = next(r for r in first["table3"] if r["case"] == case)
        for i, (name, values) in enumerate(series):
            xs = [c + (i - (len(series) - 1) / 2) * width for c in (0, 1)]
            bars = ax.bar(xs, values[case], width, color=COLORS.get(name), label=name)
            ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
        ax.set_xticks([0, 1], ["c1", "c2"])
        shares = "/".join(str(s) for s in row["shares"])
        busy = "both busy" if all(row["busy"]) else "c1 busy, c2 idle"
        ax.set_title(f"case {case}: cpus {row['cpus']}\nshares {shares}, {busy}", fontsize=8)
        ax.set_ylim(0, 112)
    axes[0].set_ylabel("% of one CPU")
    axes[0].legend(loc="upper right", fontsize=7, frameon=False)
    fig.suptitle("Table 3: CPU share of two containers (cpu.shares, cpuset.cpus)", fontsize=10)
    fig.tight_layout()
    return fig


def table2(plt, http, loops):
    """http: http_cpus.py --json; loops: {"ocirt": doc, "runc": doc} of cpu_shares.py --table2."""
    fig, (ax_rps, ax_up) = plt.subplots(1, 2, figsize=(9, 3.3))
    labels = []
    for row in http["table"]:
        if row["label"] not in labels:
            labels.append(row["label"])
    width = 0.8 / max(len(labels), 1)
    ncpus = sorted({row["ncpus"] for row in http["table"]})
    for i, label in enumerate(labels):
        rows = sorted((r for r in http["table"] if r["label"] == label), key=lambda r: r["ncpus"])
        xs = [r["ncpus"] + (i - (len(labels) - 1) / 2) * width for r in rows]
        med = [r["rps_median"] for r in rows]
        err = [[r["rps_median"] - r["rps_min"] for r in rows], [r["rps_max"] - r["rps_median"] for r in rows]]
        ax_rps.bar(
            xs,
            med,
            width,
            yerr=err,
            capsize=3,
            color=COLORS.get(label),
            label=LABELS.get(label, label),
            error_kw={"elinewidth": 0.8},
        )
        ax_up.plot(
            [r["ncpus"] for r in rows],
            [r["rps_median"] / rows[0]["rps_median"] for r in rows],
            "o-",
            color=COLORS.get(label),
            label=LABELS.get(label, label) + ", HTTP",
        )
    ax_rps.set_xticks(ncpus, [f"{n} CPU" + ("s" if n > 1 else "") for n in ncpus])
    ax_rps.set_ylabel("requests/s (median, min-max)")
    ax_rps.set_title(
        f"busybox httpd in a container, ab -c {http['concurrency']}, {http['rounds']} rounds", fontsize=8
    )
    ax_rps.legend(fontsize=7, frameon=False, loc="upper left")
    ax_rps.set_ylim(0, max(r["rps_max"] for r in http["table"]) * 1.25)
    paper = sorted(PAPER_TABLE2.items())
    ax_up.plot(
        [n for n, _ in paper],
        [v / PAPER_TABLE2[1] for _, v in paper],
        "s--",
        color=COLORS["paper"],
        label="paper (apache, ab from another host)",
    )
    for name, doc in (loops or {}).items():
        rows = sorted(doc.get("table2") or [], key=lambda r: r["ncpus"])
        if rows:
            ax_up.plot(
                [r["ncpus"] for r in rows],
                [r["throughput_kiter_s"] / rows[0]["throughput_kiter_s"] for r in rows],
                "^:",
                color=COLORS.get(name),
                alpha=0.7,
                label=f"{name}, CPU-bound shell loops",
            )
    top = max(PAPER_TABLE2)
    ax_up.plot([1, top], [1, top], color="#dddddd", lw=0.8, zorder=0, label="linear")
    ax_up.set_xticks(range(1, top + 1))
    ax_up.set_xlabel("CPUs (cpuset.cpus)")
    ax_up.set_ylabel("speed-up over 1 CPU")
    ax_up.set_ylim(0.9, 2.3)
    ax_up.set_title("speed-up: this 2-CPU machine and the paper's 4 cores", fontsize=8)
    ax_up.legend(fontsize=6.5, frameon=False, loc="lower right")
    fig.suptitle("Table 2: requests/s by CPU count", fontsize=10)
    fig.tight_layout()
    return fig


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ocirt", default=os.path.join(HERE, "results_ocirt.json"))
    p.add_argument("--runc", default=os.path.join(HERE, "results_runc.json"))
    p.add_argument("--http", default=os.path.join(HERE, "results_http.json"))
    p.add_argument("--out", default=os.path.join(REPO, "docs", "figures"))
    a = p.parse_args(argv)
    plt = pyplot()
    shares = {name: doc for name, doc in (("ocirt", load(a.ocirt)), ("runc", load(a.runc))) if doc}
    written = []
    if shares:
        fig = table3(plt, shares)
        written += save(fig, a.out, "paper_table3")
        plt.close(fig)
    http = load(a.http)
    if http:
        fig = table2(plt, http, shares)
        written += save(fig, a.out, "paper_table2")
        plt.close(fig)
    if not written:
        sys.exit("plot.py: no results file found")
    for path in written:
        print(os.path.relpath(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
