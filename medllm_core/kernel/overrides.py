"""The layers of a profile: file < environment < command line, and the older keys that still work.

Kernel-level environment variables (``MODEL_NAME``, ``DRY_RUN`` ...) are listed
here. Everything a stage owns comes from its ``StageSpec``: ``env`` maps the
seed's variables (``ENABLE_LLM_JUDGE``) to a settings field and ``aliases``
maps older profile keys (``judges.llm_judge``, ``gates.allow_skip_training``)
to one. One variable or old key may feed several stages. ``StageCatalogue``
gathers those mappings from the registered stages; ``merge_layers`` applies
them and remembers, for each effective key, where its value came from and the
key the user actually wrote, so errors can point at that key.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from medllm_core.kernel.errors import ConfigError
from medllm_core.kernel.schema import SchemaError, closest, to_table

# The seed's variables the kernel itself owns (stage variables live on each StageSpec's ``env``).
ENV_OVERRIDES: dict[str, str] = {
    "MODEL_NAME": "model.name_or_path",
    "MODEL_TIER": "model.tier",
    "DRY_RUN": "run.dry_run",
    "DAY1_DRY_RUN": "run.dry_run",
    "MEDLLM_OUTPUT_ROOT": "output_root",
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_env_value(name: str, raw: str, current: Any) -> Any:
    """Parse an environment string into the type of the value it replaces."""
    if isinstance(current, bool):
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(
            f"environment variable {name}={raw!r} is not a boolean",
            hint="use true or false",
        )
    if isinstance(current, (int, float)):
        for number in (int, float):
            try:
                return number(raw)
            except ValueError:
                continue
        raise ConfigError(f"environment variable {name}={raw!r} is not a number")
    return raw


def parse_cli_value(raw: str) -> Any:
    """`--set key=VALUE`: VALUE is read as a TOML value, else as a bare string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def set_dotted(table: dict[str, Any], dotted: str, value: Any) -> None:
    node = table
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set '{dotted}': '{part}' is not a table")
        node = child
    node[parts[-1]] = value


def get_dotted(table: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = table
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def delete_dotted(table: dict[str, Any], dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    node: Any = table
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(leaf, None)


def leaf_keys(table: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for key, value in table.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping):
            keys.extend(leaf_keys(value, dotted))
        else:
            keys.append(dotted)
    return keys


@dataclass(frozen=True)
class StageCatalogue(Mapping[str, "type | None"]):
    """What the profile loader needs to know about the registered stages.

    As a mapping it is stage name -> settings dataclass (what ``settings_schemas()`` always returned).
    """

    settings: Mapping[str, type | None] = field(default_factory=dict)  # stage -> settings dataclass
    env: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # VAR -> ("stages.x.field", ...)
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # old key -> ("stages.x.field", ...)
    # data key -> the stages that read [data.<key>]; empty: data tables are not checked (a bare schema mapping)
    data: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_specs(cls, specs: Iterable[Any]) -> StageCatalogue:
        settings: dict[str, type | None] = {}
        env: dict[str, list[str]] = {}
        aliases: dict[str, list[str]] = {}
        data: dict[str, list[str]] = {}
        for spec in specs:
            settings[spec.name] = spec.settings
            for key in getattr(spec, "data", ()):
                data.setdefault(key, []).append(spec.name)
            for var, target in spec.env.items():
                env.setdefault(var, []).append(f"stages.{spec.name}.{target}")
            for old, target in spec.aliases.items():
                aliases.setdefault(old, []).append(f"stages.{spec.name}.{target}")
        return cls(settings, {k: tuple(v) for k, v in env.items()}, {k: tuple(v) for k, v in aliases.items()},
                   {k: tuple(v) for k, v in data.items()})

    def __getitem__(self, stage: str) -> type | None:
        return self.settings[stage]

    def __iter__(self) -> Iterator[str]:
        return iter(self.settings)

    def __len__(self) -> int:
        return len(self.settings)

    @property
    def legacy_sections(self) -> set[str]:
        return {old.split(".", 1)[0] for old in self.aliases if "." in old}

    def default(self, target: str) -> Any:
        """The settings default of ``stages.<name>.<field...>`` (None when unknown)."""
        _, stage, rest = target.split(".", 2)
        settings = self.settings.get(stage)
        try:
            return get_dotted(to_table(settings()), rest) if settings else None
        except TypeError:  # a settings class with required fields has no default instance
            return None


@dataclass
class Layers:
    """The merged table, and for each effective dotted key where it came from and the key the user wrote."""

    table: dict[str, Any]
    sources: dict[str, str]  # "file" | "env:NAME" | "cli"
    written: dict[str, str] = field(default_factory=dict)  # effective key -> old key, when an alias set it

    def shown_key(self, key: str) -> str:
        return self.written.get(key, key)


def merge_layers(raw: Mapping[str, Any], catalogue: StageCatalogue, environ: Mapping[str, str],
                 cli_overrides: Mapping[str, Any], kernel_defaults: Mapping[str, Any]) -> Layers:
    layers = Layers(copy.deepcopy(dict(raw)), {key: "file" for key in leaf_keys(raw)})
    _move_old_keys(layers, catalogue)
    for name, dotted in ENV_OVERRIDES.items():
        if name in environ:
            current = get_dotted(layers.table, dotted, get_dotted(kernel_defaults, dotted))
            _put(layers, dotted, parse_env_value(name, environ[name], current), f"env:{name}")
    for name, targets in catalogue.env.items():
        if name in environ:
            for target in targets:
                current = get_dotted(layers.table, target, catalogue.default(target))
                _put(layers, target, parse_env_value(name, environ[name], current), f"env:{name}")
    for dotted, value in cli_overrides.items():
        for target in catalogue.aliases.get(dotted, (dotted,)):
            _put(layers, target, value, "cli", written=dotted)
    return layers


def _put(layers: Layers, target: str, value: Any, source: str, written: str | None = None) -> None:
    set_dotted(layers.table, target, value)
    layers.sources[target] = source
    if written and written != target:
        layers.written[target] = written
    else:
        layers.written.pop(target, None)


def _move_old_keys(layers: Layers, catalogue: StageCatalogue) -> None:
    """Old keys in the file (``[gates]``, ``[judges]`` ...) set the stage fields they stand for."""
    table = layers.table
    for old in [key for key in leaf_keys(table) if key in catalogue.aliases]:
        value = get_dotted(table, old)
        delete_dotted(table, old)
        del layers.sources[old]
        for target in catalogue.aliases[old]:
            if layers.sources.get(target) == "file" and target not in layers.written:
                if get_dotted(table, target) != value:
                    raise SchemaError(old, f"conflicts with '{target}' set in the same file",
                                      f"'{old}' is the older name of '{target}': keep only one of them")
                continue
            _put(layers, target, value, "file", written=old)
    for section in sorted(catalogue.legacy_sections):
        if section not in table:
            continue
        rest = table[section]
        if not isinstance(rest, dict):
            raise SchemaError(section, f"expected table, got {type(rest).__name__} {rest!r}")
        left = leaf_keys(rest, section)
        if left:
            known = [old.split(".", 1)[1] for old in catalogue.aliases if old.startswith(f"{section}.")]
            guess = closest(left[0].split(".", 1)[1], known)
            raise SchemaError(left[0], "unknown key",
                              f"did you mean '{guess}'?" if guess else f"valid keys: {', '.join(sorted(known))}")
        del table[section]
