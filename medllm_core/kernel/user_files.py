"""Opening files a user names (profiles, data, labels) and the output root, safely.

Two traps this guards against: ``open()`` on a FIFO blocks until a writer
appears (a run that hangs forever), and a non-UTF-8 file (a GBK export from a
Chinese Excel) would otherwise surface as a ``UnicodeDecodeError`` traceback.
So the file's type is checked with ``os.stat`` *before* opening it, and decoding
errors become a located error that says how to convert the file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from medllm_core.kernel.errors import ConfigError, Location, MedllmError

_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words, for the error message."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def require_regular_file(path: str | os.PathLike[str], what: str,
                         error: type[MedllmError] = ConfigError) -> None:
    """Raise ``error`` unless ``path`` is an existing regular file (symlinks followed).

    Never opens the file: that is the point for FIFOs and devices.
    """
    file = str(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise error(f"{what} not found", Location(file=file)) from None
    except OSError as exc:
        raise error(f"cannot read {what}: {exc.strerror or exc}", Location(file=file)) from None
    if stat.S_ISDIR(mode):
        raise error(f"{what} is a directory, expected a file", Location(file=file))
    if not stat.S_ISREG(mode):
        raise error(f"{what} is {file_kind(mode)}, not a regular file; refusing to open it",
                    Location(file=file), hint="give the path of an ordinary file")


def decode_utf8(data: bytes, file: str, what: str, error: type[MedllmError] = ConfigError) -> str:
    """UTF-8 text of ``data`` (a BOM is dropped), or ``error`` at the line of the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise error(f"{what} is not UTF-8 text ({exc.reason} at byte {exc.start}, column {column})",
                    Location(file, line),
                    hint=f"convert it to UTF-8, e.g. iconv -f GBK -t UTF-8 {file} > {Path(file).stem}.utf8"
                         f"{Path(file).suffix}") from None


def read_user_text(path: str | os.PathLike[str], what: str,
                   error: type[MedllmError] = ConfigError) -> str:
    """Text of a user-named file: regular files only, decoded as UTF-8, errors located."""
    require_regular_file(path, what, error)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise error(f"cannot read {what}: {exc.strerror or exc}", Location(file=str(path))) from None
    return decode_utf8(data, str(path), what, error)


def check_output_root(output_dir: Path, location: Location, origin: str) -> None:
    """An output root that is (or lies under) an existing file is a configuration error.

    Otherwise ``mkdir`` fails much later with ``NotADirectoryError``. ``origin``
    says where the value came from ("file", "cli", "env:NAME").
    """
    existing = output_dir
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.exists() or existing.is_dir():
        return
    where = {"file": "", "cli": " (from --output-root)"}.get(origin, f" (from {origin})")
    if origin.startswith("env:"):
        where = f" (from environment variable {origin[4:]})"
    what = "is a file" if existing == output_dir else f"lies under '{existing}', which is a file"
    raise ConfigError(f"output root '{output_dir}' {what}, not a folder{where}", location,
                      hint="choose a folder (it is created when missing)")
