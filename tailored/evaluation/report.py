"""One self-contained HTML file that shows the evidence: plots as inline PNG, no scripts, no network.

A Content-Security-Policy in the page forbids every fetch, so the report cannot leak anything when
opened and looks the same offline.
"""

from __future__ import annotations

import base64
import difflib
import html
import io
import json
from pathlib import Path

from tailored import atomic
from tailored.evaluation.compare import with_ci

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STYLE = """
body{font:15px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1d2433;margin:0;background:#f5f6f8}
main{max-width:1080px;margin:0 auto;padding:28px 32px 60px}
h1{font-size:26px;margin:0 0 4px} h2{font-size:19px;margin:34px 0 10px;border-bottom:1px solid #dde1e7;padding-bottom:4px}
.sub{color:#5b6475;margin:0 0 18px} .card{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:16px 20px;margin:12px 0}
.verdict{font-size:18px;font-weight:600} .good{color:#137a3c} .bad{color:#b42318} .warn{color:#a15c00} .unclear{color:#a15c00}
table{border-collapse:collapse;width:100%;background:#fff} th,td{border-bottom:1px solid #e6e9ee;padding:6px 10px;text-align:left;vertical-align:top}
th{background:#f0f2f5;font-weight:600} th.num{text-align:right} td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.ci{color:#6b7385;font-size:12px} img{max-width:100%;height:auto} .grid{display:grid;grid-template-columns:1fr 1fr;gap:14px}
.sample td{font-size:13.5px} mark{background:#ffe2b8;padding:0 1px;border-radius:2px} .label{color:#5b6475;font-size:12px;width:70px}
pre{background:#f0f2f5;padding:10px;border-radius:6px;overflow:auto;font-size:12.5px} ul{margin:6px 0}
"""


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _figure(width: float = 6.2, height: float = 3.4):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height))
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def loss_plot(history: list[dict]) -> str:
    train = [(h["step"], h["train_loss"]) for h in history if "train_loss" in h]
    valid = [(h["step"], h["valid_loss"]) for h in history if h.get("valid_loss") is not None]
    if not train:
        return ""
    fig, ax = _figure()
    ax.plot(*zip(*train), color="#9db4d8", lw=1, label="training loss (per step)")
    if valid:
        ax.plot(*zip(*valid), "o-", color="#d9480f", ms=4, label="validation loss")
        best = min(valid, key=lambda v: v[1])
        ax.axvline(best[0], color="#137a3c", ls="--", lw=1, label=f"best, kept (step {best[0]})")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(frameon=False, fontsize=9)
    return _png(fig)


def metric_plot(c: dict) -> str:
    names = [k for k, v in c["tuned"].items() if isinstance(v, (int, float))]
    fig, ax = _figure()
    x = range(len(names))
    for offset, who, colour in ((-0.2, "base", "#9aa4b5"), (0.2, "tuned", "#2f6fd6")):
        values = [c[who][n] for n in names]
        ci = [c[f"{who}_ci"].get(n) or (v, v) for n, v in zip(names, values)]
        errors = [[v - lo for v, (lo, _) in zip(values, ci)], [hi - v for v, (_, hi) in zip(values, ci)]]
        ax.bar([i + offset for i in x], values, 0.4, yerr=errors, capsize=3, color=colour,
               label=c.get("base_name", "base") if who == "base" else "tuned")
    ax.set_xticks(list(x), names, rotation=20, ha="right")
    ax.set_ylim(0, 105)
    ax.set_ylabel("score (0–100), 95% interval")
    ax.legend(frameon=False, fontsize=9, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2)
    return _png(fig)


MAX_PLOTTED_CLASSES = 15  # above this, confusion matrices become tables of the worst pairs and classes


