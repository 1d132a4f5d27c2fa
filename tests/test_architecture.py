"""The layers hold: an import contract checked on every module's source (top-level and function-level imports).

- the kernel (``medllm_core.kernel``) imports only itself, the standard library and
  third-party packages: never the stage library, the built-in plugins or the UI;
- nothing under ``medllm_core`` or ``plugins`` imports Textual or ``medllm_tui``;
- the example plugins import only the public API (``medllm_core.api``, plus the
  test kit ``medllm_core.testing`` in their tests);
- the kernel and the generic stage-library modules never spell a built-in stage's name;
- no product module is over 400 lines.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
KERNEL = REPO / "medllm_core" / "kernel"
LIBRARY = REPO / "medllm_core" / "library"
PRODUCT = [REPO / "medllm_core", REPO / "plugins", REPO / "medllm_tui"]
BUILTIN_STAGES = {"preflight", "sft", "dpo", "simpo", "kto", "eval", "llm_judge", "risk_judge", "completion_check",
                  "method_comparison", "thesis_reports", "readiness"}
# Modules that act on whatever the graph holds: they must find stages through their artifacts and kinds.
GENERIC = [KERNEL, LIBRARY / "evaluation" / "run_eval.py", LIBRARY / "evaluation" / "variants.py",
           LIBRARY / "evaluation" / "variant_cache.py", LIBRARY / "judges" / "stages.py", LIBRARY / "completion.py",
           LIBRARY / "method_comparison.py", LIBRARY / "thesis", REPO / "medllm_core" / "api.py"]


def python_files(*roots: Path) -> Iterator[Path]:
    for root in roots:
        yield from ([root] if root.is_file() else sorted(root.rglob("*.py")))


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:  # `from medllm_core import library` imports a module too
                yield node.lineno, f"{node.module}.{alias.name}"


def shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def violations(roots: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in python_files(*roots):
        for line, module in imported_modules(path):
            if any(module == f or module.startswith(f + ".") for f in forbidden):
                found.append(f"{shown(path)}:{line} imports {module}")
    return found


def test_kernel_never_imports_the_stage_library_plugins_or_ui() -> None:
    assert violations([KERNEL], ("medllm_core.library", "plugins", "medllm_tui", "textual", "textual_plotext",
                                 "medllm_core.api", "medllm_core.testing")) == []


def test_core_and_plugins_never_import_textual_or_the_tui() -> None:
    assert violations([REPO / "medllm_core", REPO / "plugins"],
                      ("textual", "textual_plotext", "medllm_tui")) == []


@pytest.mark.parametrize("example", ["medllm_orpo", "medllm_perplexity"])
def test_examples_import_only_the_public_api(example: str) -> None:
    allowed = {"medllm_core.api", "medllm_core.testing"}
    found = [f"{path.relative_to(REPO)}:{line} imports {module}"
             for path in python_files(REPO / "examples" / example)
             for line, module in imported_modules(path)
             if module.startswith("medllm_core") and module not in allowed
             and not any(module.startswith(a + ".") for a in allowed)]
    assert found == []


def test_the_checks_see_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f(results):\n    from medllm_core.library.training import sft\n"
                   "    return results.get('dpo') or results['sft']\n", encoding="utf-8")
    assert sorted(v for _, v in stage_name_lookups(bad)) == ["dpo", "sft"]
    assert f"{bad}:2 imports medllm_core.library.training" in violations([bad], ("medllm_core.library",))


def stage_name_lookups(path: Path) -> Iterator[tuple[int, str]]:
    """String constants used to find something by name: compared (``==``, ``in``), used as a subscript or
    passed to ``.get()``/``.planned()``. Folder names such as ``reports/eval`` are not lookups."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        candidates: list[ast.AST] = []
        if isinstance(node, ast.Compare):
            candidates = [node.left, *node.comparators]
        elif isinstance(node, ast.Subscript):
            candidates = [node.slice]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                "get", "planned", "fingerprint_of"):
            candidates = list(node.args[:1])
        for candidate in candidates:
            elements = candidate.elts if isinstance(candidate, (ast.Tuple, ast.List, ast.Set)) else [candidate]
            for element in elements:
                if isinstance(element, ast.Constant) and isinstance(element.value, str):
                    yield element.lineno, element.value


def test_generic_modules_never_name_a_builtin_stage() -> None:
    found = [f"{path.relative_to(REPO)}:{line} spells '{value}'"
             for path in python_files(*GENERIC) for line, value in stage_name_lookups(path) if value in BUILTIN_STAGES]
    assert found == []


def test_no_product_module_over_400_lines() -> None:
    long = {str(p.relative_to(REPO)): n for p in python_files(*PRODUCT)
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert long == {}
