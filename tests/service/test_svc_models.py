"""Where a request's Python work (tokens, features, decoding) runs: service/models.py `run_prep_work`."""

from __future__ import annotations

import asyncio
import threading

import pytest

from service import models


def _thread_name() -> str:
    return threading.current_thread().name


@pytest.mark.parametrize(
    ("predicting", "chars", "where"),
    [(1, 100, "loop"), (1, models.INLINE_MAX_CHARS + 1, "prep"), (2, 100, "prep")],
)
def test_a_short_request_alone_runs_on_the_loop_the_others_in_the_prep_thread(
    monkeypatch: pytest.MonkeyPatch, predicting: int, chars: int, where: str
) -> None:
    monkeypatch.setattr(models, "_predicting", predicting)

    async def main() -> str:
        loop_thread = threading.current_thread().name
        name = await models.run_prep_work(_thread_name, chars=chars)
        return "loop" if name == loop_thread else "prep" if name.startswith("prep") else name

    assert asyncio.run(main()) == where
