"""Model updates without a restart: `POST /admin/reload` and the periodic watch
(`ALIGNTAG_RELOAD_POLL_SECONDS`).

Reloading a task chooses its version directory as start-up does (the version its setting pins,
else the complete one with the newest `created`). When that is the directory already served,
nothing happens. Otherwise the new version is loaded exactly as at start-up, in a thread while the
old one keeps serving: manifest and checksums verified, ONNX Runtime session created, warm-up run.
Only then, in the event loop and with no await in between, its batcher starts and it takes the
task's slot in the app's models: every request that looks the model up from that instant gets the
new version, and names it in its answer. Requests that already hold the old model finish on it
(`Model.active`); once they have, the old batcher, whose queue is then empty, is stopped.

A version that fails any check is refused: the old version keeps serving, and the reason goes to
the log (one error line), to `/info` (`reload` of the task) and to the metrics
(`aligntag_model_reloads_total{outcome="refused"}`, `aligntag_model_reload_refused`).

The watch stats the files under each task directory every poll interval. It reloads a task when
that listing has changed since the last reload and then stayed the same for one more interval,
so that a version directory still being copied in is left alone until the copy has finished.
A refused version is tried again by the watch only when its files change, and by every
`POST /admin/reload`.

New tasks: both the reload and the watch look for task directories that hold a complete version
(`artifacts.find_tasks`) and serve a new one as a task that was not serving yet (the watch, once
its listing has stayed the same for one interval). A task is never dropped: a task directory that
disappears leaves its model serving, and its next reload is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service.artifacts import BUILTIN_TASKS, ArtifactError, find_tasks, find_version_dir
from service.metrics import Metrics
from service.models import Model, RuntimeFactory, load_model, pinned_version, start_batcher
from service.settings import Settings
from textfeatures.tasks import TASK_NAME

log = logging.getLogger("aligntag.reload")

Signature = tuple[tuple[str, str, int, int], ...]


def task_signature(task_dir: Path) -> Signature:
    """(directory, file, size, mtime) of every file one level below the task directory."""
    entries: list[tuple[str, str, int, int]] = []
    try:
        for directory in sorted(task_dir.iterdir()):
            if directory.is_dir():
                for f in sorted(directory.iterdir()):
                    st = f.stat()
                    entries.append((directory.name, f.name, st.st_size, st.st_mtime_ns))
    except OSError as e:  # the directory vanished or cannot be read: a state of its own
        return (("", f"{type(e).__name__}: {e}", 0, 0),)
    return tuple(entries)


@dataclass
class ReloadRecord:
    """The last reload of one task, as `/info` shows it."""

    outcome: str  # swapped | refused | unchanged
    trigger: str  # admin | watch
    at: str  # ISO 8601, UTC
    version: str  # the version directory it chose
    reason: str | None = None  # why it was refused


class Reloader:
    def __init__(self, models: dict[str, Model], settings: Settings, factory: RuntimeFactory,
                 metrics: Metrics) -> None:  # fmt: skip
        self.models = models
        self.settings = settings
        self.factory = factory
        self.metrics = metrics
        self.records: dict[str, ReloadRecord] = {}
        self._lock = asyncio.Lock()
        self._watch: asyncio.Task[None] | None = None
        self._seen: dict[str, Signature] = {}  # listing at the last reload (or at start)
        self._pending: dict[str, Signature | None] = {}  # a new listing waiting to settle
        self._ignored: set[str] = set()  # directories already logged as not a task name

    def task_dir(self, task: str) -> Path:
        return self.settings.artifacts_dir / task

    async def tasks(self) -> list[str]:
        """Every task to serve: the built-in ones, the ones known already, each user task
        directory holding a complete version, and the user tasks a setting pins (so that a pin
        naming a missing task is reported, not ignored)."""
        # Only the file system reads go to a thread: `self.models` changes in the event loop.
        found, ignored = await asyncio.to_thread(find_tasks, self.settings.artifacts_dir)
        for name in sorted(set(ignored) - self._ignored):
            log.warning(
                "ignoring %s: not a task name (%s)", self.task_dir(name), TASK_NAME.pattern,
                extra={"fields": {"directory": str(self.task_dir(name))}},
            )  # fmt: skip
        self._ignored |= set(ignored)
        users = {*found, *self.settings.task_versions, *self.models} - set(BUILTIN_TASKS)
        return [*BUILTIN_TASKS, *sorted(users)]

    # ----------------------------------------------------------------------------------------
    # Reload

    async def reload(self, trigger: str = "admin") -> dict[str, dict[str, Any]]:
        """Reload every task (new task directories included), one after the other; what happened
        to each."""
        async with self._lock:
            tasks = await self.tasks()
            return {task: await self._reload_task(task, trigger) for task in tasks}

    async def _reload_task(self, task: str, trigger: str) -> dict[str, Any]:
        current = self.models.setdefault(task, Model(task=task))  # a new task: nothing served yet
        listing = await asyncio.to_thread(task_signature, self.task_dir(task))
        try:
            chosen = await asyncio.to_thread(
                find_version_dir, self.settings.artifacts_dir, task, pinned_version(task, self.settings)
            )
        except ArtifactError as e:
            return self._refused(task, current, trigger, "", str(e), listing)
        if (
            current.status == "ready"
            and current.artifact is not None
            and current.artifact.directory == chosen
        ):
            self._seen[task] = listing
            self._record(task, "unchanged", trigger, chosen.name)
            return {"outcome": "unchanged", "version": current.version}

        new = await asyncio.to_thread(load_model, task, self.settings, self.factory)
        if new.status != "ready" or new.artifact is None:
            if current.status != "ready":
                self.models[task] = new  # nothing served either way; /ready gives the newest reason
            return self._refused(task, current, trigger, chosen.name, new.reason, listing)

        # The swap: no await from here to the assignment, so no request sees a half-done state.
        if current.artifact is not None:
            labels = (task, current.version, current.artifact.onnx_path.name)
            with contextlib.suppress(KeyError):
                self.metrics.model_info.remove(*labels)
        start_batcher(new, self.settings, self.metrics)
        self.models[task] = new
        self._seen[task] = listing
        self._record(task, "swapped", trigger, new.artifact.directory.name)
        log.info(
            "reloaded %s: %s -> %s", task, current.version or "(none)", new.version,
            extra={"fields": {"task": task, "version": new.version, "previous": current.version,
                              "trigger": trigger, "in_flight_on_previous": current.active}},
        )  # fmt: skip
        await self._drain(current)
        return {"outcome": "swapped", "version": new.version, "previous": current.version or None}

    def _refused(self, task: str, current: Model, trigger: str, version: str, reason: str,
                 listing: Signature) -> dict[str, Any]:  # fmt: skip
        self._seen[task] = listing  # the watch retries only when the files change again
        self._record(task, "refused", trigger, version, reason)
        serving = current.version if current.status == "ready" else None
        log.error(
            "reload of %s refused, still serving %s: %s", task, serving or "nothing", reason,
            extra={"fields": {"task": task, "version": version, "serving": serving, "reason": reason,
                              "trigger": trigger}},
        )  # fmt: skip
        return {"outcome": "refused", "version": serving, "refused_version": version, "reason": reason}

    def _record(self, task: str, outcome: str, trigger: str, version: str, reason: str | None = None) -> None:
        at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self.records[task] = ReloadRecord(outcome, trigger, at, version, reason)
        if outcome != "unchanged":
            self.metrics.model_reloads.labels(task, outcome).inc()
        self.metrics.model_reload_refused.labels(task).set(1 if outcome == "refused" else 0)

    async def _drain(self, old: Model) -> None:
        """Let the requests holding the replaced model finish on it, then stop its batcher."""
        if old.batcher is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.graceful_shutdown_seconds
        try:
            while old.active and loop.time() < deadline:
                await asyncio.sleep(0.005)
            if old.active:
                log.warning(
                    "%d requests still on %s %s after %.0f s; stopping it",
                    old.active, old.task, old.version, self.settings.graceful_shutdown_seconds,
                )  # fmt: skip
        finally:
            await old.batcher.stop()

    def describe(self, task: str) -> dict[str, Any]:
        """The `reload` entry of a task in /info."""
        record = self.records.get(task)
        return {"last": asdict(record) if record else None, "poll_seconds": self.settings.reload_poll_seconds}

    # ----------------------------------------------------------------------------------------
    # Watch

    async def start(self) -> None:
        """Remember the listings just served, and start the watch when a poll interval is set."""
        for task in self.models:
            self._seen[task] = await asyncio.to_thread(task_signature, self.task_dir(task))
            self._pending[task] = None
            self.metrics.model_reload_refused.labels(task).set(0)
        if self.settings.reload_poll_seconds > 0:
            self._watch = asyncio.get_running_loop().create_task(self._watch_loop(), name="reload-watch")

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None

    async def _watch_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reload_poll_seconds)
            try:
                tasks = await self.tasks()
            except Exception:  # a bug must not end the watch
                log.exception("reload watch could not list the tasks")
                continue
            for task in tasks:  # a new task has no listing seen: it is polled like a changed one
                try:
                    await self._poll(task)
                except Exception:  # a bug must not end the watch
                    log.exception("reload watch of %s failed", task)

    async def _poll(self, task: str) -> None:
        listing = await asyncio.to_thread(task_signature, self.task_dir(task))
        if listing == self._seen.get(task):
            self._pending[task] = None
            return
        if listing != self._pending.get(task):
            self._pending[task] = listing  # changed: act once it has stayed so for one interval
            return
        self._pending[task] = None
        async with self._lock:
            if listing != self._seen.get(task):  # an admin reload may have just handled it
                await self._reload_task(task, "watch")
