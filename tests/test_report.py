"""The HTML report: rendered by real headless Chromium with no console errors and no network requests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import tailored
from tailored.config import DataConfig, EvalConfig, RunConfig, TrainConfig
from tailored.evaluation import report
from tests.conftest import write_jsonl, yes_rows

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CSP_TAG = """<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; """ \
          """style-src 'unsafe-inline'">"""
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def browse(page: Path, out: Path) -> dict:
    """Open `page` in headless Chromium: its console lines, the requests the page itself made, DOM, screenshot."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; `make test` installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    net, shot = out / "net.json", out / "shot.png"
    run = subprocess.run([CHROMIUM, *FLAGS, "--enable-logging=stderr", "--v=0", f"--log-net-log={net}",
                          "--window-size=1200,2400", f"--screenshot={shot}", page.resolve().as_uri()],
                         capture_output=True, text=True, timeout=120)
    dom = subprocess.run([CHROMIUM, *FLAGS, "--dump-dom", page.resolve().as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    log = json.loads(net.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    # The browser's own background fetches have no initiating page ("not an origin"); the page's do.
    starts = [e.get("params", {}) for e in log["events"] if e["type"] == start_job]
    requests = [p["url"] for p in starts if p.get("url") and p.get("initiator") != "not an origin"
                and not p["url"].startswith(("file:", "data:"))]
    return {"console": console, "requests": requests, "dom": dom, "screenshot": shot}


def test_the_checker_catches_console_errors_and_page_requests(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><img src="http://127.0.0.1:9/x.png"><script>console.error("boom")</script>'
                   "</body></html>", encoding="utf-8")
    seen = browse(bad, tmp_path)
    assert any("boom" in line for line in seen["console"])
    assert seen["requests"] == ["http://127.0.0.1:9/x.png"]


@pytest.fixture(scope="module")
def trained_run(tiny_base, tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    rows = [dict(r, segment="a" if i % 3 else "b") for i, r in enumerate(yes_rows(40))]
    data = write_jsonl(folder / "yes.jsonl", rows)
    write_jsonl(folder / "yes.heldout.jsonl",
                [dict(r, segment="a" if i % 3 else "b") for i, r in enumerate(yes_rows(24, start=500))])
    cfg = TrainConfig(base=str(tiny_base), epochs=4, learning_rate=1e-2, batch_size=8)
    return tailored.train(data, cfg, DataConfig(), EvalConfig(max_new_tokens=4, slice_by="segment", min_slice=5,
                                                              forgetting=False),
                          RunConfig(runs_dir=str(folder / "runs")), quiet=True)


def test_train_writes_a_report_chromium_renders_cleanly(trained_run, tmp_path):
    page = trained_run.path / "report.html"
    text = page.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text and "<script" not in text
    assert CSP_TAG in text
    seen = browse(page, tmp_path)
    assert seen["console"] == [], seen["console"]
    assert seen["requests"] == []
    dom = seen["dom"]
    assert "<table" in dom and "exact_match" in dom and "Per slice: segment" in dom
    assert dom.index('id="verdict"') < dom.index("<table")  # the verdict comes first
    assert "Better than the base model: rouge_l 0.0 → 100.0" in dom
    assert dom.count('src="data:image/png;base64,') >= 3  # metrics, loss curve, slices
    from PIL import Image

    image = Image.open(seen["screenshot"]).convert("RGB")
    assert image.size == (1200, 2400)
    colours = image.resize((120, 240)).getcolors(maxcolors=1 << 16)
    assert colours is not None and len(colours) > 50  # plots and text drew, not a blank page


def test_label_report_has_both_confusion_matrices():
    confusion = {"labels": ["a", "b"], "matrix": [[3, 1], [0, 4]]}
    comparison = {"primary": "accuracy", "task": "label", "base_name": "base", "rows": [],
                  "base": {"accuracy": 50.0, "confusion": confusion}, "tuned": {"accuracy": 87.5, "confusion": confusion},
                  "base_ci": {"accuracy": [20.0, 80.0]}, "tuned_ci": {"accuracy": [62.5, 100.0]}}
    page = report.render("t", comparison, [], None, None, None)
    assert CSP_TAG in page  # nothing in the page can fetch or run anything
    assert page.count("data:image/png;base64,") == 3 and "87.5" in page and "[62.5–100.0]" in page


def test_many_classes_get_tables_of_confused_pairs_and_worst_classes_instead_of_matrices():
    labels = [f"intent_{i:02d}" for i in range(20)]
    matrix = [[10 if i == j else 0 for j in range(20)] for i in range(20)]
    matrix[3][3], matrix[3][7] = 4, 6  # intent_03 mistaken for intent_07 six times: the worst pair and class
    matrix[5][5], matrix[5][6] = 8, 2
    confusion = {"labels": labels, "matrix": matrix}
    comparison = {"primary": "accuracy", "task": "label", "base_name": "base", "rows": [],
                  "base": {"accuracy": 50.0, "confusion": confusion}, "tuned": {"accuracy": 96.0, "confusion": confusion},
                  "base_ci": {"accuracy": [40.0, 60.0]}, "tuned_ci": {"accuracy": [93.0, 98.5]}}
    page = report.render("t", comparison, [], None, None, None)
    assert page.count("data:image/png;base64,") == 1  # the metric plot only: no 20x20 matrices
    pairs = page.split("Most-confused pairs")[1].split("</table>")[0]
    assert pairs.index("intent_03</td><td>intent_07</td><td class='num'>6") < pairs.index("intent_05</td><td>intent_06")
    worst = page.split("Per-class F1, worst first")[1].split("</table>")[0]
    # intent_03: precision 4/4, recall 4/10 → F1 57.1; intent_07: 10/16 and 10/10 → 76.9
    assert worst.index("intent_03</td><td class='num'>57.1") < worst.index("intent_07</td><td class='num'>76.9")


def test_eval_gate_sets_the_exit_code_and_writes_a_report(trained_run, tmp_path):
    from typer.testing import CliRunner

    from tailored.cli import app

    common = ["eval", str(trained_run.path), "--max-new-tokens", "4", "--no-forgetting"]
    ok = CliRunner().invoke(app, common + ["--fail-if-worse", "--report", str(tmp_path / "r.html")])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "r.html").exists()
    failed = CliRunner().invoke(app, common + ["--min", "exact_match=101"])
    assert failed.exit_code == 1 and "gate failed" in failed.output
    missing = CliRunner().invoke(app, common + ["--slice-by", "nope"])
    assert missing.exit_code == 1 and "segment" in missing.output


def test_the_forgetting_section_sets_the_kept_share_beside_the_base_s_own_noise_floor():
    from tailored.evaluation import general

    fg = {"questions": 129, "base_correct": 61, "tuned_correct": 67, "kept": 46, "kept_share": 75.4,
          "kept_ci": [63.9, 85.3], "examples": [],
          "floor": {"system": general.NEUTRAL_SYSTEM, "kept": 48, "kept_share": 78.7, "kept_ci": [68.9, 88.6],
                    "tuned_correct": 63}}
    html = "".join(report._review_html({"forgetting": fg}))
    assert "46 of those (75%, 95% interval 64–85)" in html
    assert "keeps 48 of its 61 right answers (79%, 69–89)" in html and general.NEUTRAL_SYSTEM in html
    without = "".join(report._review_html({"forgetting": {k: v for k, v in fg.items() if k != "floor"}}))
    assert "For scale" not in without and "46 of those" in without
    assert "task's form" not in html  # not a JSON task: task_form absent
    fg["task_form"] = {"form": "JSON object", "questions": 129, "base": 0, "tuned": 11,
                       "examples": [{"prompt": "Sort these numbers: 3, 1, 2.", "tuned": '{"intents": ["sort"]}'}]}
    html = "".join(report._review_html({"forgetting": fg}))
    assert "<b>11 of 129</b> general questions (the base: 0)" in html and "{&quot;intents&quot;" in html
    assert "Asked as it will be used" not in html  # no system prompt to ask with
    fg["as_asked"] = {"system": "You are <Northwind>'s agent.", "kept": 40, "base_correct": 61, "kept_share": 65.6,
                      "kept_ci": [54.1, 77.0], "floor": {"kept": 54, "kept_share": 88.5, "kept_ci": [80.3, 96.7]},
                      "examples": [{"prompt": "What is the capital of Canada?", "expected": "Ottawa", "base": "Ottawa.",
                                    "tuned": "Toronto"}]}
    html = "".join(report._review_html({"forgetting": fg}))
    assert "“You are &lt;Northwind&gt;&#x27;s agent.”" in html
    assert "<b>40 of the 61 (66%, 95% interval 54–77)</b>" in html and "keeps 54 (88%, 80–97)" in html
    assert "tuned, with the run's system prompt: Toronto" in html and "rightly get" not in html
    fg["as_asked"]["task_form"] = 57
    assert "57 of those answers came in the task's form" in "".join(report._review_html({"forgetting": fg}))


def test_the_looping_section_shows_both_counts_the_warning_and_an_example():
    from tailored.evaluation import review

    rows = [{"line": 4, "prompt": "Summarise <this>", "base": "ok", "tuned": "A tells B that " * 3}]
    html = "".join(report._review_html({"repetition": review.repetition(rows)}))
    assert "1 of 1 tuned answers repeat a phrase back to back (the base: 0)" in html
    assert "Summarise &lt;this&gt;" in html and "<b>repeats</b> a tells b that" in html and 'class="warn"' in html
    quiet = review.repetition([{"line": 1, "prompt": "p", "base": "fine", "tuned": "fine"}])
    assert "Looping answers" not in "".join(report._review_html({"repetition": quiet}))
