"""The page at `/` in a real headless browser (Debian `chromium`, driven over CDP by cdp_browser.py),
against the real service process on the tiny artifacts; and the offline API docs.

The browser test types a text that has characters outside the BMP before and between the spans
(two UTF-16 units each in JavaScript, one code point in the API's offsets), submits it, reads the
highlights back from the DOM, and checks them against the API's own answer for the same text:
offsets (counted in code points from the DOM's text before each highlight), text, label, score and
the short form -> long form links. It saves a screenshot as `page.png` in the test's tmp_path.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cdp_browser import Browser
from svc_helpers import copy_as_user_task
from testlib import serving

# Astral characters (an emoji, a mathematical double-struck A) before and between the spans: a
# page that used the API's code-point offsets as UTF-16 indices would highlight the wrong text.
TEXT = (
    "\U0001f9ec Patients with type 2 diabetes mellitus (T2DM) were enrolled. \U0001d538 We train "
    "convolutional neural networks (CNNs) and support vector machines (SVM) on the T2DM cohort, "
    "\U0001f600 then compare them on controlled natural language ( CNL ) corpora."
)

# Every highlight in the page, with the text before it in its panel (offsets are computed from it
# in Python, where len() counts code points) and what the page says about it.
READ_MARKS = """
(() => [...document.querySelectorAll('#results .panel')].flatMap((panel) => {
  const box = panel.querySelector('.text');
  return [...box.querySelectorAll('mark')].map((m) => {
    const before = document.createRange();
    before.setStart(box, 0);
    before.setEndBefore(m);
    return {task: panel.dataset.task, id: m.dataset.ann, kind: m.dataset.kind, label: m.dataset.label,
            partners: m.dataset.partners ? m.dataset.partners.split(' ') : [], title: m.title,
            before: before.toString(), text: m.textContent, classes: [...m.classList]};
  });
}))()
"""


@pytest.fixture(scope="module")
def chromium_available() -> None:
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        pytest.fail("chromium not found: `make debian-deps` installs Debian's chromium package")


@pytest.fixture
def browser(tmp_path: Path, chromium_available: None) -> Iterator[Browser]:
    with Browser(tmp_path) as b:
        for domain in ("Page", "Runtime", "Network", "Log"):
            b.send(f"{domain}.enable")
        yield b


def submit(browser: Browser, base_url: str, text: str, task: str, key: str = "") -> str:
    browser.navigate(base_url + "/")
    browser.type_text("#text", text)
    assert browser.evaluate("document.getElementById('text').value") == text
    # A user task's choice is added once the page has read /info.
    browser.wait_for(f"document.querySelector('#task option[value=\"{task}\"]') !== null")
    browser.evaluate(
        f"(() => {{ const s = document.getElementById('task'); s.value = {json.dumps(task)};"
        " s.dispatchEvent(new Event('change')); })()"
    )
    if key:
        browser.type_text("#api-key", key)
    browser.click("#submit")
    state: str = browser.wait_for(
        "['done', 'error'].includes(document.body.dataset.state) && document.body.dataset.state"
    )
    return state


def score_in(title: str) -> float:
    match = re.search(r"score (\d+\.\d+)", title)
    assert match, title
    return float(match.group(1))


def as_marks(text: str, marks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """DOM highlights as API-style spans: code-point offsets from the text that precedes them."""
    out = []
    for m in marks:
        start = len(m["before"])
        assert text[start : start + len(m["text"])] == m["text"], m
        out.append({**m, "start": start, "end": start + len(m["text"]), "score": score_in(m["title"])})
    return out


def test_page_highlights_what_the_api_answers(running_service: str, browser: Browser, tmp_path: Path) -> None:
    api_tag = httpx.post(f"{running_service}/tag", json={"text": TEXT}, timeout=30).json()
    api_acr = httpx.post(f"{running_service}/acronyms", json={"text": TEXT}, timeout=30).json()
    # The tiny model really finds things here, and they lie after astral characters.
    assert api_tag["concepts"], api_tag
    paired = [a for a in api_acr["acronyms"] if a["long_form"] is not None]
    assert paired, api_acr
    assert TEXT.index("\U0001f9ec") < min(s["start"] for s in api_tag["concepts"] + api_acr["acronyms"])

    assert submit(browser, running_service, TEXT, "both") == "done"
    marks = as_marks(TEXT, browser.evaluate(READ_MARKS))
    shot = browser.screenshot(tmp_path / "page.png")

    # Concepts: exactly the API's spans, in order, with their labels and scores.
    concepts = [m for m in marks if m["task"] == "tag"]
    assert [(m["start"], m["end"], m["text"], m["kind"], m["label"]) for m in concepts] == [
        (s["start"], s["end"], s["text"], "concept", s.get("label", "concept")) for s in api_tag["concepts"]
    ]
    for m, s in zip(concepts, api_tag["concepts"], strict=True):
        assert m["score"] == pytest.approx(s["score"], abs=0.02)

    # Acronyms: every short form, every long form (paired or not), and each short form linked to
    # the highlight of its own long form.
    acronym_marks = [m for m in marks if m["task"] == "acronyms"]
    by_id = {m["id"]: m for m in acronym_marks}
    shorts = [m for m in acronym_marks if m["kind"] == "short"]
    assert [(m["start"], m["end"], m["text"], m["label"]) for m in shorts] == [
        (a["start"], a["end"], a["text"], a.get("label", "short form")) for a in api_acr["acronyms"]
    ]
    for m, a in zip(shorts, api_acr["acronyms"], strict=True):
        assert m["score"] == pytest.approx(a["score"], abs=0.02)
        if a["long_form"] is None:
            assert m["partners"] == [] and "no long form" in m["title"]
            continue
        (partner,) = m["partners"]
        long = by_id[partner]
        assert (long["kind"], long["start"], long["end"], long["text"]) == (
            "long", a["long_form"]["start"], a["long_form"]["end"], a["long_form"]["text"],
        )  # fmt: skip
        assert m["id"] in long["partners"]
        assert f"long form: \u201c{a['long_form']['text']}\u201d" in m["title"]
    api_longs = {(s["start"], s["end"], s["text"]) for s in api_acr["long_forms"]} | {
        (a["long_form"]["start"], a["long_form"]["end"], a["long_form"]["text"]) for a in paired
    }
    longs = [m for m in acronym_marks if m["kind"] == "long"]
    assert sorted((m["start"], m["end"], m["text"]) for m in longs) == sorted(api_longs)
    assert len(longs) == len(api_longs)

    # Hovering a short form lights up its long form; the raw JSON is the API's answer.
    first = next(m for m in shorts if m["partners"])
    browser.hover(f'#results mark[data-ann="{first["id"]}"]')
    lit = browser.evaluate("[...document.querySelectorAll('mark.linked')].map((m) => m.dataset.ann)")
    assert sorted(lit) == sorted([first["id"], first["partners"][0]])
    raw = json.loads(browser.evaluate("document.getElementById('raw').textContent"))
    assert set(raw) == {"POST /tag", "POST /acronyms"}
    assert [(s["start"], s["end"]) for s in raw["POST /tag"]["concepts"]] == [
        (s["start"], s["end"]) for s in api_tag["concepts"]
    ]
    browser.screenshot(tmp_path / "page-hover.png")

    # Nothing from another origin was requested, and the page raised no error.
    urls = browser.requested_urls()
    assert any(u.endswith("/static/page.js") for u in urls), urls
    assert all(u.startswith(running_service + "/") for u in urls), urls
    assert browser.page_errors() == []
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")


def test_page_one_task_and_empty_text(running_service: str, browser: Browser) -> None:
    assert submit(browser, running_service, TEXT, "concepts") == "done"
    assert browser.evaluate(
        "[...document.querySelectorAll('#results .panel')].map((p) => p.dataset.task)"
    ) == ["tag"]
    assert submit(browser, running_service, "   ", "acronyms") == "done"
    heading = browser.evaluate("document.querySelector('#results .panel h2').textContent")
    assert heading.startswith("Acronyms: nothing found")


def test_page_escapes_markup(running_service: str, browser: Browser) -> None:
    """User text reaches the DOM as text: markup in it is shown, never parsed."""
    text = 'Support vector machines (SVM) <img src=x onerror="window.pwned=1"> <b>bold</b> & more.'
    assert submit(browser, running_service, text, "both") == "done"
    assert browser.evaluate("document.querySelectorAll('#results img, #results b').length") == 0
    assert browser.evaluate("window.pwned === undefined")
    shown = browser.evaluate("document.querySelector('#results .panel .text').textContent")
    assert shown == text


@pytest.fixture(scope="module")
def keyed_service(tiny_artifacts_dir: Path) -> Iterator[str]:
    log = tiny_artifacts_dir.parent / "keyed-service.log"
    with serving(tiny_artifacts_dir, log, extra_env={"ALIGNTAG_API_KEY": "page-s3cret"}) as base_url:
        yield base_url


def test_page_sends_the_api_key(keyed_service: str, browser: Browser) -> None:
    browser.navigate(keyed_service + "/")
    browser.wait_for("document.getElementById('api-key').required")  # from /info: a key is required
    assert submit(browser, keyed_service, TEXT, "both", key="wrong") == "error"
    status = browser.evaluate("document.getElementById('status').textContent")
    assert "401 unauthorized: invalid API key" in status
    assert submit(browser, keyed_service, TEXT, "both", key="page-s3cret") == "done"
    assert browser.evaluate("document.querySelectorAll('#results mark').length") > 0


@pytest.fixture(scope="module")
def user_task_service(tiny_artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A service that also serves `abbrev`, a user task copied from the acronyms model."""
    artifacts = tmp_path_factory.mktemp("page-user-task") / "artifacts"
    shutil.copytree(tiny_artifacts_dir, artifacts)
    copy_as_user_task(artifacts, "acronyms", "abbrev")
    with serving(artifacts, artifacts.parent / "service.log") as base_url:
        yield base_url


