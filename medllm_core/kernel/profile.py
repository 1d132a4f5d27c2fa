"""Profiles: the TOML schema, loading and saving.

Precedence is file < environment < command line (``overrides``). The seed
scripts' environment variables (MODEL_NAME, ALLOW_SKIP_TRAINING, ...) keep
working as overrides. Stage tables (``[stages.<name>]``) are validated against
the settings each registered stage declares, so a plugin's options are checked
like built-in ones; a stage's older keys (``[gates]``, ``[judges]``) still work
through its ``aliases``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from medllm_core.kernel.errors import ConfigError, Location
from medllm_core.kernel.hardware import PRECISION_CHOICES, PRECISION_HELP
from medllm_core.kernel.lora_section import LoraSection
from medllm_core.kernel.model_sources import ModelSource, source_option
from medllm_core.kernel.overrides import (  # noqa: F401  (re-exported: the public names of the loader)
    ENV_OVERRIDES,
    StageCatalogue,
    get_dotted,
    merge_layers,
    parse_cli_value,
    parse_env_value,
    set_dotted,
)
from medllm_core.kernel.quantization_option import QUANTIZATION_CHOICES, QUANTIZATION_HELP
from medllm_core.kernel.schema import SchemaError, build, closest, coerce, option, to_table
from medllm_core.kernel.sharding_option import SHARDING_CHOICES, SHARDING_HELP
from medllm_core.kernel.user_files import read_user_text

MODEL_TIERS = ("tiny", "7b", "14b")
TRAINING_DATA_FORMATS = ("messages", "sharegpt", "alpaca", "preference", "kto")
# Multiple-choice benchmark formats for [data.eval_mcq] (the readers in library.evaluation.benchmarks).
MCQ_DATA_FORMATS = ("mcq", "cmexam", "cmb", "medqa", "medmcqa", "cmmlu", "apollo")
DATA_FORMATS = ("auto", *TRAINING_DATA_FORMATS, *MCQ_DATA_FORMATS)


@dataclass
class HardwareSection:
    gpu_count: int = 0  # GPUs the profile expects; 0 means CPU is fine
    min_vram_gb: float = 0.0  # per-GPU memory the profile was written for
    device: str = "auto"  # auto | cpu | cuda
    # of the profile's card (7.0 for a V100): what a dry run on another machine plans the precision for; 0 = unknown
    compute_capability: float = 0.0
    sharding: str = option("auto", SHARDING_HELP)  # FSDP across gpu_count GPUs: library/sharding.py
    precision: str = option("auto", PRECISION_HELP)  # kernel/hardware.py choose_precision

    def validate(self, prefix: str) -> None:
        _one_of(self.device, ("auto", "cpu", "cuda"), f"{prefix}.device")
        _one_of(self.sharding, SHARDING_CHOICES, f"{prefix}.sharding")
        _one_of(self.precision, PRECISION_CHOICES, f"{prefix}.precision")
        if self.compute_capability and not 3.0 <= self.compute_capability < 20:
            raise SchemaError(f"{prefix}.compute_capability", f"must be 0 (unknown) or a CUDA compute capability "
                              f"such as 7.0 or 8.0, got {self.compute_capability}")
        if self.gpu_count < 0:
            raise SchemaError(f"{prefix}.gpu_count", "must be >= 0")


@dataclass
class ModelSection:
    name_or_path: str = "Qwen/Qwen2.5-7B-Instruct"
    tier: str = "7b"
    slug: str = ""  # file-name form of the model, derived from name_or_path when empty
    trust_remote_code: bool = False
    source: ModelSource = source_option()  # auto | hf | modelscope | local
    # A run whose numbers test the pipeline, not a model: every report says so. None: the tiny tier is one.
    smoke_test: bool | None = None
    lora: LoraSection = field(default_factory=LoraSection)
    quantization: str = option("auto", QUANTIZATION_HELP)  # 4-bit QLoRA: library/quantization.py

    def validate(self, prefix: str) -> None:
        _one_of(self.tier, MODEL_TIERS, f"{prefix}.tier")
        _one_of(self.quantization, QUANTIZATION_CHOICES, f"{prefix}.quantization")
        # MODEL_NAME="" in a shell script is easy to write; an empty name fails only when the model loads.
        if not self.name_or_path.strip():
            raise SchemaError(f"{prefix}.name_or_path", "must name a model (a hub id or a local folder), got ''",
                              "e.g. 'Qwen/Qwen2.5-7B-Instruct'")

    @property
    def is_smoke_test(self) -> bool:
        """Whether this model's runs are smoke tests (``smoke_test``, or by default the tiny tier)."""
        return self.tier == "tiny" if self.smoke_test is None else self.smoke_test


