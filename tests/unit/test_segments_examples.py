"""Every segment in examples/segments reads, round-trips, and sorts crafted customers of the
stories (online clinic, security software, airline, video streaming) as the marketer meant."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engage.rules.evaluate import Facts, evaluate
from engage.rules.language import Rule
from engage.rules.proto import from_proto, to_proto
from engage_cli import rules_yaml
from tests.rules import from_data

EXAMPLES = Path(__file__).parents[2] / "examples" / "segments"
NOW = datetime(2025, 3, 20, 12, tzinfo=UTC)
DAY = timedelta(days=1)


def ago(days: float) -> str:
    return (NOW - days * DAY).isoformat()


def paid(days_ago: float) -> dict[str, Any]:
    return {"payment_completed": [(NOW - days_ago * DAY, {"amount": 2980})]}


def route(name: str, days_ago: float, code: str) -> dict[str, Any]:
    return {name: [(NOW - days_ago * DAY, {"route": code})]}


def watched(days_ago: float, programme: str) -> dict[str, Any]:
    return {"episode_watched": [(NOW - days_ago * DAY, {"programme": programme})]}


# Example file -> customers (name, facts, whether in the segment).
CASES: dict[str, list[tuple[str, Facts, bool]]] = {
    "prescribed-unpaid": [
        ("prescribed 3 days ago, unpaid", Facts({"prescribed_at": ago(3)}), True),
        ("paid after the prescription", Facts({"prescribed_at": ago(3)}, paid(1)), False),
        ("paid for an earlier one", Facts({"prescribed_at": ago(3)}, paid(40)), True),
        ("past the 18-day cut-off", Facts({"prescribed_at": ago(19)}), False),
        ("never prescribed", Facts({"drug_type": "pill"}), False),
    ],
    "payment-reminder-day-after": [
        ("visit yesterday", Facts({"prescribed_at": ago(1.5)}), True),
        ("visit today", Facts({"prescribed_at": ago(0.2)}), False),
        ("visit yesterday, paid", Facts({"prescribed_at": ago(1.5)}, paid(0.5)), False),
    ],
    "payment-cutoff-in-7-days": [
        ("cut-off in 5 days", Facts({"prescribed_at": ago(13)}), True),
        ("cut-off in 10 days", Facts({"prescribed_at": ago(8)}), False),
        ("cut-off in 5 days, paid", Facts({"prescribed_at": ago(13)}, paid(2)), False),
    ],
    "pill-subscribers": [
        ("active pill", Facts({"drug_type": "pill", "subscription_status": "active"}), True),
        ("cancelled pill", Facts({"drug_type": "pill", "subscription_status": "cancelled"}), False),
        ("active patch", Facts({"drug_type": "patch", "subscription_status": "active"}), False),
    ],
    "renewal-consultation-due": [
        (
            "month 11 of 12",
            Facts(
                {
                    "subscription_status": "active",
                    "plan_months": 12,
                    "contract_ends_at": ago(-20),
                }
            ),
            True,
        ),
        (
            "month 11, consultation booked",
            Facts(
                {
                    "subscription_status": "active",
                    "plan_months": 12,
                    "contract_ends_at": ago(-20),
                },
                {"consultation_booked": [(NOW - 2 * DAY, {})]},
            ),
            False,
        ),
        (
            "month 6 of 12",
            Facts(
                {
                    "subscription_status": "active",
                    "plan_months": 12,
                    "contract_ends_at": ago(-180),
                }
            ),
            False,
        ),
        (
            "3-month plan ending",
            Facts(
                {"subscription_status": "active", "plan_months": 3, "contract_ends_at": ago(-20)}
            ),
            False,
        ),
    ],
    "cancelled": [
        ("auto-cancelled", Facts({"subscription_status": "auto_cancelled"}), True),
        ("cancel event only", Facts({}, {"subscription_cancelled": [(NOW, {})]}), True),
        ("active", Facts({"subscription_status": "active"}), False),
    ],
    "prescribed-unpaid-control": [
        ("member, in the 10%", Facts(memberships={"prescribed-unpaid"}, profile_id="p-17"), True),
        ("member, not sampled", Facts(memberships={"prescribed-unpaid"}, profile_id="p-0"), False),
        ("sampled, not a member", Facts(profile_id="p-17"), False),
    ],
    "searched-route-not-bought": [
        ("searched 2 days ago", Facts(events=route("flight_searched", 2, "NRT-HNL")), True),
        (
            "searched and bought",
            Facts(
                events={
                    **route("flight_searched", 2, "NRT-HNL"),
                    **route("order_completed", 1, "NRT-HNL"),
                }
            ),
            False,
        ),
        (
            "bought another route",
            Facts(
                events={
                    **route("flight_searched", 2, "NRT-HNL"),
                    **route("order_completed", 1, "HND-OKA"),
                }
            ),
            True,
        ),
        ("searched 9 days ago", Facts(events=route("flight_searched", 9, "NRT-HNL")), False),
        ("searched another route", Facts(events=route("flight_searched", 2, "KIX-HNL")), False),
    ],
    "offline-only": [
        ("postal address only", Facts({"postal_address": "1-1 Chiyoda, Tokyo"}), True),
        ("address and email", Facts({"postal_address": "1-1", "email": "a@example.com"}), False),
        ("address and phone", Facts({"postal_address": "1-1", "phone": "+81312345678"}), False),
        ("no address", Facts({"email": "a@example.com"}), False),
    ],
    "night-train-viewers": [
        ("watched last month", Facts(events=watched(30, "Night Train")), True),
        ("watched half a year ago", Facts(events=watched(180, "Night Train")), False),
        ("watched another programme", Facts(events=watched(3, "Cooking Hour")), False),
    ],
}


def load(name: str) -> tuple[dict[str, Any], Rule]:
    document = rules_yaml.load((EXAMPLES / f"{name}.yaml").read_text())
    return document, from_data(document["rule"])


def test_every_example_has_cases() -> None:
    assert {path.stem for path in EXAMPLES.glob("*.yaml")} == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_reads_and_round_trips(name: str) -> None:
    document, rule = load(name)
    assert document["segment_id"] == name
    assert document["display_name"] and document["description"]
    assert from_proto(to_proto(rule)) == rule


@pytest.mark.parametrize(
    ("name", "who", "facts", "member"),
    [(name, who, facts, member) for name, cases in CASES.items() for who, facts, member in cases],
)
def test_example_sorts_customers(name: str, who: str, facts: Facts, member: bool) -> None:
    _, rule = load(name)
    assert evaluate(rule, facts, NOW) is member, who
