"""Settings (service/settings.py): defaults, environment variables, refusals that say how to fix."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.settings import Settings


def refusal(**values: object) -> str:
    with pytest.raises(ValidationError) as e:
        Settings(**values)  # type: ignore[arg-type]
    return "; ".join(err["msg"] for err in e.value.errors())


def test_defaults_match_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HOST", "PORT", "ARTIFACTS_DIR", "API_KEY", "LOG_LEVEL", "INTRA_OP_THREADS"):
        monkeypatch.delenv(f"ALIGNTAG_{name}", raising=False)
    s = Settings()
    assert (s.host, s.port, str(s.artifacts_dir), s.api_key, s.log_level) == (
        "0.0.0.0",
        8000,
        "artifacts",
        None,
        "info",
    )
    assert (s.max_chars_per_text, s.max_texts_per_request, s.max_body_bytes) == (
        100_000,
        256,
        2 * 1024 * 1024,
    )
    assert s.window_for(256) == (256, 64)
    assert s.decoding == "viterbi"


def test_environment_variables_with_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIGNTAG_PORT", "9001")
    monkeypatch.setenv("ALIGNTAG_API_KEY", "s3cret")
    monkeypatch.setenv("ALIGNTAG_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("ALIGNTAG_INTRA_OP_THREADS", "2")
    s = Settings()
    assert s.port == 9001 and s.log_level == "debug" and s.intra_op_threads == 2
    assert s.api_key is not None and s.api_key.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s)


def test_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIGNTAG_API_KEY", "")
    monkeypatch.setenv("ALIGNTAG_LOG_LEVEL", "")
    s = Settings()
    assert s.api_key is None and s.log_level == "info"


def test_refusals_say_how_to_fix() -> None:
    assert (
        refusal(max_queue=0) == "Value error, must be a positive integer; set ALIGNTAG_MAX_QUEUE to 1 or more"
    )
    assert refusal(max_body_bytes=-1) == (
        "Value error, must be a positive integer; set ALIGNTAG_MAX_BODY_BYTES to 1 or more"
    )
    assert refusal(window_tokens=16, window_overlap_tokens=16) == (
        "Value error, ALIGNTAG_WINDOW_OVERLAP_TOKENS=16 must be smaller than ALIGNTAG_WINDOW_TOKENS=16: "
        "consecutive windows must advance"
    )
    assert refusal(window_tokens=1) == (
        "Value error, a window needs at least 2 tokens; raise ALIGNTAG_WINDOW_TOKENS or unset it"
    )
    assert refusal(api_key="  ") == (
        "Value error, ALIGNTAG_API_KEY is blank; set a real key or unset it for an open API"
    )
    assert refusal(protect_metrics=True) == (
        "Value error, ALIGNTAG_PROTECT_METRICS=true needs ALIGNTAG_API_KEY; set a key or drop it"
    )
    assert refusal(window_tokens=512, max_batch_tokens=256) == (
        "Value error, ALIGNTAG_MAX_BATCH_TOKENS=256 cannot hold one window of ALIGNTAG_WINDOW_TOKENS=512; "
        "raise the budget or lower the window"
    )
    assert "Input should be 'debug', 'info', 'warning' or 'error'" in refusal(log_level="loud")
    assert "Input should be 'viterbi' or 'argmax'" in refusal(decoding="crf")


def test_window_checked_against_the_model() -> None:
    assert Settings(window_tokens=16, window_overlap_tokens=0).window_for(64) == (16, 0)
    with pytest.raises(ValueError, match=r"ALIGNTAG_WINDOW_TOKENS=128 exceeds the model's max_positions=64"):
        Settings(window_tokens=128).window_for(64)
    with pytest.raises(
        ValueError, match=r"ALIGNTAG_WINDOW_OVERLAP_TOKENS=64 must be smaller than the window"
    ):
        Settings(window_overlap_tokens=64).window_for(64)


def test_task_versions_pin_any_task(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIGNTAG_TASK_VERSIONS", '{"methods": "small-1", "gene-products_2": "v2"}')
    monkeypatch.setenv("ALIGNTAG_ACRONYMS_VERSION", "tiny-9")
    s = Settings()
    assert s.task_versions == {"methods": "small-1", "gene-products_2": "v2", "acronyms": "tiny-9"}
    # The built-in tasks' own settings and the map may both name a task, if they agree.
    monkeypatch.delenv("ALIGNTAG_ACRONYMS_VERSION")
    assert Settings(concepts_version="a", task_versions={"concepts": "a"}).task_versions == {"concepts": "a"}


def test_task_versions_refusals() -> None:
    assert refusal(task_versions="{methods: 1}") == (
        "Value error, not JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1)); "
        'write a JSON object such as {"methods": "<version directory>"}'
    )
    assert refusal(task_versions='["methods"]') == "Input should be a valid dictionary"
    assert refusal(task_versions='{"methods": 1}') == "Input should be a valid string"
    assert refusal(task_versions={"Methods": "v1"}) == (
        "Value error, 'Methods' is not a task name ([a-z][a-z0-9_-]{0,39})"
    )
    assert refusal(concepts_version="a", task_versions={"concepts": "b"}) == (
        "Value error, ALIGNTAG_CONCEPTS_VERSION=a and ALIGNTAG_TASK_VERSIONS['concepts']=b disagree; "
        "set one of them"
    )
