"""The wizard's choices and what they turn into: a profile file and a plan.

No Textual here: the screens only collect choices; building the profile,
checking the VRAM gate per tier and saving the TOML are plain functions the
Pilot tests can also check directly.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medllm_core.kernel.hardware import HardwareInfo
from medllm_core.kernel.profile import MODEL_TIERS, Profile, load_profile, save_profile, shipped_profiles_dir
from medllm_core.library.gates import GateVerdict, evaluate_gate, required_vram_gb
from medllm_tui.deps import USER_PROFILE_DIR
from medllm_tui.stage_forms import gate_settings, setting_value

CUSTOM_TIER = "custom"
TIER_CHOICES = (*MODEL_TIERS, CUSTOM_TIER)
TIER_MODELS = {"tiny": "medllm/tiny-qwen2", "7b": "Qwen/Qwen2.5-7B-Instruct", "14b": "Qwen/Qwen2.5-14B-Instruct"}


@dataclass(frozen=True)
class ProfileOption:
    name: str
    path: Path
    description: str
    origin: str  # "shipped" | "yours"


def _describe(path: Path) -> str:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        return f"(unreadable: {exc})"
    return str(data.get("description", ""))


def list_profiles(shipped: Path | None = None, user_dirs: tuple[Path, ...] = ()) -> list[ProfileOption]:
    """Shipped profiles first, then the user's own (``./profiles/user`` and any extra folders)."""
    shipped = shipped or shipped_profiles_dir()
    options = [ProfileOption(p.stem, p, _describe(p), "shipped") for p in sorted(shipped.glob("*.toml"))]
    seen = {p.path.resolve() for p in options}
    for folder in user_dirs:
        for path in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
            if path.resolve() not in seen:
                seen.add(path.resolve())
                options.append(ProfileOption(path.stem, path, _describe(path), "yours"))
    return options


def recommend_profile(hardware: HardwareInfo | None) -> tuple[str, str]:
    """The seed's advice: which shipped profile fits the detected card(s), and why."""
    if hardware is None or not hardware.gpus:
        return "cpu_tiny", "no CUDA GPU detected: the CPU smoke run"
    per_gpu = hardware.min_gpu_memory_gb
    if hardware.gpu_count >= 2 and all("V100" in g.name.upper() for g in hardware.gpus):
        return "v100_dual", f"{hardware.gpu_count}× V100: the dual-GPU fp16 profile"
    if per_gpu >= 70:
        return "h100_80g_14b", f"{per_gpu:.0f} GB per GPU: 14B fits"
    if per_gpu >= 38:
        return "a100_40g", f"{per_gpu:.0f} GB per GPU: 7B with headroom"
    if per_gpu >= 20:
        return "rtx4090_24g", f"{per_gpu:.0f} GB per GPU: 7B"
    return "cpu_tiny", f"{per_gpu:.0f} GB per GPU is below the 7B gate: tiny only"


# The toggles of the options step and the stage settings they set.
TOGGLE_KEYS = {
    "llm_judge": "stages.llm_judge.use_llm",
    "risk_judge": "stages.risk_judge.use_llm",
    "v2_llm_fallback": "stages.eval.llm_fallback",
    "allow_skip_training": "stages.preflight.allow_skip_training",
    "force_skip_training": "stages.preflight.force_skip_training",
}


@dataclass
class WizardChoices:
    profile: ProfileOption | None = None
    tier: str = "tiny"
    custom_model: str = ""  # name or path when tier == "custom"
    llm_judge: bool = False
    risk_judge: bool = False
    v2_llm_fallback: bool = False
    allow_skip_training: bool = False
    force_skip_training: bool = False
    dry_run: bool = False
    save_name: str = ""
    # "stages.<name>.<field>" -> value chosen on the stage options screen
    stage_options: dict[str, Any] = field(default_factory=dict)

    def load_defaults_from(self, profile: Profile) -> None:
        """Start every toggle from what the chosen profile already says."""
        self.tier = profile.model.tier
        self.custom_model = ""
        self.stage_options = {}
        for attribute, dotted in TOGGLE_KEYS.items():
            setattr(self, attribute, bool(setting_value(profile, dotted, False)))

    def set_toggle(self, attribute: str, value: bool) -> None:
        setattr(self, attribute, value)
        self.stage_options.pop(TOGGLE_KEYS.get(attribute, ""), None)

    def set_option(self, dotted: str, value: Any) -> None:
        """A value from the stage options screen (a toggle's key keeps its checkbox in step)."""
        self.stage_options[dotted] = value
        for attribute, key in TOGGLE_KEYS.items():
            if key == dotted:
                setattr(self, attribute, bool(value))

    def overrides(self, base: Profile) -> dict[str, Any]:
        values: dict[str, Any] = {dotted: getattr(self, attribute) for attribute, dotted in TOGGLE_KEYS.items()
                                  if setting_value(base, dotted, None) is not None}
        values.update(self.stage_options)
        if self.tier == CUSTOM_TIER:
            if self.custom_model.strip():
                values["model.name_or_path"] = self.custom_model.strip()
        elif self.tier != base.model.tier:
            # A different tier means a different model; keep the profile's model when the tier is unchanged.
            values["model.tier"] = self.tier
            values["model.name_or_path"] = TIER_MODELS[self.tier]
        if self.save_name:
            values["name"] = self.save_name
        return values


