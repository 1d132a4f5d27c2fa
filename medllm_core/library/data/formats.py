"""The table of input formats: which stage each feeds and how it is recognised.

Detection looks only at a row's keys, so it is cheap and predictable; anything
subtler (renamed columns, custom role tags) goes through ``dataset_info.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from medllm_core.library.data import kto, preference, sft
from medllm_core.library.data.conversation import Mapping
from medllm_core.library.data.model import RowIssues

Normaliser = Callable[[dict, Mapping, RowIssues], dict | None]


@dataclass(frozen=True)
class Format:
    name: str
    stage: str
    all_of: tuple[str, ...]  # keys that must all be present to detect this format
    any_of: tuple[str, ...]  # at least one of these too (empty: no condition)
    normalise: Normaliser

    def matches(self, keys: set[str]) -> bool:
        return set(self.all_of) <= keys and (not self.any_of or bool(keys & set(self.any_of)))

    def describe(self) -> str:
        keys = list(self.all_of)
        if self.any_of:
            keys.append("|".join(self.any_of))
        return f"{self.name} ({', '.join(keys)})"


_LABEL = kto.LABEL_KEYS

# Order matters: within a stage the first match wins, so the more specific
# formats (more keys) come first.
FORMATS: tuple[Format, ...] = (
    Format("preference_sharegpt", "preference", ("chosen", "rejected"),
           ("conversations", "messages"), preference.normalise_preference_sharegpt),
    Format("preference_alpaca", "preference", ("instruction", "chosen", "rejected"), (),
           preference.normalise_preference_alpaca),
    Format("preference", "preference", ("chosen", "rejected"), (),
           preference.normalise_preference),
    Format("kto", "kto", ("prompt", "completion"), _LABEL, kto.normalise_kto),
    Format("kto_messages", "kto", ("messages",), _LABEL, kto.normalise_kto_messages),
    Format("kto_sharegpt", "kto", ("conversations",), _LABEL, kto.normalise_kto_sharegpt),
    Format("kto_alpaca", "kto", ("instruction", "output"), _LABEL, kto.normalise_kto_alpaca),
    Format("messages", "sft", ("messages",), (), sft.normalise_messages),
    Format("sharegpt", "sft", ("conversations",), (), sft.normalise_sharegpt),
    Format("alpaca", "sft", ("instruction", "output"), (), sft.normalise_alpaca),
    Format("prompt_completion", "sft", ("prompt", "completion"), (),
           sft.normalise_prompt_completion),
)
BY_NAME: dict[str, Format] = {f.name: f for f in FORMATS}

# Short names a profile may use whatever the stage ("sharegpt" for DPO data).
_STAGE_ALIASES: dict[tuple[str, str], str] = {
    ("preference", "sharegpt"): "preference_sharegpt",
    ("preference", "messages"): "preference",
    ("preference", "alpaca"): "preference_alpaca",
    ("kto", "sharegpt"): "kto_sharegpt",
    ("kto", "messages"): "kto_messages",
    ("kto", "alpaca"): "kto_alpaca",
    ("kto", "preference"): "preference",
}
_ALIASES = {"openai": "messages", "chatml": "messages", "conversational": "messages"}


def accepted_stages(stage: str) -> tuple[str, ...]:
    """Stages whose formats a stage can load: KTO also takes preference pairs."""
    return (stage, "preference") if stage == "kto" else (stage,)


def formats_for(stage: str) -> list[Format]:
    """Formats a stage loads, its own first (so KTO rows never detect as pairs)."""
    order = accepted_stages(stage)
    chosen = [f for f in FORMATS if f.stage in order]
    return sorted(chosen, key=lambda f: order.index(f.stage))


def supported_text(stage: str) -> str:
    return "; ".join(f.describe() for f in formats_for(stage))


def resolve(name: str, stage: str) -> Format | None:
    """Format by (alias) name for ``stage``; ``None`` if unknown."""
    name = name.strip().lower()
    name = _STAGE_ALIASES.get((stage, name), _ALIASES.get(name, name))
    return BY_NAME.get(name)


def detect(keys: Iterable[str], stage: str) -> Format | None:
    """First format of ``stage`` (or any stage, for a clear mismatch message) matching."""
    keyset = set(keys)
    for fmt in formats_for(stage):
        if fmt.matches(keyset):
            return fmt
    return next((f for f in FORMATS if f.matches(keyset)), None)
