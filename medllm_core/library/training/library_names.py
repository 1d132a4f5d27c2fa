"""Names the training libraries accept, read from the installed transformers and TRL.

Profile validation must stay fast and import-light (the plugin listing and the
wizard load profiles without torch), yet a scheduler or loss name should be
checked against the library that will use it, not against a list copied here
that drifts with every release. So the names are read from the installed
packages' source with ``ast``, without importing them. When a package is not
installed (a core-only install), there is nothing to check against and every
name is accepted: such an install cannot train anyway.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from functools import cache
from pathlib import Path


def _module_source(module: str) -> ast.Module | None:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):  # the parent package is missing
        return None
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        return None
    try:
        return ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None


@cache
def scheduler_names() -> tuple[str, ...] | None:
    """``transformers.trainer_utils.SchedulerType`` values (None: transformers is not installed)."""
    tree = _module_source("transformers.trainer_utils")
    if tree is None:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "SchedulerType":
            return tuple(statement.value.value for statement in node.body
                         if isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Constant)
                         and isinstance(statement.value.value, str))
    return None


@cache
def dpo_loss_types() -> tuple[str, ...] | None:
    """The ``loss_type`` values TRL's ``DPOConfig`` documents (None: TRL is not installed or says nothing)."""
    tree = _module_source("trl.trainer.dpo_config")
    if tree is None:
        return None
    for node in ast.walk(tree):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and node.target.id == "loss_type" and isinstance(node.value, ast.Call)):
            continue
        for keyword in node.value.keywords:
            if keyword.arg == "metadata" and isinstance(keyword.value, ast.Dict):
                for key, value in zip(keyword.value.keys, keyword.value.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value == "help":
                        names = re.findall(r"`'([a-z0-9_]+)'`", _constant_text(value))
                        return tuple(dict.fromkeys(names)) or None
    return None


def _constant_text(node: ast.expr) -> str:
    """The text of a (possibly implicitly concatenated) string constant."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_constant_text(part) for part in node.values if isinstance(part, ast.Constant))
    return ""