def test_page_offers_user_tasks_with_their_labels(
    user_task_service: str, browser: Browser, tmp_path: Path
) -> None:
    api = httpx.post(f"{user_task_service}/tasks/abbrev", json={"text": TEXT}, timeout=30).json()
    assert {s["label"] for s in api["spans"]} == {"short", "long"}  # both labels to look at
    assert submit(browser, user_task_service, TEXT, "task:abbrev") == "done"
    option = browser.evaluate("document.querySelector('#task option[value=\"task:abbrev\"]').textContent")
    assert option == "abbrev (short, long)"
    marks = as_marks(TEXT, browser.evaluate(READ_MARKS))
    assert [(m["task"], m["kind"], m["start"], m["end"], m["text"], m["label"]) for m in marks] == [
        ("tasks/abbrev", "span", s["start"], s["end"], s["text"], s["label"]) for s in api["spans"]
    ]
    for m, s in zip(marks, api["spans"], strict=True):
        assert m["score"] == pytest.approx(s["score"], abs=0.02)
        assert m["classes"] == ["span", "c0" if s["label"] == "short" else "c1"]  # a colour per label
    heading = browser.evaluate("document.querySelector('#results .panel h2').textContent")
    for label in ("short", "long"):  # the panel counts each label
        n = sum(s["label"] == label for s in api["spans"])
        assert f"{n} {label}{'' if n == 1 else 's'}" in heading, heading
    assert heading.startswith("abbrev: ") and " \u2014 abbrev " in heading
    browser.screenshot(tmp_path / "page-user-task.png")
    assert browser.page_errors() == []


