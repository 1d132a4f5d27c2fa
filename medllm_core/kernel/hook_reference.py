"""Generate ``docs/hooks.md`` from the code, and check that the committed file still matches.

The reference is built from ``medllm_core.kernel.hookspecs`` (every hook, its signature and
docstring) and from the stage contract classes a hook implementation touches
(``StageSpec``, ``StageResult``, ``StageKind``, ``StageContext``, the event types).
Tests call ``check_reference``; after changing any of those, regenerate with::

    python -m medllm_core.kernel.hook_reference --write
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import ModuleType
from typing import Any

from medllm_core.kernel import events, hookspecs
from medllm_core.kernel.context import StageContext
from medllm_core.kernel.stages import StageKind, StageResult, StageSpec, StageStatus

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "hooks.md"
REGENERATE = "python -m medllm_core.kernel.hook_reference --write"
HOOK_HEADING = re.compile(r"^### hook `(?P<name>\w+)`$", re.MULTILINE)
SIGNATURE_LINE = re.compile(r"^def (?P<signature>(?P<name>\w+)\(.*): \.\.\.$", re.MULTILINE)


# One line for StageContext members whose code carries no docstring (a docstring wins).
CONTEXT_NOTES = {
    "name": "this stage's name",
    "profile": "the effective profile (file < environment < command line)",
    "settings": "this stage's settings dataclass instance (`[stages.<name>]`), or None",
    "run": "run id, output root, run folder; `reports_dir`, `checkpoints_dir`, `events_path`",
    "hardware": "the probed device (`backend` is 'cuda' or 'cpu')",
    "precision": "the precision decision: `dtype` bf16 / fp16 / fp32 and why",
    "gate": "the VRAM gate verdict; `training_allowed` says whether training may run",
    "results": "results of the stages that already ran, by stage name",
    "events": "the event log (prefer the helpers below)",
    "stage_decisions": "this stage's decisions so far, as dicts (for a metrics file)",
    "log": "a log line (level info / warning / error) in the events and the display",
    "check": "a named pass/fail check with detail (failed ones are shown)",
    "progress": "step / total for the progress bar",
    "loss": "one loss point",
    "memory": "memory use of a device",
    "stop_requested": "true once the user asked the run to stop (STOP file); end early and cleanly",
}


@dataclass(frozen=True)
class HookDoc:
    name: str
    signature: str  # "register_stages(register: Callable[[StageSpec], None]) -> None"
    doc: str
    options: dict[str, Any]  # pluggy hookspec options (firstresult, historic, ...) that are set


def _annotation(value: Any) -> str:
    # hookspecs uses `from __future__ import annotations`: annotations are already source text.
    if value is inspect.Parameter.empty or value is inspect.Signature.empty:
        return ""
    return value if isinstance(value, str) else inspect.formatannotation(value)


def render_signature(func: Callable[..., Any]) -> str:
    sig = inspect.signature(func)
    params = []
    star_written = False
    for param in sig.parameters.values():
        if param.kind == param.KEYWORD_ONLY and not star_written:
            params.append("*")
        star_written = star_written or param.kind in (param.KEYWORD_ONLY, param.VAR_POSITIONAL)
        prefix = {param.VAR_POSITIONAL: "*", param.VAR_KEYWORD: "**"}.get(param.kind, "")
        text = prefix + param.name
        annotation = _annotation(param.annotation)
        if annotation:
            text += f": {annotation}"
        if param.default is not inspect.Parameter.empty:
            text += f" = {param.default!r}"
        params.append(text)
    returns = _annotation(sig.return_annotation)
    return f"{func.__name__}({', '.join(params)})" + (f" -> {returns}" if returns else "")


def hook_docs(module: ModuleType = hookspecs) -> list[HookDoc]:
    """Every hook specification in ``module``, in source order."""
    marker = f"{hookspecs.PROJECT_NAME}_spec"  # the attribute pluggy's HookspecMarker sets
    found = []
    for name, func in vars(module).items():
        options = getattr(func, marker, None)
        if options is None or not callable(func):
            continue
        set_options = {k: v for k, v in dict(options).items() if v not in (False, None)}
        found.append((func.__code__.co_firstlineno, HookDoc(name, render_signature(func),
                                                               inspect.getdoc(func) or "", set_options)))
    return [doc for _, doc in sorted(found, key=lambda item: item[0])]


def _field_type(field: dataclasses.Field[Any]) -> str:
    return field.type if isinstance(field.type, str) else inspect.formatannotation(field.type)


def _field_default(field: dataclasses.Field[Any]) -> str:
    if isinstance(field.default, Enum):
        return f"{type(field.default).__name__}.{field.default.name}"
    if field.default is not dataclasses.MISSING:
        return repr(field.default)
    if field.default_factory is not dataclasses.MISSING:
        return f"{field.default_factory.__name__}()"
    return "required"


def _members(cls: type) -> list[tuple[str, str, str]]:
    """(kind, signature, first doc line) of the public properties and methods of ``cls``."""
    rows = []
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, property) and value.fget is not None:
            returns = _annotation(inspect.signature(value.fget).return_annotation)
            rows.append(("property", f"{name} -> {returns}" if returns else name,
                         (inspect.getdoc(value) or CONTEXT_NOTES.get(name, "")).split("\n")[0]))
        elif inspect.isfunction(value):
            rows.append(("method", render_signature(value).replace("self, ", "").replace("(self)", "()"),
                         (inspect.getdoc(value) or CONTEXT_NOTES.get(name, "")).split("\n")[0]))
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_reference(module: ModuleType = hookspecs) -> str:
    lines = [
        "# Hook and stage-contract reference",
        "",
        f"<!-- Generated from the code by `{REGENERATE}`; do not edit by hand. -->",
        "<!-- tests/test_plugin_hook_reference.py fails when this file and the code disagree. -->",
        "",
        "The tutorial is in [plugins.md](plugins.md). Entry-point group: "
        f"`{hookspecs.ENTRY_POINT_GROUP}`; the marker and every contract name come from the public API: "
        "`from medllm_core.api import hookimpl`.",
        "",
        "## Hooks",
        "",
    ]
    for hook in hook_docs(module):
        lines += [f"### hook `{hook.name}`", "", "```python", "@hookimpl", f"def {hook.signature}: ...", "```", ""]
        if hook.options:
            lines += ["Options: " + ", ".join(f"`{k}={v!r}`" for k, v in sorted(hook.options.items())), ""]
        lines += [hook.doc or "(undocumented)", ""]
    lines += ["## `StageSpec` (medllm_core.kernel.stages)", "", inspect.getdoc(StageSpec) or "", "",
              "| field | type | default |", "|---|---|---|"]
    lines += [f"| `{f.name}` | `{_cell(_field_type(f))}` | `{_cell(_field_default(f))}` |"
              for f in dataclasses.fields(StageSpec)]
    lines += ["", "## `StageResult` (medllm_core.kernel.stages)", "", "| field | type | default |", "|---|---|---|"]
    lines += [f"| `{f.name}` | `{_cell(_field_type(f))}` | `{_cell(_field_default(f))}` |"
              for f in dataclasses.fields(StageResult)]
    lines += ["", "Constructors: " + ", ".join(
        f"`StageResult.{render_signature(getattr(StageResult, n).__func__).replace('cls, ', '')}`"
        for n in ("trained", "done", "skipped", "failed", "stopped")), ""]
    lines += ["`status` is one of: " + ", ".join(f"`{status.value}`" for status in StageStatus), ""]
    lines += ["## `StageKind` (run phases, in order)", ""]
    lines += [f"- `{kind.value}`" for kind in StageKind]
    lines += ["", "## `StageContext` (medllm_core.kernel.context)", "", "| kind | member | what |", "|---|---|---|"]
    lines += [f"| {kind} | `{_cell(sig)}` | {_cell(doc)} |" for kind, sig, doc in _members(StageContext)]
    lines += ["", "## Event types (`type` field of events.jsonl)", ""]
    lines += [f"- `{name}`" for name in events.EVENT_TYPES]
    lines.append("")
    return "\n".join(lines)


def check_reference(text: str, module: ModuleType = hookspecs) -> list[str]:
    """Problems that make ``text`` (the committed docs/hooks.md) wrong for ``module``."""
    problems = []
    documented = {m["name"] for m in HOOK_HEADING.finditer(text)}
    signatures = {m["name"]: m["signature"] for m in SIGNATURE_LINE.finditer(text)}
    hooks = hook_docs(module)
    for hook in hooks:
        if hook.name not in documented:
            problems.append(f"hook '{hook.name}' is not documented")
        elif signatures.get(hook.name) != hook.signature:
            problems.append(f"hook '{hook.name}': documented signature {signatures.get(hook.name)!r} "
                            f"differs from the hookspec {hook.signature!r}")
    for name in sorted(documented - {h.name for h in hooks}):
        problems.append(f"hook '{name}' is documented but no longer exists")
    if not problems and text != render_reference(module):
        problems.append("the stage contract (StageSpec/StageResult/StageContext/events) changed")
    return [f"{p}: regenerate docs/hooks.md with `{REGENERATE}`" for p in problems]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medllm_core.kernel.hook_reference", description=__doc__)
    parser.add_argument("--write", action="store_true", help=f"write {DOC_PATH}")
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is out of date")
    args = parser.parse_args(argv)
    if args.write:
        DOC_PATH.parent.mkdir(parents=True, exist_ok=True)
        DOC_PATH.write_text(render_reference(), encoding="utf-8")
        print(f"wrote {DOC_PATH}")
        return 0
    if args.check:
        problems = check_reference(DOC_PATH.read_text(encoding="utf-8") if DOC_PATH.exists() else "")
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    print(render_reference(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
