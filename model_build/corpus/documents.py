"""The record every reader yields: raw text plus, for hyperlinked sources, its link spans."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RawDocument:
    """One document from a reader.

    `links` are `(start, end, target)` character spans (end-exclusive) over the visible anchor
    text; None means the source has no hyperlinks (the document is not concept-supervised),
    while an empty list means a hyperlinked source whose document happens to have no links.
    """

    id: str
    source: str
    text: str
    links: list[tuple[int, int, str]] | None = None
