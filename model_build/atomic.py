"""Write a file so that it either exists complete or not at all: write a temporary sibling,
then rename it into place (a rename within one directory is atomic on POSIX)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """`write(tmp_path)` writes the content; the file appears at `path` only once it is whole.
    The temporary name keeps the suffix (`x.tmp.npz`) for writers that insist on one."""
    tmp = path.with_name(f"{path.stem}.tmp{path.suffix}")
    try:
        write(tmp)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomically(path: Path, text: str) -> None:
    write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
