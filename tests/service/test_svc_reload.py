"""Model updates without a restart (service/reload.py): POST /admin/reload and the file watch.

New versions are made the way the contract allows: a real version directory copied under a new
name, its manifest's `version` and `created` edited (the manifest is not among the files its
checksums cover), and moved into the task directory in one rename.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from svc_helpers import ControlledRuntimes, MakeClient, flip_byte, version_dir
from testlib import free_port, start_service, wait_ready

TASKS = ("concepts", "acronyms")
ROUTES = {"concepts": "/tag", "acronyms": "/acronyms"}
TEXTS = {
    "concepts": "An abstract syntax tree is built by the parser.",
    "acronyms": "We use convolutional neural networks (CNNs) here.",
}


def add_version(source: Path, name: str, created: str, corrupt: bool = False) -> Path:
    """Copy the version directory `source` to a sibling `name` with a consistent manifest; with
    `corrupt`, one byte of the served ONNX file flipped (its checksum no longer matches)."""
    staging = source.parent.parent / f".staging-{name}"
    shutil.copytree(source, staging)
    manifest_path = staging / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["version"], manifest["created"] = name, created
    manifest_path.write_text(json.dumps(manifest, indent=2))
    if corrupt:
        flip_byte(staging / manifest["serve"]["onnx_file"], offset=200)
    target = source.parent / name
    staging.rename(target)  # appears complete, at once
    return target


def created_at(i: int) -> str:
    return f"2099-01-01T00:00:{i:02d}.000000Z"  # newer than any real build


def metric(base_url: str, name: str, headers: dict[str, str] | None = None) -> float | None:
    text = httpx.get(f"{base_url}/metrics", headers=headers, timeout=10).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


@contextmanager
def service(artifacts_dir: Path, extra_env: dict[str, str]) -> Iterator[tuple[str, list[str]]]:
    """A real `python -m service` process; yields its URL and its log lines (complete once it has
    stopped). The log is read as it comes: a full pipe would block the service's event loop."""
    port = free_port()
    proc = start_service(artifacts_dir, port, extra_env)
    base_url = f"http://127.0.0.1:{port}"
    log_lines: list[str] = []
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: log_lines.extend(proc.stdout or ()), daemon=True)
    reader.start()
    try:
        wait_ready(base_url, proc)
        yield base_url, log_lines
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        reader.join(timeout=10)


# ------------------------------------------------------------------------------------ in process


def test_admin_reload_is_behind_the_api_key_and_changes_nothing_without_a_new_version(
    make_client: MakeClient,
) -> None:
    client = make_client(api_key="s3cret")
    assert client.post("/admin/reload").status_code == 401
    assert client.post("/admin/reload", headers={"Authorization": "Bearer nope"}).status_code == 401
    before = {t: client.app.state.models[t] for t in TASKS}  # type: ignore[attr-defined]
    response = client.post("/admin/reload", headers={"Authorization": "Bearer s3cret"})
    assert response.status_code == 200
    body = response.json()["models"]
    assert {t: body[t]["outcome"] for t in TASKS} == {"concepts": "unchanged", "acronyms": "unchanged"}
    assert all(client.app.state.models[t] is before[t] for t in TASKS)  # type: ignore[attr-defined]
    info = client.get("/info").json()["models"]
    assert info["concepts"]["reload"]["last"]["outcome"] == "unchanged"
    assert info["concepts"]["reload"]["poll_seconds"] == 0


