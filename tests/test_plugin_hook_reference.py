"""docs/hooks.md is generated from the hookspecs and must not drift from them."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from medllm_core.kernel import hook_reference, hookspecs

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "hooks.md"


def test_hooks_reference_matches_the_code() -> None:
    """The drift check: fails when a hook is added, removed or changes signature without regenerating."""
    problems = hook_reference.check_reference(DOCS.read_text(encoding="utf-8"))
    assert problems == [], "\n".join(problems)


def test_every_hook_is_in_the_reference_and_the_tutorial() -> None:
    reference = DOCS.read_text(encoding="utf-8")
    tutorial = (REPO / "docs" / "plugins.md").read_text(encoding="utf-8")
    hooks = hook_reference.hook_docs()
    assert [h.name for h in hooks] == ["register_stages"]
    for hook in hooks:
        assert f"def {hook.signature}: ..." in reference
        assert f"`{hook.name}`" in tutorial, f"docs/plugins.md does not mention hook {hook.name}"


def changed_hookspecs(tmp_path: Path, old: str, new: str) -> ModuleType:
    """A copy of hookspecs.py with ``old`` replaced by ``new``, imported as its own module."""
    source = Path(hookspecs.__file__).read_text(encoding="utf-8")
    assert old in source, f"hookspecs.py no longer contains {old!r}: update this test"
    path = tmp_path / "changed_hookspecs.py"
    path.write_text(source.replace(old, new), encoding="utf-8")
    spec = importlib.util.spec_from_file_location("changed_hookspecs", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_changed_signature_is_reported(tmp_path: Path) -> None:
    changed = changed_hookspecs(tmp_path, "def register_stages(", "def register_stages(profile: dict, ")
    problems = hook_reference.check_reference(DOCS.read_text(encoding="utf-8"), changed)
    assert len(problems) == 1, problems
    assert "hook 'register_stages': documented signature" in problems[0]
    assert "register_stages(profile: dict, register" in problems[0]
    assert "--write" in problems[0]


def test_new_undocumented_and_removed_hooks_are_reported(tmp_path: Path) -> None:
    changed = changed_hookspecs(tmp_path, "def register_stages(", "def register_judges(")
    problems = hook_reference.check_reference(DOCS.read_text(encoding="utf-8"), changed)
    assert any(p.startswith("hook 'register_judges' is not documented") for p in problems), problems
    assert any(p.startswith("hook 'register_stages' is documented but no longer exists") for p in problems)


def test_generated_text_documents_a_new_hook(tmp_path: Path) -> None:
    changed = changed_hookspecs(tmp_path, '\n\n@hookspec\ndef register_stages(', '''

@hookspec(firstresult=True)
def pick_model(profile: dict, *, tier: str = "7b") -> str | None:
    """Choose a model id."""


@hookspec
def register_stages(''')
    text = hook_reference.render_reference(changed)
    assert "def pick_model(profile: dict, *, tier: str = '7b') -> str | None: ..." in text
    assert "Options: `firstresult=True`" in text
    assert text.index("hook `pick_model`") < text.index("hook `register_stages`")  # source order
    assert hook_reference.check_reference(text, changed) == []


def test_check_command_passes_on_the_committed_file() -> None:
    ok = subprocess.run([sys.executable, "-m", "medllm_core.kernel.hook_reference", "--check"], cwd=REPO,
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