def confusion_tables(confusion: dict, top: int = 10) -> str:
    """The most-confused label pairs, and per-class F1 worst first, for the tuned model."""
    import numpy as np

    h = html.escape
    labels, matrix = confusion["labels"], np.asarray(confusion["matrix"])
    pairs = sorted(((int(matrix[i, j]), labels[i], labels[j]) for i in range(len(labels)) for j in range(len(labels))
                    if i != j and matrix[i, j]), reverse=True)[:top]
    out = [f"<h2>Most-confused pairs (tuned, {len(labels)} classes)</h2><table><tr><th>true label</th>"
           "<th>predicted as</th><th class='num'>rows</th></tr>"]
    out.extend(f"<tr><td>{h(t)}</td><td>{h(p)}</td><td class='num'>{n}</td></tr>" for n, t, p in pairs)
    out.append("</table>")
    true_counts, predicted_counts, hits = matrix.sum(1), matrix.sum(0), np.diag(matrix)
    f1 = {}
    for i, label in enumerate(labels):
        if true_counts[i] == 0:
            continue  # no held-out row of this class: nothing to judge
        precision = hits[i] / predicted_counts[i] if predicted_counts[i] else 0.0
        recall = hits[i] / true_counts[i]
        f1[label] = (100.0 * 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
                     int(true_counts[i]))
    worst = sorted(f1.items(), key=lambda kv: kv[1][0])[: top + 5]
    out.append(f"<h2>Per-class F1, worst first (tuned, {len(worst)} of {len(f1)} classes)</h2><table><tr><th>class"
               "</th><th class='num'>F1</th><th class='num'>held-out rows</th></tr>")
    out.extend(f"<tr><td>{h(label)}</td><td class='num'>{score:.1f}</td><td class='num'>{n}</td></tr>"
               for label, (score, n) in worst)
    out.append("</table>")
    return "".join(out)


def confusion_plot(confusion: dict, title: str) -> str:
    import numpy as np

    labels, matrix = confusion["labels"], np.asarray(confusion["matrix"])
    fig, ax = _figure(4.6, 4.0)
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if matrix[i, j]:
                ax.text(j, i, int(matrix[i, j]), ha="center", va="center",
                        color="white" if matrix[i, j] > matrix.max() / 2 else "#1d2433", fontsize=9)
    ax.set_xlabel("predicted")
    ax.set_ylabel("expected")
    ax.set_title(title, fontsize=11)
    return _png(fig)


def slice_plot(sl: dict) -> str:
    names = list(sl["slices"])
    primary = sl["primary"]
    fig, ax = _figure(6.2, 0.5 + 0.45 * len(names) + 1)
    y = range(len(names))
    ax.barh([i + 0.2 for i in y], [sl["slices"][n]["base"][primary] for n in names], 0.4, color="#9aa4b5", label="base")
    colours = ["#b42318" if sl["slices"][n]["flagged"] else "#2f6fd6" for n in names]
    ax.barh([i - 0.2 for i in y], [sl["slices"][n]["tuned"][primary] for n in names], 0.4, color=colours, label="tuned")
    ax.axvline(sl["overall"] - sl["margin"], color="#b42318", ls=":", lw=1, label="flag line (overall − margin)")
    ax.set_yticks(list(y), [f"{n} ({sl['slices'][n]['rows']})" for n in names])
    ax.set_xlabel(primary)
    ax.set_xlim(0, 105)
    ax.legend(frameon=False, fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3)
    return _png(fig)


def _marked(text: str, reference: str) -> str:
    """`text` with the words that differ from `reference` highlighted."""
    a, b = text.split(), reference.split()
    out = []
    for op, i1, i2, _, _ in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        words = html.escape(" ".join(a[i1:i2]))
        if words:
            out.append(words if op == "equal" else f"<mark>{words}</mark>")
    return " ".join(out) or "<i>(empty)</i>"


def _cell(value: float, interval) -> str:
    ci = f' <span class="ci">[{interval[0]:.1f}–{interval[1]:.1f}]</span>' if interval else ""
    return f'<td class="num">{value:.1f}{ci}</td>'