# ------------------------------------------------------------------------------------ offline docs


LOCAL_ASSET = re.compile(r'(?:src|href)="([^"]+)"')


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_use_only_local_assets(running_service: str, path: str) -> None:
    page = httpx.get(running_service + path, timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "cdn" not in page.text.lower() and "googleapis" not in page.text
    assert not re.search(r"https?://", page.text), page.text
    assets = LOCAL_ASSET.findall(page.text)
    assert assets and all(a.startswith("/static/docs/") for a in assets), assets
    expected = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
    for asset in assets:
        r = httpx.get(running_service + asset, timeout=10)
        assert r.status_code == 200, asset
        assert r.headers["content-type"].startswith(expected[Path(asset).suffix]), (asset, r.headers)
        assert len(r.content) > 1000


def test_docs_render_offline_in_the_browser(running_service: str, browser: Browser, tmp_path: Path) -> None:
    """Swagger UI draws both model routes from /openapi.json with nothing but the service's files."""
    browser.navigate(running_service + "/docs")
    browser.wait_for("document.querySelectorAll('.opblock').length >= 2")
    summaries = browser.evaluate(
        "[...document.querySelectorAll('.opblock-summary-path')].map((e) => e.textContent)"
    )
    assert {"/tag", "/acronyms"} <= {s.replace("\u200b", "") for s in summaries}
    urls = browser.requested_urls()
    assert all(u.startswith(running_service + "/") for u in urls), urls
    browser.screenshot(tmp_path / "docs.png")


def test_page_routes_are_not_in_the_schema(running_service: str) -> None:
    paths = httpx.get(running_service + "/openapi.json", timeout=10).json()["paths"]
    assert not {"/", "/docs", "/redoc"} & set(paths)
    assert not [p for p in paths if p.startswith("/static")]


def test_static_files_only_the_listed_ones(running_service: str) -> None:
    for path in ("/static/index.html", "/static/../app.py", "/static/docs/index.html", "/static/docs/x.js"):
        r = httpx.get(running_service + path, timeout=10)
        assert r.status_code == 404, path
        assert r.json()["error"]["type"] == "not_found"
    page = httpx.get(running_service + "/", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in page.headers["content-security-policy"]
