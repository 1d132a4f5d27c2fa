"""Stage settings as forms: what the wizard's options screen and ``medllm-tui options`` show.

Everything here is built from the stages' own settings dataclasses
(``describe_settings``), so a plugin's ``[stages.<name>]`` options appear with
their type, default, choices and help and no UI code in the plugin. No
Textual here: the CLI listing runs on the headless path.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from medllm_core.kernel.plugin_manager import StageRegistry, load_plugins
from medllm_core.kernel.profile import Profile
from medllm_core.kernel.schema import SchemaError, SettingField, build, describe_settings

TOGGLE_KEYS = ("enabled", "required")


@functools.lru_cache(maxsize=1)
def registry() -> StageRegistry:
    """The plugins, loaded once per process (the wizard asks often)."""
    return load_plugins()


@dataclass(frozen=True)
class FormField:
    key: str  # dotted inside the stage table: "max_steps", "fallback_judge.base_url"
    setting: SettingField
    value: Any  # the value the profile (plus the user's choices) gives it


@dataclass(frozen=True)
class StageForm:
    stage: str
    description: str
    fields: tuple[FormField, ...]


def flatten(fields: list[SettingField] | tuple[SettingField, ...], prefix: str = "") -> list[tuple[str, SettingField]]:
    """Nested settings tables as dotted keys, leaves only."""
    out: list[tuple[str, SettingField]] = []
    for setting in fields:
        key = f"{prefix}{setting.name}"
        if setting.nested is not None:
            out.extend(flatten(setting.nested, f"{key}."))
        else:
            out.append((key, setting))
    return out


def stage_settings(profile: Profile, name: str, reg: StageRegistry | None = None) -> Any:
    """The effective settings instance of stage ``name`` (None: unknown stage or no settings)."""
    spec = (reg or registry()).stages.get(name)
    if spec is None or spec.settings is None:
        return None
    table = {k: v for k, v in profile.stage_table(name).items() if k not in TOGGLE_KEYS}
    try:
        return build(spec.settings, table, f"stages.{name}")
    except SchemaError:
        return spec.settings()


def _get(instance: Any, key: str) -> Any:
    for part in key.split("."):
        instance = getattr(instance, part)
    return instance


def setting_value(profile: Profile, dotted: str, default: Any = None, reg: StageRegistry | None = None) -> Any:
    """The effective value of ``stages.<name>.<field...>`` (``default`` when no such stage or field)."""
    _, name, key = dotted.split(".", 2)
    settings = stage_settings(profile, name, reg)
    try:
        return _get(settings, key) if settings is not None else default
    except AttributeError:
        return default


def gate_settings(profile: Profile, reg: StageRegistry | None = None) -> Any:
    """The settings of the stage that computes the run's gate (the built-in preflight)."""
    reg = reg or registry()
    gate = next((spec for spec in reg.stages.values() if spec.gate is not None), None)
    return stage_settings(profile, gate.name, reg) if gate else None


def stage_forms(profile: Profile, chosen: dict[str, Any] | None = None,
                reg: StageRegistry | None = None) -> list[StageForm]:
    """One form per registered stage that has settings, values from the profile then ``chosen``."""
    reg = reg or registry()
    chosen = chosen or {}
    forms = []
    for name, spec in reg.stages.items():
        if spec.settings is None:
            continue
        settings = stage_settings(profile, name, reg)
        fields = tuple(FormField(key, setting, chosen.get(f"stages.{name}.{key}", _get(settings, key)))
                       for key, setting in flatten(describe_settings(spec.settings)))
        forms.append(StageForm(name, spec.description, fields))
    return forms


def parse_value(setting: SettingField, text: str) -> Any:
    """Text typed into an input, as the field's type; ValueError when it is not one."""
    text = text.strip()
    if setting.optional and not text:
        return None
    if setting.kind == "int":
        return int(text)
    if setting.kind == "float":
        return float(text)
    if setting.kind == "list":
        return [part.strip() for part in text.split(",") if part.strip()]
    return text


def show_value(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "[]"
    if isinstance(value, str):
        return f'"{value}"'
    return f"{value:g}" if isinstance(value, float) else str(value)


def options_rows(reg: StageRegistry, stage: str | None = None) -> list[tuple[str, list[tuple[str, str, str, str]]]]:
    """``medllm-tui options``: per stage, (key, type, default, help) rows."""
    names = [stage] if stage else list(reg.stages)
    out = []
    for name in names:
        spec = reg.stages[name]
        rows = [("enabled", "true/false", "true" if spec.enabled_by_default else "false", "run this stage"),
                ("required", "true/false", "true" if spec.default_required() else "false",
                 "the strict completion check counts this stage")]
        if spec.settings is not None:
            for key, setting in flatten(describe_settings(spec.settings)):
                env = [var for var, target in spec.env.items() if target == key]
                help_text = setting.help + (f" (env {', '.join(env)})" if env else "")
                rows.append((key, setting.type, show_value(setting.default), help_text))
        out.append((name, rows))
    return out