def test_in_flight_request_finishes_on_the_version_it_started_with(
    make_client: MakeClient, artifacts_copy: Path
) -> None:
    runtimes = ControlledRuntimes()
    client = make_client(runtime_factory=runtimes, artifacts_dir=artifacts_copy)
    state = client.app.state  # type: ignore[attr-defined]
    old_model, old_runtime = state.models["concepts"], runtimes["concepts"]
    old_version = old_model.version
    new_version = f"{old_version}-next"
    add_version(version_dir(artifacts_copy, "concepts"), new_version, created_at(1))
    old_runtime.gate.clear()
    old_runtime.entered.clear()
    with ThreadPoolExecutor(2) as pool:
        in_flight = pool.submit(client.post, "/tag", json={"text": TEXTS["concepts"]})
        assert old_runtime.entered.wait(20)  # the request is inside the old model's batch
        reload = pool.submit(client.post, "/admin/reload")
        deadline = time.monotonic() + 60
        while state.models["concepts"] is old_model:
            assert time.monotonic() < deadline, "no swap"
            time.sleep(0.01)
        # Swapped while the old batch is still blocked: new requests go to the new version at once.
        assert runtimes["concepts"] is not old_runtime
        answer = client.post("/tag", json={"text": TEXTS["concepts"]})
        assert answer.status_code == 200 and answer.json()["model"]["version"] == new_version
        assert client.get("/info").json()["models"]["concepts"]["version"] == new_version
        time.sleep(0.2)
        assert not reload.done()  # the old batcher drains before it is closed
        assert old_model.batcher._worker is not None
        old_runtime.gate.set()
        first = in_flight.result(timeout=20)
        assert first.status_code == 200 and first.json()["model"]["version"] == old_version
        result = reload.result(timeout=20).json()["models"]
    assert result["concepts"] == {"outcome": "swapped", "version": new_version, "previous": old_version}
    assert result["acronyms"]["outcome"] == "unchanged"
    assert old_model.batcher._worker is None  # stopped after draining
    assert old_model.active == 0


# ------------------------------------------------------------------------------ real processes


@dataclass
class Answer:
    task: str
    sent: float
    received: float
    status: int | str  # HTTP status, or the exception's name
    version: str | None


def steady_load(
    base_url: str, headers: dict[str, str], stop: threading.Event, out: list[Answer], i: int
) -> None:
    task = TASKS[i % 2]
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as http:
        while not stop.is_set():
            sent = time.monotonic()
            try:
                r = http.post(ROUTES[task], json={"text": TEXTS[task]})
                version = r.json().get("model", {}).get("version") if r.status_code == 200 else None
                out.append(Answer(task, sent, time.monotonic(), r.status_code, version))
            except Exception as e:  # a reset connection or a timeout is a failed request too
                out.append(Answer(task, sent, time.monotonic(), type(e).__name__, None))


