"""The sweep report (one self-contained HTML page) and the W&B sweep-level summary run.

The browser test opens the report in headless Chromium (Debian's package, installed by
tests/install_browser.sh) with DNS mapped to nowhere, so it must render from the file alone;
it checks in the DOM that every plotly figure drew its SVG, and keeps a screenshot in
tests/artifacts/ (git-ignored).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from tiny_sweeps import REPO

from nasforge.platform.cli import main

ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--host-resolver-rules=MAP * ~NOTFOUND"]  # no network: the page must not need one
PLOTLY_BG = (229, 236, 246)  # plotly's default plot-area colour (#E5ECF6)




def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("Chromium is not installed: run tests/install_browser.sh (Debian's chromium package)")
    return exe


def _run_chromium(exe: str, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)  # a fresh profile every run
    return subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=180)


class _PlotScan(HTMLParser):
    """For each <div id="plot-KEY">, the classes of the elements inside it."""

    def __init__(self):
        super().__init__()
        self.stack: list[str | None] = []
        self.classes: dict[str, set[str]] = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        ident = a.get("id") or ""
        owner = ident[5:] if ident.startswith("plot-") else (self.stack[-1] if self.stack else None)
        if owner is not None:
            self.classes.setdefault(owner, set()).update((a.get("class") or "").split())
        if tag not in ("br", "img", "meta", "link", "input", "hr", "path", "rect", "line", "circle",
                       "stop", "use", "image"):
            self.stack.append(owner)

    def handle_endtag(self, tag):
        if self.stack and tag not in ("br", "img", "meta", "link", "input", "hr"):
            self.stack.pop()


def _report_manifest(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="nasforge-report">(.*?)</script>', page, re.S)
    return json.loads(m.group(1))


def test_report_is_one_self_contained_file(quick_runs, tmp_path, capsys):
    out = tmp_path / "report.html"
    assert main(["report", "quickstart", "-o", str(out), "--root", str(quick_runs)]) == 0
    assert "self-contained" in capsys.readouterr().out
    page = out.read_text()
    # nothing fetched from elsewhere: no external scripts, styles or images
    assert not re.search(r"<script[^>]+\bsrc=", page)
    assert not re.search(r"<link\b", page)
    assert all(src.startswith("data:") for src in re.findall(r"<img[^>]+src='([^']*)'", page))
    assert "Plotly" in page  # plotly.js is inlined
    man = _report_manifest(page)
    # the quickstart prunes with the median pruner, so trials report per-epoch values
    assert {"history", "importance", "parallel", "intermediate"} <= set(man["figures"])
    assert "pareto" not in man["figures"]  # one objective: no Pareto front
    # the leaderboard lists every trial with its state, objective and parameter count
    from nasforge.platform.engine.run_folder import open_run

    study = open_run("quickstart", quick_runs).study
    table = page[page.index("<table class='lb'>"):page.index("</table>")]
    for t in study.trials:
        assert f"<td>{t.number}</td>" in table
        assert f"{t.values[0]:.4g}" in table
    assert table.count("<tr>") == 1 + len(study.trials)
    assert "val/acc ↑" in table and "params" in table and "convnet/width" in table


def test_figures_that_cannot_be_drawn_leave_a_note(quick_runs):
    """One completed trial: no importances (they need two), but the rest still draws."""
    import optuna

    from nasforge.platform.views.report import sweep_figures
    from nasforge.platform.engine.run_folder import open_run

    run = open_run("quickstart", quick_runs)
    one = optuna.create_study(directions=run.cfg.directions)
    one.add_trial(run.study.best_trial)
    figs = {f.key: f for f in sweep_figures(one, run.cfg)}
    assert figs["importance"].fig is None and "needs at least 2 completed trials" in figs["importance"].note
    assert figs["history"].fig is not None and figs["parallel"].fig is not None


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("sweep", ["quickstart", "moo"])
def test_report_renders_in_headless_chromium(sweep, quick_runs, moo_runs, tmp_path):
    from PIL import Image

    exe = _chromium()
    runs = quick_runs if sweep == "quickstart" else moo_runs
    out = tmp_path / f"report-{sweep}.html"
    assert main(["report", sweep, "-o", str(out), "--root", str(runs)]) == 0
    page = out.read_text()
    man = _report_manifest(page)
    if sweep == "moo":
        assert {"history0", "history1", "pareto", "parallel"} <= set(man["figures"])
        assert page.count("src='data:image/png;base64,") >= 2  # both trials' cell diagrams
    url = out.as_uri()

    dom = _run_chromium(exe, ["--virtual-time-budget=15000", "--dump-dom", url], tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    scan = _PlotScan()
    scan.feed(dom.stdout)
    for key in man["figures"]:
        classes = scan.classes.get(key, set())
        assert "plot-container" in classes and "main-svg" in classes, f"figure {key!r} did not render"
    assert dom.stdout.count('class="main-svg"') >= len(man["figures"])

    shot = tmp_path / "shot.png"
    res = _run_chromium(exe, ["--virtual-time-budget=15000", f"--screenshot={shot}",
                              "--window-size=1400,3000", "--hide-scrollbars", url], tmp_path)
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    ARTIFACTS.mkdir(exist_ok=True)
    kept = ARTIFACTS / f"report-{sweep}.png"
    shutil.copyfile(shot, kept)
    img = Image.open(kept).convert("RGB")
    assert img.size == (1400, 3000)
    small = img.resize((350, 750))
    colours = small.getcolors(350 * 750)
    plot_area = sum(n for n, c in colours if all(abs(a - b) <= 3 for a, b in zip(c, PLOTLY_BG)))
    white = sum(n for n, c in colours if min(c) >= 250)
    assert plot_area > 0.05 * 350 * 750, "no plotly plot area visible in the screenshot"
    assert white < 0.9 * 350 * 750, "the screenshot is (nearly) blank"


def test_report_of_an_unknown_sweep_is_one_line(quick_runs, tmp_path, capsys):
    assert main(["report", "nosuch", "--root", str(quick_runs), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no sweep named 'nosuch'" in err
    assert not (tmp_path / "r.html").exists()


def _leet(run_dir: str, *args: str) -> str:
    wandb_cli = Path(os.sys.executable).with_name("wandb")
    probe = subprocess.run([str(wandb_cli), "leet", "inspect", "--help"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("this wandb has no `wandb leet inspect` reader")
    res = subprocess.run([str(wandb_cli), "leet", "inspect", *args, run_dir], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.mark.slow
def test_wandb_sweep_summary_run_holds_leaderboard_and_plots(quick_runs, tmp_path, monkeypatch):
    from nasforge.platform.engine.run_folder import open_run
    from nasforge.platform.views.wandb_summary import log_sweep_summary

    monkeypatch.setenv("WANDB_MODE", "offline")
    run = open_run("quickstart", quick_runs)
    folder = log_sweep_summary(run.study, run.cfg, str(tmp_path))
    assert folder and os.path.basename(folder).startswith("offline-run-")
    records = [json.loads(line) for line in _leet(folder, "--json").splitlines() if line.strip()]
    header = next(r["run"] for r in records if r["type"] == "run")
    assert header["job_type"] == "sweep-summary" and header["run_group"] == "quickstart"
    history = [r["history"]["item"] for r in records if r["type"] == "history"]
    item = {k: v for h in history for k, v in h.items()}
    assert item["leaderboard._type"] == "table-file"
    assert item["leaderboard.nrows"] == len(run.study.trials)
    for key in ("history", "parallel", "intermediate"):
        assert item[f"plots/{key}._type"] == "plotly-file"
    # the table file W&B wrote holds one row per trial, the best first
    table = json.loads((Path(folder) / "files" / item["leaderboard.path"]).read_text())
    cols = table["columns"]
    assert cols[:4] == ["rank", "trial", "state", "val/acc"]
    assert table["data"][0][1] == run.study.best_trial.number
    summary = json.loads(_leet(folder, "--summary", "--json"))
    assert json.dumps(summary).count("best/val/acc") >= 1