@dataclass
class RunSection:
    dry_run: bool = False
    seed: int = 42

    def validate(self, prefix: str) -> None:
        # numpy and torch seeds must fit an unsigned 32-bit integer; -1 fails only once a model has loaded.
        if not 0 <= self.seed < 2**32:
            raise SchemaError(f"{prefix}.seed", f"must be in [0, 2**32), got {self.seed}")


@dataclass
class DataSection:
    path: str = ""
    format: str = "auto"
    dataset_info: str = ""  # LLaMA-Factory dataset_info.json
    dataset_name: str = ""
    eval_fraction: float = 0.0

    def validate(self, prefix: str) -> None:
        _one_of(self.format, DATA_FORMATS, f"{prefix}.format")
        if not 0.0 <= self.eval_fraction < 1.0:
            raise SchemaError(f"{prefix}.eval_fraction", "must be in [0, 1)")


@dataclass
class StageToggle:
    """Keys every ``[stages.<name>]`` table accepts, whatever the stage."""

    enabled: bool | None = None  # None: the stage's own default
    required: bool | None = None  # required stages count for strict_pass


@dataclass
class Profile:
    name: str = "unnamed"
    description: str = ""
    output_root: str = "."
    hardware: HardwareSection = field(default_factory=HardwareSection)
    model: ModelSection = field(default_factory=ModelSection)
    run: RunSection = field(default_factory=RunSection)
    data: dict[str, DataSection] = field(default_factory=dict)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Where the profile came from: relative data paths resolve against this folder.
    # Not settable from TOML (init=False), only by the loader.
    source_path: Path | None = field(default=None, init=False)
    # dotted key -> "file" | "env:NAME" | "cli" (evidence of where each value came from)
    sources: dict[str, str] = field(default_factory=dict, init=False)

    @property
    def base_dir(self) -> Path:
        return self.source_path.parent if self.source_path else Path.cwd()

    def resolve_path(self, value: str) -> Path:
        path = Path(os.path.expanduser(value))
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    @property
    def output_dir(self) -> Path:
        return Path(os.path.expanduser(self.output_root)).resolve()

    @property
    def model_slug(self) -> str:
        return self.model.slug or model_slug(self.model.name_or_path)

    def stage_table(self, name: str) -> dict[str, Any]:
        return self.stages.get(name, {})

    def to_toml_dict(self) -> dict[str, Any]:
        table = to_table(self)
        table.pop("source_path", None)
        table.pop("sources", None)
        return table


def model_slug(name_or_path: str) -> str:
    """'Qwen/Qwen2.5-7B-Instruct' -> 'qwen25_7b' (the seed's file names)."""
    base = Path(name_or_path.rstrip("/")).name.lower()
    base = re.sub(r"[-_](instruct|chat|base)$", "", base)
    base = base.replace(".", "")
    base = re.sub(r"[^a-z0-9]+", "_", base).strip("_")
    return base or "model"


def _one_of(value: str, allowed: tuple[str, ...], key: str) -> None:
    if value not in allowed:
        suggestion = closest(value, allowed)
        hint = f"did you mean '{suggestion}'?" if suggestion else None
        raise SchemaError(key, f"must be one of {', '.join(allowed)}; got '{value}'", hint)


# --- loading -----------------------------------------------------------------

