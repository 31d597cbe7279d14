"""What names a task and its span labels may have, and the head order of a task's labels
(docs/contracts.md sections 2 and 3): the build writes them, the service reads them back."""

from __future__ import annotations

import re

# A task's name is its directory's name, a URL path segment (/tasks/<task>) and a metric label.
TASK_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")
SPAN_LABEL = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,39}")


def bio_label_names(span_labels: list[str]) -> tuple[str, ...]:
    """Head order of a user task: O, then B-x, I-x per sorted span label x."""
    return ("O", *(f"{p}-{label}" for label in sorted(set(span_labels)) for p in ("B", "I")))
