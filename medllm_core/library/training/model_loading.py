"""Resolve the profile's model to a local folder and load tokenizer and model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medllm_core.kernel.context import StageContext
from medllm_core.kernel.errors import ConfigError, Location
from medllm_core.library.data import data_sources
from medllm_core.library.tiny_model import ensure_tiny_model, is_tiny_model


def corpus_files(ctx: StageContext) -> list[Path]:
    """Every data file the profile names: the tiny tokenizer is trained on them."""
    return sorted({Path(s.file) for s in data_sources(ctx.profile)})


def check_model_found(ctx: StageContext) -> None:
    """A local model path that does not exist fails before any stage (and any model load), not mid-run."""
    name = ctx.profile.model.name_or_path
    if is_tiny_model(name):
        return  # the tiny model is built locally
    if not name.startswith((".", "/", "~")) and ctx.profile.model.source != "local":
        check_source_reachable(ctx)
        return
    local = ctx.profile.resolve_path(name)
    if not (local / "config.json").is_file():
        what = "has no config.json" if local.is_dir() else "not found"
        raise ConfigError(f"model folder {what}: {local}", Location(file=str(ctx.profile.source_path),
                                                                    key="model.name_or_path"),
                          hint="point model.name_or_path (or --model) at a folder with config.json and weights")


def check_source_reachable(ctx: StageContext) -> None:
    """A hub id must be cached or reachable (HF, its mirror, or ModelScope) before any stage starts."""
    from medllm_core.library.model_source import decide_source, unreachable_message

    model = ctx.profile.model
    decision = decide_source(model.name_or_path, model.source)
    ctx.run_context.preflight["model_source"] = decision.to_dict()
    if decision.source != "none":
        # A decision, so the console, the summary and the dry run show where the model comes from (cached path).
        ctx.decide("model_source", decision.label(), source=decision.source, cached=decision.cached,
                   local_path=str(decision.local_path) if decision.local_path else None)
        return
    message = unreachable_message(model.name_or_path, decision)
    if ctx.profile.run.dry_run:  # a dry run plans without the network; it warns with the real run's error
        ctx.log(f"the real run would stop: {message}", level="warning")
        return
    raise ConfigError(message, Location(file=str(ctx.profile.source_path), key="model.name_or_path"))


MODEL_CACHE_ENV = "MEDLLM_MODEL_CACHE"


def built_models_dir(ctx: StageContext) -> Path:
    """Where the models medllm builds itself (the tiny model) are kept: ``MEDLLM_MODEL_CACHE`` when set (one
    folder shared by every output root, e.g. on the data disk), else the output root's ``.medllm_cache/models``.
    Each build is its own folder named by the fingerprint of what it was built from, so sharing is safe."""
    import os

    shared = os.environ.get(MODEL_CACHE_ENV, "").strip()
    return Path(shared).expanduser() if shared else ctx.run.cache_dir / "models"


def resolve_model_path(ctx: StageContext) -> str:
    name = ctx.profile.model.name_or_path
    if is_tiny_model(name):
        path = ensure_tiny_model(built_models_dir(ctx), corpus_files(ctx), seed=ctx.profile.run.seed)
        return str(path)
    local = ctx.profile.resolve_path(name)
    if local.exists():
        return str(local)
    if name.startswith((".", "/", "~")):
        raise ConfigError("model folder not found", Location(file=str(ctx.profile.source_path),
                                                              key="model.name_or_path"))
    from medllm_core.library.model_source import local_copy

    # A hub id: the copy that 'medllm-tui model fetch' (or an earlier run) left in the HF or ModelScope cache.
    return str(local_copy(name, ctx.profile.model.source) or name)


def load_tokenizer(path: str, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(path: str, dtype: Any, trust_remote_code: bool = False, attn_implementation: str | None = None,
               quantization_config: Any = None, device_map: Any = None) -> Any:
    from transformers import AutoModelForCausalLM

    extra: dict[str, Any] = {"attn_implementation": attn_implementation} if attn_implementation else {}
    if quantization_config is not None:  # 4-bit QLoRA (training/quantized_base.py)
        extra["quantization_config"] = quantization_config
    if device_map is not None:
        extra["device_map"] = device_map
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=trust_remote_code, **extra)
