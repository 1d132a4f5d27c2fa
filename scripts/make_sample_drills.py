"""Write the CPU default's SFT sample: the hand-written Q&A rows plus one exam drill per sample MCQ.

    python scripts/make_sample_drills.py           # (re)write data/samples/sft_medical_drills_zh_en.jsonl
    python scripts/make_sample_drills.py --check   # exit 1 if the committed file is out of date

The output is derived, never edited by hand: the rows of ``sft_medical_zh_en.jsonl``
verbatim, then one drill for each item of ``eval_mcq_zh_en.jsonl``. A drill's user turn is
exactly the prompt the evaluator sends for that item (``format_prompt``), and its assistant
turn is the bare answer (``C``, ``ACD``): what the extraction rules read first (rule
``letters_only``) and exactly the candidate the loglik protocol scores.
Re-run it whenever the MCQ file or the prompt template changes.

The drills make the tiny model memorise the sample MCQs on purpose: the CPU smoke run then
shows a measurable SFT gain over the random base model, which exercises the whole
measurement chain (extraction, accuracy, McNemar). It says nothing about medical competence.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# This checkout's package, not whichever medllm the interpreter has installed.
sys.path.insert(0, str(REPO))

from medllm_core.library.evaluation.mcq import McqItem, format_prompt, load_mcq_file  # noqa: E402

SAMPLES = REPO / "data" / "samples"
QA_FILE = SAMPLES / "sft_medical_zh_en.jsonl"
MCQ_FILE = SAMPLES / "eval_mcq_zh_en.jsonl"
OUTPUT = SAMPLES / "sft_medical_drills_zh_en.jsonl"
# Each drill appears this many times (consecutive passes over the MCQ file), so that the
# 3-token answers are not drowned out by the long Q&A answers in a short CPU run.
REPEATS = 4


def drill_row(item: McqItem) -> dict:
    """One conversation: the evaluator's prompt for ``item`` -> its answer letter(s)."""
    letters = "".join(sorted(item.answer))
    return {"messages": [{"role": "user", "content": format_prompt(item)},
                         {"role": "assistant", "content": letters}]}


def drill_rows(mcq_file: Path = MCQ_FILE) -> list[dict]:
    items, _problems = load_mcq_file(str(mcq_file))
    return [drill_row(item) for item in items]


def render(qa_file: Path = QA_FILE, mcq_file: Path = MCQ_FILE) -> str:
    """The output file's exact text: the Q&A lines verbatim, then the drills."""
    qa_lines = [line for line in qa_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    drills = [json.dumps(row, ensure_ascii=False) for row in drill_rows(mcq_file)] * REPEATS
    return "\n".join(qa_lines + drills) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only verify that the output file is up to date")
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"default: {OUTPUT.relative_to(REPO)}")
    args = parser.parse_args(argv)
    expected = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.is_file() else None
        if current != expected:
            print(f"{args.output} is out of date: run python scripts/make_sample_drills.py", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date")
        return 0
    args.output.write_text(expected, encoding="utf-8")
    print(f"wrote {args.output} ({expected.count(chr(10))} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