def load_base(option: ProfileOption) -> Profile:
    # environ={}: the wizard shows and saves what the file plus the user's choices say; the
    # seed's environment variables still apply when the run starts, exactly as on the CLI.
    # The loader validates [stages.*] against the registered plugins (older [gates]/[judges] keys included).
    return load_profile(option.path.resolve(), environ={})


def build_profile(choices: WizardChoices) -> Profile:
    if choices.profile is None:
        raise ValueError("no profile chosen")
    base = load_base(choices.profile)
    profile = load_profile(choices.profile.path.resolve(), environ={}, cli_overrides=choices.overrides(base))
    return portable_profile(profile)


def portable_profile(profile: Profile) -> Profile:
    """Relative data paths are relative to the source profile; the saved copy lives elsewhere."""
    result = copy.deepcopy(profile)
    for name, section in result.data.items():
        updates = {key: str(profile.resolve_path(getattr(section, key)))
                   for key in ("path", "dataset_info") if getattr(section, key)}
        result.data[name] = dataclasses.replace(section, **updates)
    model = result.model.name_or_path
    if model.startswith((".", "~")) or (Path(model).exists() and not Path(model).is_absolute()):
        result.model.name_or_path = str(profile.resolve_path(model))
    return result


def tier_verdict(base: Profile, hardware: HardwareInfo | None, tier: str) -> GateVerdict | None:
    """What the VRAM gate will say for ``tier`` on this hardware (None until the probe is done)."""
    if hardware is None or tier == CUSTOM_TIER:
        return None
    probe = copy.deepcopy(base)
    probe.model.tier = tier
    probe.model.name_or_path = TIER_MODELS[tier]  # the estimate follows the tier's model, not the profile's
    return evaluate_gate(probe, hardware, gate_settings(base))


def tier_label(base: Profile, hardware: HardwareInfo | None, tier: str) -> str:
    if tier == CUSTOM_TIER:
        return f"custom model name or path (gate of tier '{base.model.tier}')"
    probe = copy.deepcopy(base)
    probe.model.tier = tier
    need = required_vram_gb(probe, gate_settings(base))
    verdict = tier_verdict(base, hardware, tier)
    need_text = f"needs ≥ {need:.0f} GB per GPU" if need else "no VRAM gate"
    if verdict is None:
        return f"{tier}: {TIER_MODELS[tier]} — {need_text}"
    mark = "fits" if verdict.verdict == "pass" else "WILL NOT FIT"
    estimate = verdict.facts.get("memory_estimate_gib")
    if estimate is not None:
        card = verdict.facts["memory_card_gib"]
        mark += f", est. peak {estimate:.1f}/{card:.0f} GiB" + ("" if verdict.facts["memory_fits"] else " (too big)")
        if verdict.facts.get("memory_quantization") == "4bit":
            mark += " with 4-bit QLoRA"
            need_text = f"16-bit needs ≥ {need:.0f} GB"
    return f"{tier}: {TIER_MODELS[tier]} — {need_text} — {mark}"


def tier_source_line(base: Profile, tier: str, custom_model: str = "") -> str:
    """Where the tier's model comes from and whether it is cached: path checks only, never HTTP (UI thread)."""
    from medllm_core.library.model_source import source_line

    name = (custom_model.strip() or base.model.name_or_path) if tier == CUSTOM_TIER else TIER_MODELS[tier]
    return source_line(name, base.model.source)


_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_profile_name(text: str) -> str:
    return _SAFE_NAME.sub("_", text.strip()).strip("._") or "my_profile"


def default_save_name(choices: WizardChoices) -> str:
    """The chosen profile's own name: a resume by that name (``--run profiles/cpu_tiny.toml --resume``)
    then finds the run. The user types another name to keep both."""
    return safe_profile_name(choices.profile.name if choices.profile else "profile")


def save_choices(profile: Profile, target: str | Path, user_dir: Path = USER_PROFILE_DIR) -> Path:
    """A bare name goes to ``profiles/user/<name>.toml``; anything with a slash or .toml is a path."""
    text = str(target).strip()
    path = Path(text).expanduser() if ("/" in text or text.endswith(".toml")) else user_dir / f"{text}.toml"
    return save_profile(profile, path)


@dataclass
class PlanLine:
    stage: str
    enabled: bool
    required: bool


@dataclass
class PlanPreview:
    stages: list[PlanLine] = field(default_factory=list)
    precision: str = ""
    gate: GateVerdict | None = None
    error: str = ""


def preview_plan(profile: Profile, hardware: HardwareInfo) -> PlanPreview:
    """The same plan and gate the runner will compute (plan_stages + evaluate_gate), without starting a run."""
    from medllm_core.kernel.errors import MedllmError
    from medllm_core.kernel.graph import plan_stages
    from medllm_core.kernel.hardware import choose_precision
    from medllm_core.kernel.plugin_manager import load_plugins

    preview = PlanPreview()
    try:
        planned = plan_stages(profile, load_plugins())
    except MedllmError as exc:
        preview.error = exc.render()
        return preview
    preview.stages = [PlanLine(p.spec.name, p.enabled, p.required) for p in planned]
    try:
        decision = choose_precision(hardware, profile.hardware.precision)
    except MedllmError as exc:  # a forced dtype this machine cannot train in
        preview.error = exc.render()
        return preview
    preview.precision = f"{decision.dtype} — {decision.reason}"
    gate = next((p for p in planned if p.enabled and p.spec.gate is not None), None)
    preview.gate = evaluate_gate(profile, hardware, gate.settings if gate else None)
    return preview
