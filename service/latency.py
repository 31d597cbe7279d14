"""Sequential latency of /tag and /acronyms: `python -m service.latency --url URL --n 500`.

One keep-alive connection (stdlib http.client, so client overhead stays in the tens of
microseconds), one request at a time, a ~30-word sentence; prints p50/p90/p99 per route. Start the
service first (`python -m service`); the first requests are discarded as warm-up.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import time
from urllib.parse import urlsplit

SENTENCE = (
    "We pretrain small transformers with objectives aligned to the target tasks, such as hyperlink "
    "prediction for concept tagging and pseudo acronym detection for convolutional neural networks (CNNs) "
    "in technical text."
)  # 30 words


def percentile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def measure(
    conn: http.client.HTTPConnection, route: str, body: bytes, headers: dict[str, str], n: int
) -> list[float]:
    timings = []
    for _ in range(n):
        started = time.perf_counter()
        conn.request("POST", route, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise SystemExit(f"{route}: HTTP {response.status}")
        timings.append(elapsed * 1000)
    return sorted(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--n", type=int, default=500, help="requests per route")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--api-key", default=None)
    args = parser.parse_args()

    url = urlsplit(args.url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=30)
    headers = {"Content-Type": "application/json"}
    if args.api_key:
        headers["Authorization"] = f"Bearer {args.api_key}"
    body = json.dumps({"text": SENTENCE}).encode()
    print(f"{args.url}, {args.n} sequential requests per route, {len(SENTENCE.split())}-word sentence")
    for route in ("/tag", "/acronyms"):
        measure(conn, route, body, headers, args.warmup)
        ms = measure(conn, route, body, headers, args.n)
        print(
            f"{route:10s} p50 {percentile(ms, 50):6.2f} ms  p90 {percentile(ms, 90):6.2f} ms  "
            f"p99 {percentile(ms, 99):6.2f} ms  mean {statistics.fmean(ms):6.2f} ms"
        )
    conn.close()


if __name__ == "__main__":
    main()