def render(title: str, comparison: dict | None, history: list[dict], check: dict | None, config: dict | None,
           lineage: dict | None, samples: int = 10) -> str:
    h = html.escape
    parts = [f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" '
             f'content="{CSP}"><meta name="viewport" content="width=device-width"><title>{h(title)}</title>'
             f'<style>{STYLE}</style></head><body><main><h1>{h(title)}</h1>']
    if lineage:
        base = lineage.get("base", {}).get("name")
        parts.append(f'<p class="sub">base <b>{h(str(base))}</b> · data {h(str(lineage["data"]["train"]["path"]))} '
                     f'(sha256 {h(lineage["data"]["train"]["sha256"][:12])}) · created {h(lineage.get("created", ""))}</p>')
    c = comparison
    if c:
        primary, gain = c["primary"], c["tuned"][c["primary"]] - c["base"][c["primary"]]
        gate = c.get("review", {}).get("gate", {"passed": True, "failures": []})
        klass = "good" if gain > 0 and gate["passed"] else "bad"
        if v := c.get("review", {}).get("verdict"):  # the answer first, in words
            word = {"better": "good", "worse": "bad"}.get(v["word"], "unclear")
            parts.append(f'<p class="verdict {word}" id="verdict">{h(v["text"])}</p>')
        parts.append(f'<div class="card"><div class="verdict {klass}">{h(primary)}: {c["base"][primary]:.1f} → '
                     f'{c["tuned"][primary]:.1f} ({gain:+.1f}) on {len(c["rows"])} {h(c.get("on", "held-out"))} rows'
                     f'</div><div>{"gate passed" if gate["passed"] else "gate failed: " + h("; ".join(gate["failures"]))}'
                     f' · compared with {h(c.get("base_name", "base"))} · '
                     f'{"answers generated greedily" if c.get("base_name", "base") == "base" else "labels predicted"}'
                     ', 95% bootstrap intervals'
                     '</div></div>')
        parts.append(f'<h2>Metrics</h2><table><tr><th>metric</th><th class="num">{h(c.get("base_name", "base"))}</th>'
                     '<th class="num">tuned</th><th class="num">change</th></tr>')
        for name, value in c["tuned"].items():
            if isinstance(value, (int, float)):
                delta = value - c["base"][name]
                parts.append(f'<tr><td>{h(name)}{" (primary)" if name == primary else ""}</td>'
                             f'{_cell(c["base"][name], c["base_ci"].get(name))}{_cell(value, c["tuned_ci"].get(name))}'
                             f'<td class="num {"good" if delta > 0 else "bad" if delta < 0 else ""}">{delta:+.1f}</td></tr>')
        parts.append("</table>")
        if parent := c.get("parent"):  # retraining: the version it started from, on the same rows
            before = parent["values"][primary]
            parts.append(f'<p id="parent">Parent {h(parent["name"])} on the same rows: {h(primary)} '
                         f'{with_ci(before, parent["ci"].get(primary))} → tuned '
                         f'{with_ci(c["tuned"][primary], c["tuned_ci"].get(primary))} '
                         f'({c["tuned"][primary] - before:+.1f}).</p>')
        review = c.get("review", {})
        if loss := review.get("loss"):
            parts.append(f'<p>Held-out loss (teacher forcing): base {loss["base_loss"]:.3f} (perplexity '
                         f'{loss["base_perplexity"]:.1f}) → tuned {loss["tuned_loss"]:.3f} (perplexity '
                         f'{loss["tuned_perplexity"]:.1f}).</p>')
        if c["task"] == "json" and "field_accuracy" in c["tuned"]:
            worst = ", ".join(f"{h(k)} {v:.0f}%" for k, v in list(c["tuned"]["field_accuracy"].items())[:5])
            parts.append(f"<p>Fields most often wrong (tuned, share correct): {worst}</p>")
        plots = [metric_plot(c), loss_plot(history)]
        many = c["task"] == "label" and len(c["tuned"].get("confusion", {}).get("labels", [])) > MAX_PLOTTED_CLASSES
        if c["task"] == "label" and "confusion" in c["tuned"] and not many:
            plots.append(confusion_plot(c["tuned"]["confusion"], "tuned"))
            plots.append(confusion_plot(c["base"]["confusion"], c.get("base_name", "base")))
        parts.append('<div class="grid">' + "".join(f"<div>{p}</div>" for p in plots if p) + "</div>")
        if many:  # a matrix of dozens of classes is a blur: the pairs and classes that go wrong, as tables
            parts.append(confusion_tables(c["tuned"]["confusion"]))
        if c.get("routed"):
            parts.append(f"<p>The run's router answered {c['routed']} of these {len(c['rows'])} rows with the untouched "
                         "base: they looked unlike the training inputs. Their tuned answer is the base's, as predict "
                         "and the server would give it.</p>")
        parts.extend(_review_html(review))
        parts.append(f"<h2>Side by side ({min(samples, len(c['rows']))} of {len(c['rows'])} rows)</h2>"
                     "<p class='sub'>Highlighted words differ from the expected answer.</p>")
        for row in c["rows"][:samples]:
            parts.append(f'<table class="sample card"><tr><td class="label">prompt<br>line {row["line"]}</td>'
                         f'<td>{h(row["prompt"])}</td></tr>'
                         + (f'<tr><td class="label">passages</td><td><details><summary>asked with these passages of '
                            f'the documents</summary><pre>{h(row["passages"])}</pre></details></td></tr>'
                            if row.get("passages") else "")
                         + f'<tr><td class="label">expected</td><td>{h(row["expected"])}</td></tr>'
                         f'<tr><td class="label">base</td><td>{_marked(row["base"], row["expected"])}</td></tr>'
                         + (f'<tr><td class="label">parent</td><td>{_marked(row["parent"], row["expected"])}</td></tr>'
                            if "parent" in row else "")
                         + f'<tr><td class="label">tuned{"<br>(routed to the base)" if row.get("routed") else ""}</td>'
                         f'<td>{_marked(row["tuned"], row["expected"])}</td></tr></table>')
    elif history:
        parts.append('<div class="grid"><div>' + loss_plot(history) + "</div></div>")
    if check:
        parts.append(f'<h2>Data check</h2><p>{len(check["errors"])} errors, {len(check["warnings"])} warnings.</p><ul>')
        parts.extend(f"<li>{h(w['kind'])}: {h(w['message'])}</li>" for w in check["warnings"])
        parts.append("</ul>")
        parts.append(f"<details><summary>profile</summary><pre>{h(json.dumps(check['profile'], indent=2))}</pre></details>")
    if config:
        parts.append(f"<h2>Settings and lineage</h2><pre>{h(json.dumps(config, indent=2))}</pre>")
    if lineage:
        parts.append(f"<pre>{h(json.dumps(lineage, indent=2))}</pre>")
    parts.append("</main></body></html>")
    return "\n".join(parts)


