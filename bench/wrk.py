"""Closed-loop cross-check with Debian's `wrk` (a load generator written in C, which takes less of
the 2 cores than our Python one): the same bodies, the same connection counts, side by side with
`bench.loadgen`'s closed-loop rows.

`wrk -t1 -c<c> -d<s>s --latency --timeout 60s -s <script>` (wrk's own timeout is 2 s, past which
a request counts as a socket error and leaves the percentiles; the loadgen waits 60 s) POSTs the bodies in turn (a Lua `request` function);
its Requests/sec, latency percentiles and non-2xx count become one row of the bench's table.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.loadgen import HOST

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def available() -> bool:
    return shutil.which("wrk") is not None


def lua_script(path: str, bodies: Sequence[bytes]) -> str:
    def literal(body: bytes) -> str:
        text = body.decode()
        if "]==]" in text:
            raise ValueError("a body contains ]==], which ends a Lua long string")
        return f"[==[{text}]==]"

    lines = ["local bodies = {", *(f"  {literal(b)}," for b in bodies), "}", "local i = 0"]
    lines += [
        "request = function()",
        "  i = i % #bodies + 1",
        f'  return wrk.format("POST", "{path}", {{["Content-Type"] = "application/json"}}, bodies[i])',
        "end",
    ]
    return "\n".join(lines) + "\n"


def milliseconds(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if not match:
        raise ValueError(f"not a wrk duration: {value!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


def parse(output: str) -> dict[str, float]:
    """Requests/sec, request count, non-2xx/3xx count, socket errors, latency percentiles (ms) and
    `ok_rps`: answers other than non-2xx/3xx a second. wrk's Requests/sec and percentiles count every
    answer, the refused ones too; the loadgen's rps counts 200s only, so rows compare `ok_rps`."""
    figures: dict[str, float] = {}
    for q in ("50", "90", "99"):
        match = re.search(rf"^\s+{q}%\s+(\S+)$", output, re.MULTILINE)
        if match:
            figures[f"p{q}_ms"] = milliseconds(match.group(1))
    figures["rps"] = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    done = re.search(r"(\d+) requests in ([\d.]+\w+),", output)
    if not done:
        raise ValueError(f"no request count in wrk's output: {output[-500:]!r}")
    figures["requests"] = float(done.group(1))
    seconds = milliseconds(done.group(2)) / 1000
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    figures["non_2xx"] = float(non_2xx.group(1)) if non_2xx else 0.0
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    figures["socket_errors"] = float(sum(int(g) for g in errors.groups())) if errors else 0.0
    figures["ok_rps"] = (figures["requests"] - figures["non_2xx"]) / seconds if seconds > 0 else 0.0
    return figures


def closed_loop(
    port: int, path: str, bodies: Sequence[bytes], connections: int, seconds: float
) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="aligntag-wrk-") as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(lua_script(path, bodies))
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "60s", "-s", str(script),
             f"http://{HOST}:{port}{path}"],
            capture_output=True, text=True, timeout=seconds + 60, check=True,
        )  # fmt: skip
    return parse(out.stdout)
