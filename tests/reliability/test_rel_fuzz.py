"""Schema fuzzing with schemathesis against the running service's own OpenAPI (`/openapi.json`).

The schema is taken from `create_app().openapi()` at import time (schemathesis' lazy
`from_fixture` loader fails under pytest 9: `'Function' object has no attribute '_nodeid'`), and
the first test checks that it is exactly what the running service serves at `/openapi.json`.

Every operation gets `Mode.fuzz_examples` generated requests (25 in CI, 200 with
`--reliability-full`), valid and invalid, each checked by schemathesis' checks and ours:
- never a 5xx;
- every 4xx/5xx body is exactly `{"error": {"type": str, "message": str}}`.

Excluded check: `positive_data_acceptance` (a schema-valid request must be accepted). The schema
cannot express two rules the service enforces with a 422, by design and documented in
docs/service.md: exactly one of `text` / `texts`, and `texts` not empty. Schemathesis therefore
generates `{"text": null, "texts": []}` as "valid" and the service rightly refuses it.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import rel_helpers
import schemathesis
from hypothesis import HealthCheck, settings
from rel_helpers import Report, Service, is_error_body
from schemathesis.specs.openapi.checks import positive_data_acceptance

from service.app import create_app
from service.settings import Settings

OPENAPI = create_app(Settings()).openapi()
schema = schemathesis.openapi.from_dict(OPENAPI)
STATUSES: Counter[tuple[str, int]] = Counter()


def test_fuzzed_schema_is_the_served_one(shared_service: Service) -> None:
    status, _, body = rel_helpers.request(shared_service.port, "GET", "/openapi.json")
    assert status == 200
    assert json.loads(body) == json.loads(json.dumps(OPENAPI))


@schema.parametrize()
@settings(
    max_examples=rel_helpers.MODE.fuzz_examples,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_fuzz_no_5xx_and_every_error_in_shape(case: Any, shared_service: Service) -> None:
    response = case.call(base_url=shared_service.url, timeout=60)
    STATUSES[(f"{case.method} {case.path}", response.status_code)] += 1
    case.validate_response(response, excluded_checks=[positive_data_acceptance])
    assert response.status_code < 500, (
        f"{case.method} {case.path}: {response.status_code} {response.text[:300]}"
    )
    if response.status_code >= 400:
        body = response.json()
        assert is_error_body(body), (
            f"{response.status_code} body not in the error shape: {response.text[:300]}"
        )


def test_fuzz_report(shared_service: Service, report: Report) -> None:
    """Runs after the fuzzing (file order): the service is still ready; record the figures."""
    assert rel_helpers.ready(shared_service.port)
    assert rel_helpers.server_errors(shared_service.port) == 0
    by_op: dict[str, Counter[int]] = {}
    for (op, status), n in STATUSES.items():
        by_op.setdefault(op, Counter())[status] += n
    rows = [
        [op, sum(c.values()), ", ".join(f"{s}: {n}" for s, n in sorted(c.items()))]
        for op, c in sorted(by_op.items())
    ]
    report.add(
        "Schema fuzzing (schemathesis)",
        f"{rel_helpers.MODE.fuzz_examples} examples per operation asked (plus schemathesis' coverage "
        f"cases), all checks but `positive_data_acceptance`; 5xx answers: 0; every error in the "
        f"documented shape. {sum(STATUSES.values())} requests:",
        "",
    )
    report.table("Schema fuzzing (schemathesis)", ["operation", "requests", "statuses"], rows)
