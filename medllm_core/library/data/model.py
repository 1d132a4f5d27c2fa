"""Result types of the data loaders.

Row-level problems are collected, not raised, so a user sees every bad row of a
file in one go (and a UI can list them) instead of fixing one error per run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from medllm_core.kernel.errors import Location

STAGES = ("sft", "preference", "kto")
ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One problem found in a data file (a bad row, a bad line, an ignored setting)."""

    file: str
    line: int | None  # 1-based; for a JSON array, the line where the item starts
    key: str | None  # offending key, e.g. "conversations[1].value"
    message: str
    severity: str  # "error" | "warning"

    @property
    def location(self) -> Location:
        return Location(file=self.file, line=self.line, key=self.key)

    def render(self) -> str:
        """One line for logs and the UI: ``file:line, key 'k': error: message``."""
        where = self.location.render()
        return f"{where}: {self.severity}: {self.message}" if where else self.message


@dataclass
class LoadedData:
    """Normalised rows of one data file plus everything that was wrong with it."""

    path: str
    format: str  # detected or declared input format, e.g. "sharegpt"
    stage: str  # "sft" | "preference" | "kto"
    rows: list[dict]  # normalised rows, only the valid ones
    source_lines: list[int]  # line of each row in ``rows``
    problems: list[Problem] = field(default_factory=list)
    derived_from_preference: bool = False  # KTO rows built from preference pairs

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == WARNING]


class RowIssues:
    """Problems of one row, collected before the loader knows its file and line.

    Normalisers only know keys inside the row; the loader adds file and line when
    it turns these into ``Problem`` objects.
    """

    def __init__(self) -> None:
        self.items: list[tuple[str | None, str, str]] = []  # (key, message, severity)

    def error(self, key: str | None, message: str) -> None:
        self.items.append((key, message, ERROR))

    def warning(self, key: str | None, message: str) -> None:
        self.items.append((key, message, WARNING))

    @property
    def error_count(self) -> int:
        return sum(1 for _, _, severity in self.items if severity == ERROR)

    @property
    def has_errors(self) -> bool:
        return self.error_count > 0

    def to_problems(self, file: str, line: int | None) -> list[Problem]:
        return [Problem(file, line, key, message, sev) for key, message, sev in self.items]
