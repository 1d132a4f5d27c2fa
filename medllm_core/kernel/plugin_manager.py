"""Load built-in and third-party plugins and collect the stages they register.

A plugin that fails to import or to register is reported (name + reason) and
skipped; the run goes on without it. ``MEDLLM_BLOCK_PLUGINS`` (comma-separated
plugin names) blocks plugins; ``MEDLLM_ALLOW_PLUGINS``, when set, loads only
the third-party plugins it names.
"""

from __future__ import annotations

import importlib
import os
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType

import pluggy

from medllm_core.kernel import hookspecs
from medllm_core.kernel.overrides import StageCatalogue
from medllm_core.kernel.stages import StageSpec

# The design card's folder of built-in plugins; it lists its own modules (``BUILTIN_MODULES``), so the
# kernel knows no built-in plugin or stage by name.
BUILTIN_PACKAGE = "plugins"

BLOCK_ENV = "MEDLLM_BLOCK_PLUGINS"
ALLOW_ENV = "MEDLLM_ALLOW_PLUGINS"


@dataclass
class PluginRecord:
    name: str
    source: str  # "builtin (plugins.sft)" or "entry point medllm.plugins: pkg 1.0 (module)"
    status: str  # "loaded" | "failed" | "blocked"
    reason: str = ""
    stages: list[str] = field(default_factory=list)


@dataclass
class StageRegistry:
    stages: dict[str, StageSpec] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)  # stage -> plugin name
    plugins: list[PluginRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def failed_plugins(self) -> list[PluginRecord]:
        return [p for p in self.plugins if p.status == "failed"]

    def settings_schemas(self) -> StageCatalogue:
        """Stage name -> settings dataclass; also carries the stages' variables and older keys."""
        return self.catalogue()

    def catalogue(self) -> StageCatalogue:
        """What the profile loader needs: each stage's settings, environment variables and older keys."""
        return StageCatalogue.from_specs(self.stages.values())


def _split_names(value: str | None) -> set[str]:
    return {part.strip() for part in (value or "").split(",") if part.strip()}


def _short_reason(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _builtin_modules(registry: StageRegistry) -> tuple[str, ...]:
    try:
        package = importlib.import_module(BUILTIN_PACKAGE)
        return tuple(f"{BUILTIN_PACKAGE}.{name}" for name in package.BUILTIN_MODULES)
    except Exception as exc:  # a broken built-in package is reported like any broken plugin
        registry.plugins.append(PluginRecord(BUILTIN_PACKAGE, "builtin", "failed", _short_reason(exc)))
        return ()


def load_plugins(environ: Mapping[str, str] | None = None) -> StageRegistry:
    env = os.environ if environ is None else environ
    blocked = _split_names(env.get(BLOCK_ENV))
    allowed = _split_names(env.get(ALLOW_ENV)) if env.get(ALLOW_ENV) else None
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    registry = StageRegistry()
    candidates: list[tuple[str, str, object]] = []  # (name, source, loader)

    for module_name in _builtin_modules(registry):
        short = module_name.rsplit(".", 1)[-1]
        candidates.append((short, f"builtin ({module_name})", lambda m=module_name: importlib.import_module(m)))
    for ep in sorted(metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "unknown distribution"
        if allowed is not None and ep.name not in allowed:
            registry.plugins.append(PluginRecord(ep.name, f"entry point: {dist}", "blocked", f"not in {ALLOW_ENV}"))
            continue
        candidates.append((ep.name, f"entry point {hookspecs.ENTRY_POINT_GROUP}: {dist} ({ep.value})", ep.load))

    for name, source, loader in candidates:
        if name in blocked:
            registry.plugins.append(PluginRecord(name, source, "blocked", f"listed in {BLOCK_ENV}"))
            continue
        if manager.has_plugin(name):
            registry.warnings.append(f"plugin name '{name}' from {source} is already taken; ignored")
            registry.plugins.append(PluginRecord(name, source, "failed", "duplicate plugin name"))
            continue
        try:
            plugin = loader()  # type: ignore[operator]
            if not isinstance(plugin, ModuleType) and not hasattr(plugin, "register_stages"):
                raise TypeError("entry point must name a module or an object with hook implementations")
            manager.register(plugin, name=name)
        except Exception as exc:  # a broken plugin must not take the run down
            registry.plugins.append(PluginRecord(name, source, "failed", _short_reason(exc)))
            continue
        registry.plugins.append(PluginRecord(name, source, "loaded"))

    records = {p.name: p for p in registry.plugins if p.status == "loaded"}
    # Call each implementation on its own so one failing registration is attributed and contained.
    for impl in manager.hook.register_stages.get_hookimpls():
        record = records[impl.plugin_name]
        added: list[StageSpec] = []
        try:
            impl.function(register=added.append)
            for spec in added:
                if not isinstance(spec, StageSpec):
                    raise TypeError(f"register() expects a StageSpec, got {type(spec).__name__}")
        except Exception as exc:
            record.status, record.reason = "failed", f"register_stages: {_short_reason(exc)}"
            continue
        for spec in added:
            if spec.name in registry.stages:
                registry.warnings.append(
                    f"stage '{spec.name}' from plugin '{record.name}' replaces the one from "
                    f"'{registry.origin[spec.name]}'"
                )
            registry.stages[spec.name] = spec
            registry.origin[spec.name] = record.name
            record.stages.append(spec.name)
    for record in registry.plugins:
        if record.status == "loaded" and not record.stages:
            # pluggy silently ignores functions that match no hook: a misspelt hook name lands here.
            registry.warnings.append(f"plugin '{record.name}' loaded but registered no stages "
                                     "(is its hook function named register_stages and marked @hookimpl?)")
    return registry
