"""`AdmissionLimit`: the number of requests admitted at a time follows the measured throughput
(Little's law), within its floor and ceiling. Times are given, so nothing here depends on the
machine's speed."""

from __future__ import annotations

import pytest

from service.admission import MIN_COMPLETIONS, THROUGHPUT_WINDOW, AdmissionLimit


def serve_one_at_a_time(limit: AdmissionLimit, start: float, seconds_each: float, n: int,
                        idle_between: float = 0.0) -> float:  # fmt: skip
    """n requests, each alone in flight for `seconds_each`, with idle gaps; returns the end time."""
    now = start
    for _ in range(n):
        limit.started(now)
        now += seconds_each
        limit.finished(now)
        now += idle_between
    return now


def serve_saturated(limit: AdmissionLimit, start: float, rate: float, n: int, in_flight: int) -> float:
    """Keep `in_flight` requests admitted and complete n of them at `rate` a second (always busy)."""
    now = start
    while limit.in_flight < in_flight:
        limit.started(now)
    for _ in range(n):
        now += 1 / rate
        limit.finished(now)
        limit.started(now)  # the next client's request takes the slot at once
    return now


def test_the_ceiling_holds_until_enough_completions_are_seen() -> None:
    limit = AdmissionLimit(floor=2, ceiling=16, target_seconds=0.15)
    assert limit.throughput() is None and limit.limit() == 16
    serve_one_at_a_time(limit, 0.0, 0.5, MIN_COMPLETIONS - 1)
    assert limit.throughput() is None and limit.limit() == 16
    serve_one_at_a_time(limit, 10.0, 0.5, 1)
    assert limit.throughput() == pytest.approx(2.0) and limit.limit() == 2  # 2/s x 0.15 s -> floor


@pytest.mark.parametrize(("rate", "expected"), [(49.0, 7), (100.0, 15), (400.0, 16), (5.0, 2)])
def test_limit_is_throughput_times_target_within_floor_and_ceiling(rate: float, expected: int) -> None:
    limit = AdmissionLimit(floor=2, ceiling=16, target_seconds=0.15)
    serve_saturated(limit, 0.0, rate, THROUGHPUT_WINDOW * 2, in_flight=4)
    assert limit.throughput() == pytest.approx(rate)
    assert limit.limit() == expected


def test_idle_time_does_not_lower_the_throughput() -> None:
    """Sequential requests of 10 ms with a second between them: the service serves 100 a second when
    busy, and that is what the limit is made of (not the 1 a second that arrived)."""
    limit = AdmissionLimit(floor=1, ceiling=64, target_seconds=0.2)
    serve_one_at_a_time(limit, 0.0, 0.010, 40, idle_between=1.0)
    assert limit.throughput() == pytest.approx(100.0)
    assert limit.limit() == 20


def test_the_limit_follows_a_change_of_load_within_one_window() -> None:
    limit = AdmissionLimit(floor=1, ceiling=64, target_seconds=0.2)
    now = serve_saturated(limit, 0.0, 200.0, THROUGHPUT_WINDOW, in_flight=8)
    assert limit.limit() == 40
    serve_saturated(limit, now, 25.0, THROUGHPUT_WINDOW, in_flight=8)  # heavier requests now
    assert limit.limit() == 5


def test_admits_counts_requests_in_flight_against_the_limit() -> None:
    limit = AdmissionLimit(floor=3, ceiling=3, target_seconds=0.15)  # a fixed limit: floor = ceiling
    for _ in range(3):
        assert limit.admits()
        limit.started(0.0)
    assert not limit.admits()
    limit.finished(0.1)
    assert limit.admits() and limit.in_flight == 2


def test_floor_never_exceeds_the_ceiling() -> None:
    """ALIGNTAG_MAX_IN_FLIGHT=1 with a floor above it: one request at a time."""
    limit = AdmissionLimit(floor=8, ceiling=1, target_seconds=0.15)
    serve_saturated(limit, 0.0, 1000.0, THROUGHPUT_WINDOW, in_flight=1)
    assert limit.limit() == 1
