"""The emulator's injected faults are deterministic, and the pipeline shrugs them off.

First the injector itself: the ``--faults`` syntax, decisions that depend only on the
seed, the body and its attempt number (so thread timing cannot change them), the rate,
and the streak cap. Then each kind over real HTTP against the real client: a retry and
the right answer (``slow`` needs no retry). Finally twelve months through the pipeline
against 30 % faults of every kind: every statement file is byte-identical to the clean
run's, the manifests differ only in ``run_id``, and the retries add up — the emulator's
request count equals the fetches' attempts, and every fault but ``slow`` cost one retry.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from vapi_chargeback.analytics.models import AnalyticsOperation, AnalyticsQuery, TimeRange
from vapi_chargeback.pipeline import publish_run
from vapi_chargeback.storage import read_published
from vapi_emulator.data import generate_calls_file
from vapi_emulator.faults import FAULT_KINDS, EmulatorStats, FaultPlan, FaultSpecError

from support.reliability import (
    emulator,
    make_client,
    prepare_run,
    snapshot,
    without_run_id,
)

MONTHS = ["2025-12", *(f"2026-{number:02d}" for number in range(1, 12))]
"""Twelve months that have all settled (a month that has not is refused before fetching)."""
SEED = 4
FAULTS = "rate=0.3,kinds=429,503,timeout,reset,slow,garbage,retry_after=0,hang=30,delay=0.2"
CLIENT_OPTIONS = {"read_timeout": 5.0, "backoff_base": 0.05, "max_retries": 5}
"""A read timeout far below the fault's hang (the emulator stops hanging when the client
leaves) and far above any honest answer, even on a loaded machine: a timeout the test did
not inject would be a retry no fault accounts for (a 0.75 s timeout did that under load 10).
Short backoffs: the test waits little."""


@pytest.mark.parametrize(
    ("text", "plan"),
    [
        pytest.param(
            "rate=0.3,kinds=429,503,timeout,reset,slow,garbage",
            FaultPlan(0.3, FAULT_KINDS, seed=5),
            id="issue-example",
        ),
        pytest.param(
            "kinds=503, rate=1 ,hang=2.5,delay=0,retry_after=3,max_streak=2",
            FaultPlan(1.0, ("503",), seed=5, retry_after=3, hang=2.5, delay=0.0, max_streak=2),
            id="every-key",
        ),
        pytest.param("rate=0", FaultPlan(0.0, FAULT_KINDS, seed=5), id="all-kinds-by-default"),
    ],
)
def test_fault_spec_is_parsed(text: str, plan: FaultPlan) -> None:
    assert FaultPlan.parse(text, seed=5) == plan


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("kinds=429", r"needs rate=", id="no-rate"),
        pytest.param("rate=1.5", r"rate=1\.5 must be between 0 and 1", id="rate-too-high"),
        pytest.param("rate=0.3,kinds=429,500", r"unknown kinds \['500'\]", id="unknown-kind"),
        pytest.param("rate=0.3,colour=red", r"unknown --faults keys \['colour'\]", id="bad-key"),
        pytest.param("rate=0.3,rate=0.4", r"'rate' given twice", id="repeated-key"),
        pytest.param("0.3", r"'0\.3' .* is not key=value", id="bare-value"),
        pytest.param("rate=lots", r"could not convert", id="not-a-number"),
        pytest.param("rate=0.3,max_streak=0", r"max_streak=0 must be >= 1", id="no-streak"),
    ],
)
def test_bad_fault_spec_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(FaultSpecError, match=message):
        FaultPlan.parse(text)


def test_decisions_depend_on_seed_body_and_attempt_not_on_arrival_order() -> None:
    plan = FaultPlan(0.5, FAULT_KINDS, seed=SEED)
    bodies = [f'{{"queries":[{{"name":"q{index}"}}]}}'.encode() for index in range(40)]
    arrivals = [body for body in bodies for _ in range(4)]

    def sequences(order: list[bytes]) -> dict[bytes, list[str | None]]:
        stats = EmulatorStats(plan)
        seen: dict[bytes, list[str | None]] = {}
        for body in order:
            seen.setdefault(body, []).append(stats.fault_for(body))
        return seen

    shuffled = arrivals[:]
    random.Random(1).shuffle(shuffled)
    assert sequences(arrivals) == sequences(shuffled)
    other_seed = EmulatorStats(FaultPlan(0.5, FAULT_KINDS, seed=SEED + 1))
    assert [other_seed.fault_for(body) for body in bodies] != [
        plan.decide(body, 0) for body in bodies
    ]


def test_rate_and_kinds_are_as_asked() -> None:
    plan = FaultPlan(0.3, FAULT_KINDS, seed=SEED)
    decisions = [
        plan.decide(hashlib.sha256(bytes([n % 256, n // 256])).digest(), 0) for n in range(5000)
    ]
    faulted = [kind for kind in decisions if kind]
    assert 0.27 < len(faulted) / len(decisions) < 0.33
    assert set(faulted) == set(FAULT_KINDS)


def test_no_body_is_faulted_more_than_max_streak_times_in_a_row() -> None:
    stats = EmulatorStats(FaultPlan(1.0, ("503",), max_streak=3))
    assert [stats.fault_for(b"same") for _ in range(8)] == ["503", "503", "503", None] * 2


@pytest.fixture(scope="module")
def calls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("calls") / "calls.parquet"
    generate_calls_file(path, MONTHS[0], months=len(MONTHS), calls_per_month=1_500)
    return path


def _one_query() -> AnalyticsQuery:
    return AnalyticsQuery(
        table="call",
        name="october",
        time_range=TimeRange(start="2026-10-01T00:00:00Z", end="2026-11-01T00:00:00Z"),
        operations=[AnalyticsOperation(operation="count", column="id", alias="calls")],
    )


@pytest.mark.parametrize(
    ("kind", "attempts", "status"),
    [
        pytest.param("429", 2, "429", id="429"),
        pytest.param("503", 2, "503", id="503"),
        pytest.param("timeout", 2, "dropped", id="timeout"),
        pytest.param("reset", 2, "dropped", id="reset"),
        pytest.param("garbage", 2, "200", id="garbage"),
        pytest.param("slow", 1, "200", id="slow"),
    ],
)
def test_each_fault_is_survived_by_the_client(
    calls: Path, kind: str, attempts: int, status: str
) -> None:
    plan = FaultPlan(1.0, (kind,), seed=SEED, retry_after=0, hang=30, delay=0.3, max_streak=1)
    with (
        emulator([calls], plan) as api,
        make_client(api.base_url, **CLIENT_OPTIONS) as clean,
        make_client(api.base_url, **CLIENT_OPTIONS) as client,
    ):
        response = client.post_batch([_one_query()])
        stats = api.stats.snapshot()
        expected = clean.post_batch([_one_query()])

    assert response.attempts == attempts
    assert response.results == expected.results
    assert stats["faults"] == {kind: 1}
    assert stats["requests"]["POST /analytics"] == attempts
    assert stats["responses"][status] >= 1


def test_stats_count_requests_by_route_and_need_no_key(calls: Path) -> None:
    with emulator([calls]) as api:
        httpx.get(f"{api.base_url}/health")
        httpx.get(f"{api.base_url}/no/such/path")
        httpx.post(f"{api.base_url}/analytics", json={}, headers={"Authorization": "Bearer no"})
        stats = httpx.get(f"{api.base_url}/_stats").json()

    assert stats["requests"] == {
        "GET (other)": 1,
        "GET /_stats": 1,
        "GET /health": 1,
        "POST /analytics": 1,
    }
    assert stats["responses"] == {"200": 1, "401": 1, "404": 1}
    assert stats["faults"] == {} and stats["fault_plan"] is None


@pytest.fixture(scope="module")
def year(calls: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """Twelve months run clean, then again against 30 % faults; what each run produced."""
    clean_output = tmp_path_factory.mktemp("clean")
    faulty_output = tmp_path_factory.mktemp("faulty")
    attempts = 0
    with emulator([calls]) as api, make_client(api.base_url) as client:
        for month in MONTHS:
            ready = prepare_run(clean_output, client, run_id=f"clean-{month}", month=month)
            publish_run(ready.run, ready.reconciled)
    with emulator([calls], FaultPlan.parse(FAULTS, seed=SEED)) as api:
        with make_client(api.base_url, **CLIENT_OPTIONS) as client:
            for month in MONTHS:
                ready = prepare_run(faulty_output, client, run_id=f"faulty-{month}", month=month)
                publish_run(ready.run, ready.reconciled)
                attempts += sum(int(item["attempts"]) for item in ready.fetched)
        stats = api.stats.snapshot()
    yield {"clean": clean_output, "faulty": faulty_output, "attempts": attempts, "stats": stats}


@pytest.mark.slow
def test_a_year_under_30_percent_faults_is_byte_identical_to_a_clean_year(
    year: dict[str, object],
) -> None:
    clean, faulty = Path(str(year["clean"])), Path(str(year["faulty"]))
    for month in MONTHS:
        clean_files, faulty_files = snapshot(clean / month), snapshot(faulty / month)
        assert clean_files.pop("manifest.json") != faulty_files.pop("manifest.json")
        assert faulty_files == clean_files, month
        clean_manifest, faulty_manifest = (
            read_published(clean, month),
            read_published(faulty, month),
        )
        assert clean_manifest is not None and faulty_manifest is not None
        assert without_run_id(faulty_manifest) == without_run_id(clean_manifest), month


@pytest.mark.slow
def test_every_retry_is_accounted_for(year: dict[str, object]) -> None:
    stats = year["stats"]
    assert isinstance(stats, dict)
    faults: dict[str, int] = stats["faults"]
    requests = stats["requests"]["POST /analytics"]
    retries = requests - len(MONTHS)
    print(
        f"\n12 months, 30 % faults (seed {SEED}): {requests} requests, {retries} retries, faults {faults}"
    )
    # Seed 4 injects 4 faults of 4 kinds into these 12 months; far fewer would prove little.
    assert sum(faults.values()) >= 4 and len(faults) >= 3, f"too few faults: {faults}"
    assert year["attempts"] == requests
    assert retries == sum(count for kind, count in faults.items() if kind != "slow")
