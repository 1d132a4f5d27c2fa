"""The stage graph: edges from declared artifacts, an order, and queries over it.

Each stage's ``consumes`` entries are matched against the ``produces`` of the
other planned stages; together with the named ``requires``/``after`` edges they
give every stage its upstream. The order is topological; among stages that are
ready at the same time, the earlier phase (preflight, training, evaluation,
judge, custom, check, report) and then registration order go first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from medllm_core.kernel.artifacts import ArtifactKind, ArtifactRef
from medllm_core.kernel.context import PlannedStage
from medllm_core.kernel.errors import ConfigError
from medllm_core.kernel.schema import build
from medllm_core.kernel.stages import StageKind, StageSpec

if TYPE_CHECKING:
    from medllm_core.kernel.plugin_manager import StageRegistry
    from medllm_core.kernel.profile import Profile


def _inputs(spec: StageSpec, specs: dict[str, StageSpec], origin: dict[str, str]) -> list[ArtifactRef]:
    refs: list[ArtifactRef] = []
    for need in spec.consumes:
        producers = [s for s in specs.values() if s.name != spec.name and need.kind in s.produces
                     and need.matches(s.name, need.kind)]
        if need.required and not producers:
            raise ConfigError(f"stage '{spec.name}' (plugin '{origin.get(spec.name, '?')}') consumes "
                              f"{need.describe()}, but no loaded stage produces it")
        refs.extend(ArtifactRef(need.kind, s.name) for s in producers)
    return list(dict.fromkeys(refs))


def _upstream(spec: StageSpec, inputs: list[ArtifactRef], specs: dict[str, StageSpec]) -> tuple[str, ...]:
    named = [dep for dep in (*spec.requires, *spec.after) if dep in specs]
    return tuple(dict.fromkeys([*(ref.producer for ref in inputs), *named]))


def _order(specs: dict[str, StageSpec], upstream: dict[str, tuple[str, ...]]) -> list[str]:
    index = {name: i for i, name in enumerate(specs)}
    remaining = set(specs)
    ordered: list[str] = []
    while remaining:
        lowest_phase = min(specs[n].phase for n in remaining)
        ready = [n for n in remaining if not any(dep in remaining for dep in upstream[n])]
        # A stage of a later phase waits for every earlier-phase stage unless the graph says otherwise.
        ready_in_phase = [n for n in ready if specs[n].phase == lowest_phase] or ready
        if not ready_in_phase:
            raise ConfigError(f"stage dependencies form a cycle among: {', '.join(sorted(remaining))}")
        chosen = min(ready_in_phase, key=lambda n: (specs[n].phase, index[n]))
        ordered.append(chosen)
        remaining.remove(chosen)
    return ordered


def plan_stages(profile: Profile, registry: StageRegistry) -> list[PlannedStage]:
    """Enabled and disabled stages in run order, each with its settings and its upstream edges."""
    specs = dict(registry.stages)
    for spec in specs.values():
        for dep in spec.requires:
            if dep not in specs:
                raise ConfigError(
                    f"stage '{spec.name}' (plugin '{registry.origin[spec.name]}') requires unknown stage '{dep}'"
                )
    inputs = {name: _inputs(spec, specs, registry.origin) for name, spec in specs.items()}
    upstream = {name: _upstream(spec, inputs[name], specs) for name, spec in specs.items()}
    planned = []
    for name in _order(specs, upstream):
        spec = specs[name]
        table = profile.stage_table(name)
        settings_table = {k: v for k, v in table.items() if k not in ("enabled", "required")}
        settings = build(spec.settings, settings_table, f"stages.{name}") if spec.settings else None
        enabled = table.get("enabled")
        required = table.get("required")
        planned.append(PlannedStage(
            spec=spec,
            enabled=spec.enabled_by_default if enabled is None else enabled,
            required=spec.default_required() if required is None else required,
            settings=settings,
            source_plugin=registry.origin[name],
            inputs=tuple(inputs[name]),
            upstream=upstream[name],
        ))
    return planned


# --- queries a stage asks of the graph ------------------------------------------------

def enabled(plan: Iterable[PlannedStage]) -> list[PlannedStage]:
    return [p for p in plan if p.enabled]


def producers(plan: Iterable[PlannedStage], kind: str) -> list[PlannedStage]:
    """Enabled stages that produce artifacts of ``kind``, in run order."""
    return [p for p in plan if p.enabled and kind in p.spec.produces]


def training_stages(plan: Iterable[PlannedStage]) -> list[PlannedStage]:
    return [p for p in plan if p.enabled and StageKind(p.spec.kind) == StageKind.TRAINING]


def training_methods(plan: Iterable[PlannedStage]) -> list[PlannedStage]:
    """Enabled training stages that continue another stage's adapter (the methods a thesis compares)."""
    return [p for p in plan if p.enabled and p.spec.is_training_method]


def method_baseline(plan: Iterable[PlannedStage]) -> str | None:
    """The stage the training methods start from (the SFT stage in the built-in pipeline)."""
    plan = list(plan)
    starts = [p.spec.starts_from() for p in training_methods(plan)]
    if starts:
        return max(set(starts), key=starts.count)
    adapters = [p.spec.name for p in producers(plan, ArtifactKind.ADAPTER) if not p.spec.is_training_method]
    return adapters[0] if adapters else None
