"""Read ``eval_results.json`` the same way in every report, whatever its age.

Newer files carry one block per scoring protocol (``protocols``), the item
counts before and after dropping unusable items, and the chance accuracy.
Older files have only the top-level numbers: they were produced by greedy
generation, with nothing dropped. Every report asks here, so a missing key gets
the same fallback everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

DEFAULT_PROTOCOL = "generate"
NOT_RECORDED = "not recorded"
DEFAULT_DESCRIPTIONS = {
    "generate": "greedy generation with each model's chat template, then the rule cascade",
    "loglik": "log-likelihood of each option letter after the prompt",
}


@dataclass(frozen=True)
class Protocol:
    name: str
    description: str
    prompt_template: str
    shots: int | None
    max_new_tokens: int | None
    variants: dict[str, dict[str, Any]]
    comparisons_vs_base: list[dict[str, Any]] = field(default_factory=list)
    comparisons_vs_baseline: list[dict[str, Any]] = field(default_factory=list)
    chance_accuracy: float | None = None

    @property
    def setting(self) -> str:
        """One line: protocol, prompt template version and shots (said next to every accuracy table)."""
        shots = NOT_RECORDED if self.shots is None else f"{self.shots}-shot"
        return f"protocol `{self.name}` ({self.description}); prompt template `{self.prompt_template}`; {shots}"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _protocol(name: str, block: dict[str, Any], fallback: dict[str, Any]) -> Protocol:
    """One protocol block; keys it lacks come from ``fallback`` (the top level, for the primary one)."""
    def get(key: str, default: Any = None) -> Any:
        return block[key] if key in block else fallback.get(key, default)

    shots = get("shots")
    decoding = fallback.get("decoding") or {}
    tokens = block.get("max_new_tokens", decoding.get("max_new_tokens_mcq") if name == DEFAULT_PROTOCOL else None)
    return Protocol(
        name=name,
        description=str(get("description") or DEFAULT_DESCRIPTIONS.get(name, NOT_RECORDED)),
        prompt_template=str(get("prompt_template") or NOT_RECORDED),
        shots=shots if isinstance(shots, int) else None,
        max_new_tokens=tokens if isinstance(tokens, int) else None,
        variants=dict(get("variants") or {}),
        comparisons_vs_base=list(get("comparisons_vs_base") or []),
        comparisons_vs_baseline=list(get("comparisons_vs_baseline") or []),
        chance_accuracy=_number(get("chance_accuracy")),
    )


def primary_name(results: dict[str, Any]) -> str:
    return str(results.get("protocol") or DEFAULT_PROTOCOL)


def protocols(results: dict[str, Any] | None) -> list[Protocol]:
    """Every protocol in the file, the primary one first (an older file: its one greedy-generation protocol)."""
    if not results:
        return []
    primary = primary_name(results)
    blocks = results.get("protocols") or {}
    # The primary protocol's numbers are also the top-level keys: those fill what its block leaves out.
    found = [_protocol(primary, blocks.get(primary) or {}, results)]
    found += [_protocol(name, block or {}, {}) for name, block in blocks.items() if name != primary]
    return found


def primary(results: dict[str, Any] | None) -> Protocol | None:
    found = protocols(results)
    return found[0] if found else None


@dataclass(frozen=True)
class ItemCounts:
    evaluated: int
    loaded: int
    in_file: int
    dropped: int
    by_reason: dict[str, int]
    examples: list[dict[str, Any]]

    @property
    def dropped_text(self) -> str:
        if not self.dropped:
            return "none dropped"
        reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(self.by_reason.items()))
        return f"{self.dropped} dropped" + (f" ({reasons})" if reasons else "")

    @property
    def text(self) -> str:
        """'40 of 42 multiple-choice items evaluated; 2 dropped (...)' (one phrase for every report)."""
        head = f"{self.evaluated} multiple-choice items evaluated"
        if self.in_file != self.evaluated:
            head = f"{self.evaluated} of {self.in_file} multiple-choice items evaluated"
        capped = self.loaded - self.evaluated
        capped_text = f"; {capped} left out by max_items" if capped > 0 else ""
        return f"{head}; {self.dropped_text}{capped_text}"

    def to_dict(self) -> dict[str, Any]:
        return {"items_evaluated": self.evaluated, "items_loaded": self.loaded, "items_in_file": self.in_file,
                "dropped": {"count": self.dropped, "by_reason": self.by_reason}}


def item_counts(results: dict[str, Any] | None) -> ItemCounts:
    results = results or {}
    evaluated = int(results.get("items") or 0)
    dropped_block = results.get("dropped") or {}
    dropped = int(dropped_block.get("count") or 0)
    loaded = int(results.get("items_loaded") or evaluated)
    in_file = int(results.get("items_in_file") or loaded + dropped)
    return ItemCounts(evaluated, loaded, in_file, dropped, dict(dropped_block.get("by_reason") or {}),
                      list(dropped_block.get("examples") or []))


def finite(value: Any) -> float | None:
    """A number a report can print and compare (None for missing or NaN: a variant with no items)."""
    number = _number(value)
    return number if number is not None and math.isfinite(number) else None
