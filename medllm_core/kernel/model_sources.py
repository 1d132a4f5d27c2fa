"""The ``model.source`` key: where the model's files come from (kept out of profile.py, which is near its limit)."""

from __future__ import annotations

from typing import Any, Literal

from medllm_core.kernel.schema import option

ModelSource = Literal["auto", "hf", "modelscope", "local"]
MODEL_SOURCES: tuple[str, ...] = ("auto", "hf", "modelscope", "local")


def source_option() -> Any:
    """The dataclass field of ``model.source`` with its help text (shown by the wizard and ``options``)."""
    return option("auto", help="where the model comes from: auto (a local folder if name_or_path is a path, else "
                               "the HF hub or its cache, honouring HF_ENDPOINT, else ModelScope when installed), "
                               "hf, modelscope (pip install '.[modelscope]') or local")
