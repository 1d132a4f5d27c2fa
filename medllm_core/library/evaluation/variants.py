"""Which models are evaluated: the base model and every trained variant whose adapter exists."""

from __future__ import annotations

from dataclasses import dataclass

from medllm_core.kernel.artifacts import ArtifactKind
from medllm_core.kernel.context import StageContext
from medllm_core.kernel.errors import ConfigError
from medllm_core.kernel.profile import profile_location
from medllm_core.kernel.schema import closest
from medllm_core.kernel.stages import StageStatus

BASE_VARIANT = "base"


@dataclass(frozen=True)
class Variant:
    name: str  # "base", "sft", "dpo", ...
    adapter: str | None  # LoRA checkpoint folder; None for the base model


def adapter_stages(ctx: StageContext) -> list[str]:
    """Every planned stage that produces an adapter (enabled or not): the names a variant may use."""
    return [p.spec.name for p in ctx.plan if ArtifactKind.ADAPTER in p.spec.produces]


def check_variant_names(ctx: StageContext, wanted: list[str]) -> None:
    """``[stages.eval] variants``: each name is the base model or a stage that produces an adapter."""
    known = [BASE_VARIANT, *adapter_stages(ctx)]
    for index, name in enumerate(wanted):
        if name not in known:
            guess = closest(name, known)
            raise ConfigError(
                f"eval variant '{name}' names no stage that produces an adapter in this run",
                profile_location(ctx.profile, f"stages.{ctx.name}.variants[{index}]"),
                hint=(f"did you mean '{guess}'? " if guess else "") + f"known variants: {', '.join(known)} "
                     "(a plugin's training stage is a variant only when its plugin is installed and loaded)")


def variants_to_evaluate(ctx: StageContext, wanted: list[str]) -> tuple[list[Variant], list[str]]:
    """(variants, notes about trained stages that cannot be evaluated)."""
    found = [Variant(BASE_VARIANT, None)]
    notes: list[str] = []
    for planned in ctx.plan:
        if ArtifactKind.ADAPTER not in planned.spec.produces:
            continue
        if not planned.enabled:
            if planned.spec.name in wanted:
                notes.append(f"{planned.spec.name}: not evaluated (disabled in the profile)")
            continue
        result = ctx.results.get(planned.spec.name)
        if result is not None and result.status == StageStatus.TRAINED and result.checkpoint_path:
            found.append(Variant(planned.spec.name, result.checkpoint_path))
        else:
            status = "did not run" if result is None else f"{result.status}"
            notes.append(f"{planned.spec.name}: not evaluated ({status})")
    if wanted:
        found = [v for v in found if v.name in wanted]
    return found, notes