def test_five_swaps_under_steady_load(tiny_artifacts_dir: Path, tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    shutil.copytree(tiny_artifacts_dir, artifacts)
    sources = {task: version_dir(artifacts, task) for task in TASKS}
    key = {"Authorization": "Bearer swap-key"}
    swaps = 5
    with service(artifacts, {"ALIGNTAG_API_KEY": "swap-key"}) as (base_url, log_lines):
        first = httpx.get(f"{base_url}/info", timeout=10).json()["models"]
        # served[task]: (version, earliest moment it may answer, latest moment it may answer)
        timeline: dict[str, list[list[Any]]] = {t: [[first[t]["version"], 0.0, float("inf")]] for t in TASKS}
        answers: list[Answer] = []
        stop = threading.Event()
        threads = [
            threading.Thread(target=steady_load, args=(base_url, key, stop, answers, i)) for i in range(4)
        ]
        for thread in threads:
            thread.start()
        try:
            time.sleep(1.0)
            for i in range(1, swaps + 1):
                names = {t: f"{sources[t].name}-swap{i}" for t in TASKS}
                for t in TASKS:
                    add_version(sources[t], names[t], created_at(i))
                began = time.monotonic()
                response = httpx.post(f"{base_url}/admin/reload", headers=key, timeout=60)
                ended = time.monotonic()
                assert response.status_code == 200, response.text
                result = response.json()["models"]
                for t in TASKS:
                    assert result[t]["outcome"] == "swapped" and result[t]["version"] == names[t], result
                    timeline[t][-1][2] = ended  # the old version answers until the reload returns
                    timeline[t].append([names[t], began, float("inf")])  # the new one from its start
                time.sleep(1.0)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
        info = httpx.get(f"{base_url}/info", timeout=10).json()["models"]
        reloads = {
            t: metric(base_url, f'aligntag_model_reloads_total{{outcome="swapped",task="{t}"}}')
            for t in TASKS
        }

    failed = [a for a in answers if a.status != 200]
    assert not failed, f"{len(failed)} failed requests, e.g. {failed[:5]}"
    wrong = []
    seen: dict[str, set[str]] = {t: set() for t in TASKS}
    for a in answers:
        seen[a.task].add(str(a.version))
        windows = [(start, end) for version, start, end in timeline[a.task] if version == a.version]
        # The answer names a version that was served at some moment between sending and receiving.
        if not any(start <= a.received and a.sent <= end for start, end in windows):
            wrong.append(a)
    assert not wrong, f"{len(wrong)} answers name a version not served at the time, e.g. {wrong[:5]}"
    for t in TASKS:
        served = [version for version, _, _ in timeline[t]]
        assert seen[t] == set(served), (t, seen[t], served)  # every version answered some requests
        assert info[t]["version"] == served[-1] and info[t]["reload"]["last"]["outcome"] == "swapped"
        assert reloads[t] == swaps
    assert sum("reloaded concepts:" in line for line in log_lines) == swaps
    per_version = {
        t: {v: sum(a.version == v for a in answers if a.task == t) for v in seen[t]} for t in TASKS
    }
    print(
        f"\nswap test: {len(answers)} requests, {len(failed)} failed, {swaps} swaps per task, "
        f"versions seen {json.dumps(per_version)}"
    )


def test_broken_version_is_refused_and_the_old_keeps_serving(
    tiny_artifacts_dir: Path, tmp_path: Path
) -> None:
    artifacts = tmp_path / "artifacts"
    shutil.copytree(tiny_artifacts_dir, artifacts)
    source = version_dir(artifacts, "concepts")
    refused_metric = 'aligntag_model_reloads_total{outcome="refused",task="concepts"}'
    with service(artifacts, {"ALIGNTAG_RELOAD_POLL_SECONDS": "0.2"}) as (base_url, log_lines):
        old = httpx.get(f"{base_url}/info", timeout=10).json()["models"]["concepts"]["version"]
        add_version(source, "broken", created_at(1), corrupt=True)

        deadline = time.monotonic() + 30
        while True:  # the watch finds it
            info = httpx.get(f"{base_url}/info", timeout=10).json()["models"]["concepts"]
            if (info["reload"]["last"] or {}).get("outcome") == "refused":
                break
            assert time.monotonic() < deadline, info
            time.sleep(0.1)
        last = info["reload"]["last"]
        assert last["trigger"] == "watch" and last["version"] == "broken"
        assert re.search(r"broken/model[.\w]*\.onnx: sha256 does not match the manifest", last["reason"]), (
            last
        )
        assert info["version"] == old and info["status"] == "ready"
        answer = httpx.post(f"{base_url}/tag", json={"text": TEXTS["concepts"]}, timeout=10)
        assert answer.status_code == 200 and answer.json()["model"]["version"] == old
        assert httpx.get(f"{base_url}/ready", timeout=10).status_code == 200
        assert metric(base_url, refused_metric) == 1
        assert metric(base_url, 'aligntag_model_reload_refused{task="concepts"}') == 1
        served = f'aligntag_model_info{{onnx_file="{info["onnx_file"]}",task="concepts",version="{old}"}}'
        assert metric(base_url, served) == 1
        time.sleep(1.0)
        assert metric(base_url, refused_metric) == 1  # the watch does not retry unchanged files

        result = httpx.post(f"{base_url}/admin/reload", timeout=60).json()["models"]  # an explicit retry
        assert result["concepts"]["outcome"] == "refused" and result["concepts"]["version"] == old
        assert "sha256 does not match" in result["concepts"]["reason"]
        assert metric(base_url, refused_metric) == 2

        add_version(source, "fixed", created_at(2))  # a good, newer version: the watch serves it
        deadline = time.monotonic() + 30
        while httpx.get(f"{base_url}/info", timeout=10).json()["models"]["concepts"]["version"] != "fixed":
            assert time.monotonic() < deadline, "the watch did not pick up the new version"
            time.sleep(0.1)
        answer = httpx.post(f"{base_url}/tag", json={"text": TEXTS["concepts"]}, timeout=10)
        assert answer.json()["model"]["version"] == "fixed"
        assert metric(base_url, 'aligntag_model_reloads_total{outcome="swapped",task="concepts"}') == 1
        assert metric(base_url, 'aligntag_model_reload_refused{task="concepts"}') == 0
        assert httpx.get(f"{base_url}/info", timeout=10).json()["models"]["acronyms"]["version"] != "fixed"
    refusals = [json.loads(line) for line in log_lines if "reload of concepts refused" in line]
    assert len(refusals) == 2 and "sha256 does not match" in refusals[0]["reason"], refusals