def find_key_line(text: str, dotted: str) -> int | None:
    """Best-effort line number of ``dotted`` in TOML ``text`` (tomllib gives none)."""
    parts = [p for p in re.split(r"\.(?![^\[]*\])", dotted) if p]
    parts = [re.sub(r"\[\d+\]$", "", p) for p in parts]
    current: list[str] = []
    header_line: int | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.split("#", 1)[0].strip()
        if not stripped:
            continue
        header = re.fullmatch(r"\[\[?\s*([^\]]+?)\s*\]\]?", stripped)
        if header:
            current = [p.strip().strip('"').strip("'") for p in header.group(1).split(".")]
            if current == parts:
                header_line = number
            continue
        match = re.match(r"([A-Za-z0-9_.\-\"' ]+?)\s*=", stripped)
        if not match:
            continue
        key = [p.strip().strip('"').strip("'") for p in match.group(1).split(".")]
        if current + key == parts:
            return number
        if parts[: len(current) + len(key)] == current + key and header_line is None:
            header_line = number  # an inline table that holds the key
    if header_line is not None:
        return header_line
    if len(parts) > 1:
        return find_key_line(text, ".".join(parts[:-1]))
    return None


def profile_location(profile: Profile, dotted: str) -> Location:
    """Where ``dotted`` is set: the profile file and line, or only the key when it came from --set / env."""
    origin = profile.sources.get(dotted.split("[", 1)[0], "file")
    if profile.source_path is None or origin != "file":
        return Location(key=dotted)
    try:
        text = profile.source_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return Location(file=str(profile.source_path), key=dotted)
    return Location(file=str(profile.source_path), line=find_key_line(text, dotted), key=dotted)


def read_toml(path: Path) -> tuple[dict[str, Any], str]:
    if not path.exists():
        raise ConfigError("profile not found", Location(file=str(path)), hint=_profile_hint(path))
    if path.is_dir():
        raise ConfigError("profile path is a folder, expected a .toml file", Location(file=str(path)))
    text = read_user_text(path, "profile")  # FIFOs refused unopened; non-UTF-8 named with its line
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        # Python < 3.14 has no .lineno: the line is only in the message text.
        found = re.search(r"at line (\d+)", str(exc))
        line = getattr(exc, "lineno", None) or (int(found.group(1)) if found else None)
        message = getattr(exc, "msg", str(exc))
        raise ConfigError(f"invalid TOML: {message}", Location(file=str(path), line=line)) from None


def _profile_hint(path: Path) -> str | None:
    folders = [path.parent] if path.parent.exists() and path.parent.resolve() != Path.cwd().resolve() else []
    folders += [Path("profiles"), shipped_profiles_dir()]
    for folder in folders:
        stems = sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []
        guess = closest(path.stem, stems)
        if guess:
            return f"did you mean '{folder / guess}.toml'?"
    shipped = sorted(p.stem for p in shipped_profiles_dir().glob("*.toml"))
    return f"shipped profiles: {', '.join(shipped)}" if shipped else None


def resolve_profile_path(spec: str) -> Path:
    """Accept a path, or a bare name found in ./profiles or the shipped profiles."""
    candidate = Path(os.path.expanduser(spec))
    if candidate.exists() or candidate.suffix == ".toml" or "/" in spec:
        return candidate
    for folder in (Path.cwd() / "profiles", shipped_profiles_dir()):
        found = folder / f"{spec}.toml"
        if found.exists():
            return found
    return candidate


def shipped_profiles_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "profiles"


