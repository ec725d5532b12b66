"""The figures of the paper experiments and of the benchmark: made from the committed results by
the commands the docs name, small, and shown by the docs."""

import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIGURES = os.path.join(REPO, "docs", "figures")
MADE_BY = {  # figure -> (the doc that shows it, the script that makes it)
    "paper_table3": ("docs/PAPER_EXPERIMENTS.md", "experiments/plot.py"),
    "paper_table2": ("docs/PAPER_EXPERIMENTS.md", "experiments/plot.py"),
    "bench_ratios": ("docs/PERFORMANCE.md", "benchmarks/plot.py"),
}
has_matplotlib = importlib.util.find_spec("matplotlib") is not None


def load_script(relpath):
    spec = importlib.util.spec_from_file_location(
        "plot_" + relpath.split("/")[0], os.path.join(REPO, relpath)
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", sorted(MADE_BY))
def test_figures_are_committed_small_and_shown(name):
    doc, script = MADE_BY[name]
    for fmt in ("png", "svg"):
        path = os.path.join(FIGURES, f"{name}.{fmt}")
        assert os.path.isfile(path), path
        assert os.path.getsize(path) < 200 * 1024, path
    text = open(os.path.join(REPO, doc)).read()
    assert re.search(rf"\]\((\.\./docs/|)figures/{name}\.(png|svg)\)", text), (doc, name)
    assert script in text, (doc, script)


def test_bench_ratios_are_paired_samples():
    plot = load_script("benchmarks/plot.py")
    doc = {
        "settings": {"lifecycles": 4, "workers": 2},
        "summary": [{"metric": "run /bin/true", "ratio": 2.0}],
        "samples": {
            "run": {"a": [{"t": 0.2}, {"t": 0.3}, {"t": 0.1}], "b": [{"t": 0.1}, {"t": 0.1}, {"t": 0.05}]}
        },
    }
    rows = {title: (ratios, med) for title, ratios, med in plot.paired_ratios(doc)}
    assert rows["run /bin/true"] == (pytest.approx([2.0, 3.0, 2.0]), 2.0)
    assert "state (running container)" not in rows  # no samples: no row


def test_bench_ratios_of_the_committed_run():
    plot = load_script("benchmarks/plot.py")
    with open(os.path.join(REPO, "benchmarks", "results_bench.json")) as f:
        doc = json.load(f)
    rows = plot.paired_ratios(doc)
    titles = [r[0] for r in rows]
    assert titles[0] == "run /bin/true" and "state (running container)" in titles
    for title, ratios, med in rows:
        assert ratios and all(r > 0 for r in ratios), title
        assert med is None or med > 0, title


@pytest.mark.skipif(not has_matplotlib, reason="matplotlib (the plots extra) not installed")
def test_scripts_make_the_figures(tmp_path):
    for script, args in (
        ("experiments/plot.py", []),
        ("benchmarks/plot.py", [os.path.join(REPO, "benchmarks", "results_bench.json")]),
    ):
        p = subprocess.run(
            [sys.executable, os.path.join(REPO, script), *args, "--out", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert p.returncode == 0, p.stderr
    made = sorted(os.listdir(tmp_path))
    assert made == sorted(f"{n}.{fmt}" for n in MADE_BY for fmt in ("png", "svg"))
    for name in made:
        assert (tmp_path / name).stat().st_size < 200 * 1024
