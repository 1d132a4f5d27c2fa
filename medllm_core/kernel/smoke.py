"""Smoke-test runs: why a run's numbers must not be cited, said once for every report.

A run on the tiny embedded model (or on any model the profile marks
``model.smoke_test = true``) exercises the pipeline; its accuracies say nothing
about a model. Every report page opens with the same one-line notice, built
here so the wording (and its reasons) lives in one place.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medllm_core.kernel.profile import Profile

BUNDLED_SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
EVAL_DATA_PREFIX = "eval"  # [data.eval_*] sections hold evaluation items; the others are training data
MCQ_DATA_KEY = "eval_mcq"


def smoke_reason(profile: Profile) -> str | None:
    """Why this run is a smoke test, or None for a run on a real model."""
    model = profile.model
    if not model.is_smoke_test:
        return None
    if model.smoke_test is None:
        reason = f"the embedded tiny model `{model.name_or_path}` (tier tiny) was evaluated"
    else:
        reason = f"the profile marks `{model.name_or_path}` as a smoke test (model.smoke_test = true)"
    overlap = sample_overlap(profile)
    if overlap:
        seen, total = overlap
        reason += (f"; {seen} of the {total} bundled sample multiple-choice questions also appear in the bundled "
                   "training data, so a gain after training is expected from memorisation")
    return reason


def smoke_notice(reason: str | None) -> str | None:
    """The line every report opens with (None when there is nothing to warn about)."""
    if not reason:
        return None
    return f"> **Smoke test** — {reason}: these numbers test the pipeline, not a model; do not cite them."


def under_title(markdown: str, notice: str | None) -> str:
    """``markdown`` with ``notice`` right under its first ``# `` title (or on top when it has none)."""
    if not notice:
        return markdown
    lines = markdown.split("\n")
    at = next((i + 1 for i, line in enumerate(lines) if line.startswith("# ")), 0)
    block = ["", notice] if at else [notice, ""]
    if at < len(lines) and lines[at].strip():
        block.append("")
    return "\n".join(lines[:at] + block + lines[at:])


# --- memorisation: the bundled evaluation sample against the bundled training sample ---------

def _bundled(path: Path) -> bool:
    return path.resolve().is_relative_to(BUNDLED_SAMPLES.resolve())


def _records(path: Path) -> Iterator[Any]:
    """The JSON records of a .json (array) or .jsonl file; unreadable lines are left out."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return
        yield from data if isinstance(data, list) else [data]
        return
    for line in text.splitlines():
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            continue


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _squash(text: str) -> str:
    return "".join(text.split())


def sample_overlap(profile: Profile) -> tuple[int, int] | None:
    """(questions also in training data, questions) when both are the bundled samples; else None.

    Only the bundled files are read: they are small, and a user's own data
    would need a real de-duplication, not a substring check.
    """
    section = profile.data.get(MCQ_DATA_KEY)
    if section is None or not section.path:
        return None
    mcq_path = profile.resolve_path(section.path)
    training = [profile.resolve_path(s.path) for key, s in profile.data.items()
                if s.path and not key.startswith(EVAL_DATA_PREFIX)]
    training = [p for p in training if _bundled(p)]
    if not _bundled(mcq_path) or not training:
        return None
    corpus = "\n".join(_squash(s) for path in training for record in _records(path) for s in _strings(record))
    questions = [q for record in _records(mcq_path) if isinstance(record, dict)
                 for key, q in record.items() if key.lower() == "question" and isinstance(q, str) and q.strip()]
    seen = sum(1 for q in questions if _squash(q) in corpus)
    return (seen, len(questions)) if seen else None
