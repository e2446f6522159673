"""Write examples/handbook/: a made-up product handbook and FAQ pairs about it (seeded, reproducible).

    python examples/make_handbook.py

Orbitask, Fernhill Software and every number here are invented, so no base model can know them.
Each fact is stated in the handbook twice (in its chapter and in the quick reference at the end).
Half of the facts also get FAQ pairs (faq.jsonl); the other half are asked about only in the
held-out file (faq.heldout.jsonl), in words of their own, so a model can answer those only if it
learned them from the handbook. Held-out rows carry `fact`, the words a right answer must contain.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from handbook_facts import CHAPTERS
from handbook_procedures import INTRODUCTION, PROCEDURES

HERE = Path(__file__).parent / "handbook"
SYSTEM = "You are the Orbitask help assistant. Answer in one or two sentences."


def facts() -> list[tuple[str, tuple]]:
    return [(chapter, fact) for chapter, (_, items) in CHAPTERS.items() for fact in items]


def handbook_pages() -> dict[str, str]:
    """One Markdown file per chapter, and a quick reference that restates every fact in short form."""
    pages = {"00-about.md": INTRODUCTION}
    for number, (chapter, (opening, items)) in enumerate(CHAPTERS.items(), start=1):
        body = [f"# {number}. {chapter}", "", *[p + "\n" for p in opening]]
        for k in range(0, len(items), 2):  # two facts a paragraph, as prose
            body.append(" ".join(item[0] for item in items[k : k + 2]) + "\n")
        for title, steps in PROCEDURES[chapter]:
            body += [f"## {title}", "", *[f"{k}. {step}" for k, step in enumerate(steps, start=1)], ""]
        pages[f"{number:02d}-{chapter.lower().replace(' ', '-')}.md"] = "\n".join(body)
    reference = ["# Quick reference", "", "The figures from every chapter, in one place.", ""]
    for chapter, (_, items) in CHAPTERS.items():
        reference += [f"## {chapter}", "", *[f"- {item[1]}" for item in items], ""]
    pages[f"{len(CHAPTERS) + 1:02d}-quick-reference.md"] = "\n".join(reference)
    return pages


def row(question: str, answer: str) -> dict:
    return {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question},
                         {"role": "assistant", "content": answer}]}


def main() -> None:
    rng = random.Random(20261202)
    every = facts()
    order = list(range(len(every)))
    rng.shuffle(order)
    heldout_ids = set(order[: len(order) // 2])
    faq, heldout = [], []
    for i, (chapter, (_, _, questions, answer, key)) in enumerate(every):
        if i in heldout_ids:
            heldout.append({**row(questions[0], answer), "fact": key, "chapter": chapter})
        else:
            faq += [row(q, answer) for q in questions]
    rng.shuffle(faq)
    (HERE / "pages").mkdir(parents=True, exist_ok=True)
    for stale in (HERE / "pages").glob("*.md"):  # chapter numbers shift when chapters are added
        stale.unlink()
    for name, text in handbook_pages().items():
        (HERE / "pages" / name).write_text(text, encoding="utf-8")
    for name, rows in (("faq.jsonl", faq), ("faq.heldout.jsonl", heldout)):
        with open(HERE / name, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    words = sum(len(t.split()) for t in handbook_pages().values())
    print(f"{len(every)} facts; handbook {words} words in {len(handbook_pages())} files; {len(faq)} FAQ rows; "
          f"{len(heldout)} held-out questions")


if __name__ == "__main__":
    main()