def _review_html(review: dict) -> list[str]:
    h, out = html.escape, []
    if sl := review.get("slices"):
        out.append(f"<h2>Per slice: {h(sl['field'])}</h2><p class='sub'>Slices more than {sl['margin']:g} points under "
                   f"the overall {h(sl['primary'])} ({sl['overall']:.1f}) are flagged; fewer than {sl['min_size']} rows "
                   "are not judged.</p><table><tr><th>slice</th><th class='num'>rows</th><th class='num'>base</th>"
                   "<th class='num'>tuned</th><th></th></tr>")
        for name, s in sl["slices"].items():
            note = '<span class="bad">below overall</span>' if s["flagged"] else "too few rows to judge" if s["too_small"] else "ok"
            out.append(f"<tr><td>{h(name)}</td><td class='num'>{s['rows']}</td>{_cell(s['base'][sl['primary']], None)}"
                       f"{_cell(s['tuned'][sl['primary']], s['tuned_ci'])}<td>{note}</td></tr>")
        out.append("</table>" + slice_plot(sl))
    if mem := review.get("memorisation"):
        out.append(f"<h2>Memorisation</h2><p>{mem['verbatim_share']:.0f}% of held-out answers repeat a training answer "
                   f"verbatim and {mem['near_share']:.0f}% share a run of {mem['ngram_words']}+ words with one; "
                   f"{mem['wrong_copies']} of those copies do not fit their row.</p>")
        if mem["warning"]:
            out.append(f'<p class="warn">{h(mem["warning"])}</p>')
        out.extend(f"<p class='card'>line {e['line']}: {h(e['prompt'])}<br><b>tuned</b> {h(e['tuned'])}<br>"
                   f"<b>expected</b> {h(e['expected'])}</p>" for e in mem["examples"])
    if (rep := review.get("repetition")) and (rep["tuned"] or rep["base"]):
        out.append(f"<h2>Looping answers</h2><p>{rep['tuned']} of {rep['rows']} tuned answers repeat a phrase back to "
                   f"back (the base: {rep['base']}). Greedy decoding can loop until the token limit; validation loss "
                   "does not see it.</p>")
        if rep["warning"]:
            out.append(f'<p class="warn">{h(rep["warning"])}</p>')
        out.extend(f"<p class='card'>line {e['line']}: {h(e['prompt'])}<br><b>tuned</b> {h(e['tuned'])}<br>"
                   f"<b>repeats</b> {h(e['run'])}</p>" for e in rep["examples"])
    if (gap := review.get("knowledge_gap")) and gap["flagged"]:
        out.append(f"<h2>Knowledge gap</h2><p>{gap['gap_rows']} of {gap['rows']} expected answers rest on words "
                   "found neither in their question nor anywhere in the training data. Tuning cannot teach facts "
                   "the model never saw; add documents or examples that contain them.</p>")
        out.extend(f"<p class='card'>line {e['line']}: {h(e['prompt'])}<br><b>expected</b> {h(e['expected'])}<br>"
                   f"<b>unseen</b> {h(', '.join(e['unseen']))}</p>" for e in gap["examples"][:3])
    if (fg := review.get("forgetting")) and fg.get("kept_share") is not None:
        low, high = fg["kept_ci"]
        out.append(f"<h2>General ability (forgetting)</h2><p>Of {fg['questions']} general questions with checkable "
                   f"answers (ours, unrelated to the task, each asked alone without the task's system prompt), the "
                   f"base answers {fg['base_correct']} correctly; the tuned model still answers "
                   f"<b>{fg['kept']} of those ({fg['kept_share']:.0f}%, 95% interval "
                   f"{low:.0f}–{high:.0f})</b>, and {fg['tuned_correct']} in all. The guard (--guard, on by default) "
                   "replays the base's own general answers in training to keep this high.</p>")
        if alone := fg.get("adapter"):
            out.append(f"<p><b>Routed.</b> The run's router answered {fg['routed']} of the {fg['questions']} questions "
                       "with the untouched base, the adapter switched off, as predict, chat and the server answer "
                       "requests unlike the training inputs; the figures above count those answers. The adapter "
                       f"alone, as a merged or GGUF export answers every request, keeps {alone['kept']} of the "
                       f"{fg['base_correct']} ({alone['kept_share']:.0f}%, 95% interval {alone['kept_ci'][0]:.0f}–"
                       f"{alone['kept_ci'][1]:.0f}).</p>")
        if (floor := fg.get("floor") or {}).get("kept_share") is not None:
            f_low, f_high = floor["kept_ci"]
            out.append(f"<p>For scale: the untuned base itself keeps {floor['kept']} of its {fg['base_correct']} right "
                       f"answers ({floor['kept_share']:.0f}%, {f_low:.0f}–{f_high:.0f}) when it is only given the system "
                       f"prompt “{h(floor['system'])}”, and gets {floor['tuned_correct']} right in all. A small base's "
                       "right answers are often fragile, so a kept share near this one is the measure's noise, not "
                       "forgetting.</p>")
        out.extend(f"<p class='card'><b>{h(e['prompt'])}</b> (expected {h(e['expected'])})<br>base: {h(e['base'])}"
                   f"<br>tuned: {h(e['tuned'])}</p>" for e in fg["examples"][:3])
        if (asked := fg.get("as_asked")) and asked.get("kept_share") is not None:
            a_low, a_high = asked["kept_ci"]
            floor = asked["floor"]
            out.append(f"<p><b>Asked as it will be used.</b> predict, chat and the server put the run's system prompt "
                       f"“{h(asked['system'])}” first on every request that brings none of its own. Asked that way, "
                       f"the tuned model still answers <b>{asked['kept']} of the {asked['base_correct']} ({asked['kept_share']:.0f}%, "
                       f"95% interval {a_low:.0f}–{a_high:.0f})</b>; the untuned base given the same prompt keeps "
                       f"{floor['kept']} ({floor['kept_share']:.0f}%, {floor['kept_ci'][0]:.0f}–{floor['kept_ci'][1]:.0f}), "
                       "this way's noise floor. A request with its own system message replaces the run's."
                       + (f" {asked['task_form']} of those answers came in the task's form: a prompt that turns the "
                          "task on may rightly get the task's answer to any request." if asked.get("task_form") else "")
                       + "</p>")
            out.extend(f"<p class='card'><b>{h(e['prompt'])}</b> (expected {h(e['expected'])})<br>base: {h(e['base'])}"
                       f"<br>tuned, with the run's system prompt: {h(e['tuned'])}</p>" for e in asked["examples"][:2])
        if (form := fg.get("task_form")) is not None:
            out.append(f"<p>Answered in the task's form (a {form['form']}): <b>{form['tuned']} of {form['questions']}"
                       f"</b> general questions (the base: {form['base']}). A model that answers requests that are "
                       "not the task in the task's form has learned that every request is the task's.</p>")
            out.extend(f"<p class='card'><b>{h(e['prompt'])}</b><br>tuned: {h(e['tuned'])}</p>"
                       for e in form["examples"][:2])
    return out


def write(path: Path, title: str, comparison: dict | None, history: list[dict], check: dict | None = None,
          config: dict | None = None, lineage: dict | None = None) -> Path:
    atomic.write_text(Path(path), render(title, comparison, history, check, config, lineage))
    return Path(path)