def load_profile(
    spec: str | Path,
    *,
    environ: Mapping[str, str] | None = None,
    cli_overrides: Mapping[str, Any] | None = None,
    stages: StageCatalogue | Mapping[str, type | None] | None = None,
    stage_schemas: StageCatalogue | Mapping[str, type | None] | None = None,
) -> Profile:
    """Load a profile file and apply environment then command-line overrides.

    ``stages`` is the registry's ``StageCatalogue`` (``StageRegistry.catalogue()``):
    every ``[stages.*]`` table is validated against the stage's settings, and the
    stages' environment variables and older keys apply. A plain mapping of stage
    name to settings dataclass validates without them. Left out, the plugins are
    loaded to build it (``stage_schemas`` is the older name of the parameter).
    """
    path = resolve_profile_path(str(spec)).resolve() if not Path(spec).is_absolute() else Path(spec)
    raw, text = read_toml(path)
    env = os.environ if environ is None else environ
    catalogue = _catalogue(stages if stages is not None else stage_schemas, env)
    layers = None

    def fail(exc: SchemaError) -> ConfigError:
        origin = layers.sources.get(exc.key, "file") if layers else "file"
        shown = layers.shown_key(exc.key) if layers else exc.key
        if origin.startswith("env:"):
            where = Location(key=exc.key)
            message = f"{exc.message} (from environment variable {origin[4:]})"
        elif origin == "cli":
            where = Location(key=shown)
            message = f"{exc.message} (from --set)"
        else:
            where = Location(file=str(path), line=find_key_line(text, shown), key=shown)
            message = exc.message
        return ConfigError(message, where, exc.hint)

    try:
        layers = merge_layers(raw, catalogue, env, cli_overrides or {}, to_table(Profile()))
        merged = layers.table
        profile = build(Profile, {k: v for k, v in merged.items() if k not in ("data", "stages")})
        profile.data = {
            stage: build(DataSection, _table(value, f"data.{stage}"), f"data.{stage}")
            for stage, value in _table(merged.get("data", {}), "data").items()
        }
        check_data_tables(profile.data, catalogue)
        profile.stages = {name: validate_stage_table(name, _table(value, f"stages.{name}"), catalogue.settings)
                          for name, value in _table(merged.get("stages", {}), "stages").items()}
    except SchemaError as exc:
        raise fail(exc) from None
    profile.source_path = path
    profile.sources = layers.sources
    return profile


def _catalogue(stages: StageCatalogue | Mapping[str, type | None] | None, env: Mapping[str, str]) -> StageCatalogue:
    if isinstance(stages, StageCatalogue):
        return stages
    if stages is not None:
        return StageCatalogue(settings=dict(stages))
    from medllm_core.kernel.plugin_manager import load_plugins  # the registered stages own their settings

    return load_plugins(environ=env).catalogue()


def check_data_tables(data: Mapping[str, DataSection], catalogue: StageCatalogue) -> None:
    """Every ``[data.<key>]`` must be read by some loaded stage: an unread table is a typo that trains nothing."""
    if not catalogue.data:
        return  # a bare settings mapping (no stage specs): nothing declares data keys
    for key in data:
        if key not in catalogue.data:
            known = sorted(catalogue.data)
            suggestion = closest(key, known)
            hint = f"did you mean '{suggestion}'?" if suggestion else f"known data tables: {', '.join(known)}"
            raise SchemaError(f"data.{key}", "unknown data table (no loaded stage reads it)", hint)


def validate_stage_table(name: str, table: dict[str, Any], schemas: Mapping[str, type | None]) -> dict[str, Any]:
    """Check one ``[stages.<name>]`` table; return it with defaults filled in."""
    prefix = f"stages.{name}"
    if name not in schemas:
        suggestion = closest(name, schemas)
        hint = f"did you mean '{suggestion}'?" if suggestion else f"known stages: {', '.join(sorted(schemas))}"
        raise SchemaError(prefix, "unknown stage (no loaded plugin registers it)", hint)
    toggle_keys = {"enabled", "required"}
    toggles = {k: v for k, v in table.items() if k in toggle_keys}
    build(StageToggle, toggles, prefix)
    settings_cls = schemas[name]
    rest = {k: v for k, v in table.items() if k not in toggle_keys}
    if settings_cls is None:
        if rest:
            key = next(iter(rest))
            raise SchemaError(f"{prefix}.{key}", "unknown key", "this stage takes only 'enabled' and 'required'")
        return dict(toggles)
    try:
        settings = build(settings_cls, rest, prefix)
    except SchemaError as exc:
        if exc.message == "unknown key":
            leaf = exc.key.rsplit(".", 1)[-1]
            valid = [f.name for f in settings_cls.__dataclass_fields__.values()] + sorted(toggle_keys)
            suggestion = closest(leaf, valid)
            exc.hint = f"did you mean '{suggestion}'?" if suggestion else f"valid keys: {', '.join(valid)}"
        raise
    return {**toggles, **to_table(settings)}


def _table(value: Any, key: str) -> dict[str, Any]:
    coerce(value, dict[str, Any], key)
    return value


def dump_profile(profile: Profile) -> str:
    return tomli_w.dumps(profile.to_toml_dict())


def save_profile(profile: Profile, path: Path) -> Path:
    from medllm_core.kernel.atomic import write_text

    return write_text(path, dump_profile(profile))
