"""Registers the ``perplexity`` evaluation stage (import-light: torch only when it runs)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medllm_core.api import (
    ArtifactKind,
    ConfigError,
    Location,
    SchemaError,
    StageContext,
    StageKind,
    StageResult,
    StageSpec,
    consumes,
    hookimpl,
)

BUNDLED_HELDOUT = Path(__file__).with_name("heldout_medical.jsonl")


@dataclass
class PerplexitySettings:
    """``[stages.perplexity]`` options."""

    heldout_path: str = ""  # JSONL of {"messages": [...]}; relative to the profile; "" = the bundled set
    max_rows: int = 64  # evaluate at most this many conversations (from the top of the file)
    max_length: int = 512  # tokens per conversation; longer ones are cut from the end

    def validate(self, prefix: str) -> None:
        # Called by the profile loader: a bad value is reported with its key before anything runs.
        if self.max_rows <= 0:
            raise SchemaError(f"{prefix}.max_rows", "must be > 0")
        if self.max_length < 16:
            raise SchemaError(f"{prefix}.max_length", "must be >= 16")


def heldout_file(ctx: StageContext) -> Path:
    path = ctx.settings.heldout_path
    return ctx.profile.resolve_path(path) if path else BUNDLED_HELDOUT


def load_heldout(ctx: StageContext) -> list[list[dict[str, str]]]:
    """Conversations whose last message is the assistant answer to score; errors name file and line."""
    path = heldout_file(ctx)
    key = f"stages.{ctx.name}.heldout_path"
    if not path.is_file():
        raise ConfigError("held-out file not found", Location(file=str(path), key=key))
    conversations: list[list[dict[str, str]]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            messages: Any = json.loads(line)["messages"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ConfigError(f"expected a JSON object with 'messages' ({exc})",
                              Location(file=str(path), line=number)) from None
        if not isinstance(messages, list) or len(messages) < 2 or messages[-1].get("role") != "assistant":
            raise ConfigError("'messages' must end with an assistant turn after at least one user turn",
                              Location(file=str(path), line=number))
        conversations.append(messages)
    if not conversations:
        raise ConfigError("held-out file has no conversations", Location(file=str(path), key=key))
    return conversations[: ctx.settings.max_rows]


def _run(ctx: StageContext) -> StageResult:
    from medllm_perplexity.evaluate import run_perplexity

    return run_perplexity(ctx, load_heldout(ctx))


@hookimpl
def register_stages(register: Callable[[StageSpec], None]) -> None:
    register(StageSpec(
        name="perplexity",
        run=_run,
        kind=StageKind.EVALUATION,  # the evaluation phase: after every training stage
        requires=("sft",),  # the base model is read from the SFT adapter's config
        consumes=consumes(ArtifactKind.ADAPTER),  # every trained adapter: a retrained one reruns this stage
        produces=("perplexity",),
        settings=PerplexitySettings,
        description="Held-out perplexity of the base model and every trained adapter (plugin example)",
        describe_plan=lambda ctx: f"score {heldout_file(ctx).name} (≤ {ctx.settings.max_rows} rows)",
        check_inputs=load_heldout,
    ))
