"""User tasks: every task directory of the artifact directory is served at POST /tasks/{task}
(docs/contracts.md sections 3 and 4, docs/service.md).

Until `model_build finetune` makes them, user tasks are made from the tiny build's own artifacts
(`svc_helpers.copy_as_user_task`): `methods` is the concepts model under a user label (`method`),
`abbrev` the acronyms model (labels `short`, `long`), and `broken` the acronyms model with a
labels.json that names one label twice. A copied model answers exactly what the model it copies
answers through /tag and /acronyms, which pins the generic route's offsets and labels.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from svc_helpers import MakeClient, check_spans, copy_as_user_task, version_dir
from testlib import serving

SENTENCE = (
    "We train convolutional neural networks (CNNs) on the controlled natural language ( CNL ) corpus "
    "and compare them with support vector machines (SVM) for named entity recognition tasks."
)
OTHER = "Patients with type 2 diabetes mellitus (T2DM) were treated with an abstract syntax tree."
DUPLICATE = ["O", "B-short", "I-short", "B-short", "I-short"]
SPAN_KEYS = ["text", "start", "end", "label", "score"]


@pytest.fixture(scope="module")
def user_artifacts(tiny_artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    artifacts = tmp_path_factory.mktemp("user-tasks") / "artifacts"
    shutil.copytree(tiny_artifacts_dir, artifacts)
    copy_as_user_task(artifacts, "concepts", "methods", labels=["O", "B-method", "I-method"])
    copy_as_user_task(artifacts, "acronyms", "abbrev")
    copy_as_user_task(artifacts, "acronyms", "broken", labels=DUPLICATE)
    (artifacts / "Not A Task").mkdir()  # a complete version under a name no task can have: ignored
    shutil.copytree(version_dir(artifacts, "concepts"), artifacts / "Not A Task" / "v1")
    return artifacts


@pytest.fixture(scope="module")
def service_log(user_artifacts: Path) -> Path:
    return user_artifacts.parent / "service.log"


@pytest.fixture(scope="module")
def client(user_artifacts: Path, service_log: Path) -> Iterator[httpx.Client]:
    with serving(user_artifacts, service_log) as base_url, httpx.Client(base_url=base_url, timeout=30) as c:
        yield c


def error(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}
    return response.status_code, body["error"]["type"], body["error"]["message"]


def triples(spans: list[dict]) -> list[tuple[int, int, str]]:
    return [(s["start"], s["end"], s["text"]) for s in spans]


# ------------------------------------------------------------------------------- POST /tasks/{task}


def test_a_one_label_user_task_answers_its_models_spans_with_its_label(client: httpx.Client) -> None:
    concepts = client.post("/tag", json={"text": SENTENCE}).json()
    r = client.post("/tasks/methods", json={"text": SENTENCE})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"spans", "model"}
    assert body["model"] == {"task": "methods", "version": concepts["model"]["version"]}  # a copy
    spans = body["spans"]
    assert len(spans) >= 3  # the tiny model finds the sentence's noun phrases: real answers compared
    assert all(list(s) == SPAN_KEYS for s in spans)
    check_spans(SENTENCE, spans)
    assert {s["label"] for s in spans} == {"method"}
    assert triples(spans) == triples(concepts["concepts"])
    # One text a request, sequentially: the same batch of one as /tag, so the very same scores.
    assert [s["score"] for s in spans] == [s["score"] for s in concepts["concepts"]]


def test_a_built_in_task_through_the_generic_route(client: httpx.Client) -> None:
    concepts = client.post("/tag", json={"text": SENTENCE}).json()
    body = client.post("/tasks/concepts", json={"text": SENTENCE}).json()
    assert body["model"] == concepts["model"]
    assert [(*t, "concept") for t in triples(concepts["concepts"])] == [
        (*t, s["label"]) for t, s in zip(triples(body["spans"]), body["spans"], strict=True)
    ]


@pytest.mark.parametrize("task", ["abbrev", "acronyms"])
def test_a_two_label_task_answers_raw_short_and_long_spans(client: httpx.Client, task: str) -> None:
    """The copied acronyms model through /tasks: every short form and long form of /acronyms, each
    with its label, unpaired and in text order."""
    acronyms = client.post("/acronyms", json={"text": SENTENCE}).json()
    longs = [a["long_form"] for a in acronyms["acronyms"] if a["long_form"]] + acronyms["long_forms"]
    expected = sorted(
        {(*t, "short") for t in triples(acronyms["acronyms"])} | {(*t, "long") for t in triples(longs)}
    )
    assert [t[2] for t in expected if t[3] == "short"] == ["CNNs", "CNL", "SVM"]  # the model tags them
    body = client.post(f"/tasks/{task}", json={"text": SENTENCE}).json()
    assert body["model"]["task"] == task
    spans = body["spans"]
    check_spans(SENTENCE, spans)
    assert [(s["start"], s["end"], s["text"], s["label"]) for s in spans] == expected


def test_batch_answers_in_order(client: httpx.Client) -> None:
    r = client.post("/tasks/abbrev", json={"texts": [SENTENCE, "", OTHER], "min_score": 0})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"results", "model"} and body["model"]["task"] == "abbrev"
    assert body["results"][1] == {"spans": []}
    for text, result in zip((SENTENCE, OTHER), (body["results"][0], body["results"][2]), strict=True):
        single = client.post("/tasks/abbrev", json={"text": text}).json()["spans"]
        assert single and set(result) == {"spans"}
        assert triples(result["spans"]) == triples(single)


def test_min_score_and_body_rules_as_on_tag(client: httpx.Client) -> None:
    spans = client.post("/tasks/methods", json={"text": SENTENCE}).json()["spans"]
    scores = sorted({s["score"] for s in spans})
    assert len(scores) >= 2, "one score for every span: the filter checks nothing"
    # Midway between two answered scores: answers round to 4 decimals, the filter reads the raw
    # score, so a cut equal to an answered score could fall on either side of it.
    cut = (scores[len(scores) // 2 - 1] + scores[len(scores) // 2]) / 2
    kept = client.post("/tasks/methods", json={"text": SENTENCE, "min_score": cut}).json()["spans"]
    assert kept == [s for s in spans if s["score"] > cut] and 0 < len(kept) < len(spans)
    assert error(client.post("/tasks/methods", json={"text": "a", "minscore": 1})) == (
        422, "validation_error", "minscore: Extra inputs are not permitted",
    )  # fmt: skip
    assert error(client.post("/tasks/methods", json={"texts": ["x"] * 257}))[:2] == (422, "limit_exceeded")
    assert error(client.get("/tasks/methods")) == (
        405, "method_not_allowed", "GET is not allowed on /tasks/methods; allowed: POST",
    )  # fmt: skip


def test_unknown_task_is_404_naming_the_known_ones(client: httpx.Client) -> None:
    assert error(client.post("/tasks/nope", json={"text": "a"})) == (
        404, "not_found", "no task 'nope'; known tasks: concepts, acronyms, abbrev, broken, methods",
    )  # fmt: skip
    # The ignored directory is no task either, whatever its files.
    assert error(client.post("/tasks/Not A Task", json={"text": "a"}))[:2] == (404, "not_found")


# -------------------------------------------------------------------------- a broken user task


def test_a_broken_user_task_is_reported_and_the_others_serve(
    client: httpx.Client, user_artifacts: Path, service_log: Path
) -> None:
    reason = f"{version_dir(user_artifacts, 'broken') / 'labels.json'}: span label 'short' appears twice"
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["unavailable"] == {"broken": reason}
    assert set(ready.json()["models"]) == {"concepts", "acronyms", "abbrev", "methods"}
    assert error(client.post("/tasks/broken", json={"text": "a"})) == (
        503, "model_unavailable", f"the broken model is not available: {reason}",
    )  # fmt: skip
    for route in ("/tag", "/acronyms", "/tasks/methods"):
        assert client.post(route, json={"text": SENTENCE}).status_code == 200, route
    lines = [json.loads(line) for line in service_log.read_text().splitlines() if line.startswith("{")]
    assert any(line.get("message") == f"cannot serve broken: {reason}" for line in lines)
    ignored = [line["message"] for line in lines if line.get("message", "").startswith("ignoring ")]
    assert ignored == [f"ignoring {user_artifacts / 'Not A Task'}: not a task name ([a-z][a-z0-9_-]{{0,39}})"]


# --------------------------------------------------------------------------- /info, metrics, schema


def test_info_lists_every_task(client: httpx.Client) -> None:
    models = client.get("/info").json()["models"]
    assert list(models) == ["concepts", "acronyms", "abbrev", "broken", "methods"]
    expected = {"concepts": ["concept"], "acronyms": ["short", "long"], "abbrev": ["short", "long"],
                "methods": ["method"]}  # fmt: skip
    for task, labels in expected.items():
        model = models[task]
        assert model["status"] == "ready" and model["span_labels"] == labels, task
        assert model["builtin"] == (task in ("concepts", "acronyms")) and model["route"] == f"/tasks/{task}"
        assert model["version"].startswith("tiny-") and model["manifest"]["task"] == task
    broken = models["broken"]
    assert broken["status"] == "failed" and broken["reason"].endswith("span label 'short' appears twice")
    assert "version" not in broken and broken["builtin"] is False


def test_metrics_name_the_task_and_one_route(client: httpx.Client) -> None:
    client.post("/tasks/methods", json={"text": SENTENCE})
    client.post("/tasks/nope", json={"text": "a"})
    text = client.get("/metrics").text
    for series in (
        'aligntag_tokenization_seconds_count{model="methods"}',
        'aligntag_inference_seconds_count{model="abbrev"}',
        'aligntag_requests_total{route="/tasks/{task}",status="200"}',
        'aligntag_requests_total{route="/tasks/{task}",status="404"}',
        'aligntag_model_info{onnx_file="model.int8.onnx",task="methods",version="tiny-',
        'aligntag_queue_depth{model="methods"} 0.0',
    ):
        assert series in text, series
    assert "/tasks/nope" not in text and "/tasks/methods" not in text


def test_openapi_lists_the_route_with_named_schemas(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/tasks/{task}"]["post"]
    assert [p["name"] for p in post["parameters"]] == ["task"]
    ok = post["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["anyOf"] == [{"$ref": "#/components/schemas/TaskResponse"},
                           {"$ref": "#/components/schemas/TaskBatchResponse"}]  # fmt: skip
    span = spec["components"]["schemas"]["LabelledSpanOut"]
    assert list(span["properties"]) == SPAN_KEYS
    assert post["responses"]["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }


# ------------------------------------------------------------------------ reload and pinning


def test_reload_serves_a_new_task_and_its_new_versions(make_client: MakeClient, artifacts_copy: Path) -> None:
    client = make_client(artifacts_dir=artifacts_copy)
    assert error(client.post("/tasks/methods", json={"text": SENTENCE}))[:2] == (404, "not_found")
    first = copy_as_user_task(artifacts_copy, "concepts", "methods", labels=["O", "B-method", "I-method"])
    result = client.post("/admin/reload").json()["models"]
    assert result["methods"] == {"outcome": "swapped", "version": first.name, "previous": None}
    assert result["concepts"]["outcome"] == "unchanged"
    answer = client.post("/tasks/methods", json={"text": SENTENCE}).json()
    assert answer["model"]["version"] == first.name and answer["spans"]
    assert client.get("/info").json()["models"]["methods"]["reload"]["last"]["outcome"] == "swapped"

    copy_as_user_task(
        artifacts_copy, "concepts", "methods", labels=["O", "B-method", "I-method"],
        version="methods-v2", created="2099-01-01T00:00:00Z",
    )  # fmt: skip
    result = client.post("/admin/reload").json()["models"]
    assert result["methods"] == {"outcome": "swapped", "version": "methods-v2", "previous": first.name}
    assert client.post("/tasks/methods", json={"text": SENTENCE}).json()["model"]["version"] == "methods-v2"

    # A new broken task is refused; everything else keeps serving and the service stays ready.
    copy_as_user_task(artifacts_copy, "acronyms", "broken", labels=["B-short", "I-short", "O"])
    result = client.post("/admin/reload").json()["models"]
    assert result["broken"]["outcome"] == "refused" and result["broken"]["version"] is None
    assert result["broken"]["reason"].endswith("""labels.json: the first label must be "O", got 'B-short'""")
    ready = client.get("/ready")
    assert ready.status_code == 200 and set(ready.json()["unavailable"]) == {"broken"}
    assert error(client.post("/tasks/broken", json={"text": "a"}))[:2] == (503, "model_unavailable")


def test_a_pinned_user_task_version_is_served(make_client: MakeClient, artifacts_copy: Path) -> None:
    old = copy_as_user_task(artifacts_copy, "acronyms", "abbrev", version="abbrev-old")
    copy_as_user_task(
        artifacts_copy, "acronyms", "abbrev", version="abbrev-new", created="2099-01-01T00:00:00Z"
    )
    newest = make_client(artifacts_dir=artifacts_copy)
    assert newest.post("/tasks/abbrev", json={"text": "a"}).json()["model"]["version"] == "abbrev-new"
    pinned = make_client(artifacts_dir=artifacts_copy, task_versions={"abbrev": old.name, "ghost": "v1"})
    assert pinned.post("/tasks/abbrev", json={"text": "a"}).json()["model"]["version"] == "abbrev-old"
    # A pin names a task the service should have: a missing one is reported, not ignored.
    missing = artifacts_copy / "ghost" / "v1" / "manifest.json"
    assert pinned.get("/ready").json()["unavailable"] == {
        "ghost": f"{missing}: not found (ALIGNTAG_TASK_VERSIONS['ghost'] = 'v1'); "
        "name a complete version directory or unset the setting"
    }


def test_the_watch_serves_a_new_task_directory(tiny_artifacts_dir: Path, tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    shutil.copytree(tiny_artifacts_dir, artifacts)
    with serving(artifacts, tmp_path / "service.log", {"ALIGNTAG_RELOAD_POLL_SECONDS": "0.2"}) as base_url:
        assert httpx.post(f"{base_url}/tasks/abbrev", json={"text": SENTENCE}).status_code == 404
        version = copy_as_user_task(artifacts, "acronyms", "abbrev")
        deadline = time.monotonic() + 30
        while (
            r := httpx.post(f"{base_url}/tasks/abbrev", json={"text": SENTENCE}, timeout=10)
        ).status_code != 200:
            assert time.monotonic() < deadline, r.text
            time.sleep(0.1)
        assert r.json()["model"] == {"task": "abbrev", "version": version.name}
        assert {s["label"] for s in r.json()["spans"]} == {"short", "long"}
        last = httpx.get(f"{base_url}/info", timeout=10).json()["models"]["abbrev"]["reload"]["last"]
        assert (last["outcome"], last["trigger"], last["version"]) == ("swapped", "watch", version.name)
