"""The approver match of the FAB auth manager and the two chargeback roles' permissions.

The real thing runs in tests/stack (FAB on PostgreSQL, answers over REST); here, the rules:
an approver is named by user name or e-mail, never matched by a look-alike, and an owner's
role opens the statements page and nothing else of Airflow.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from vapi_chargeback.airflow.auth_manager import is_assigned
from vapi_chargeback.airflow.page_access import FINANCE_RESOURCE, PAGE_RESOURCE
from vapi_chargeback.airflow.roles import FINANCE_PERMISSIONS, OWNER_PERMISSIONS


@dataclass
class FabUser:
    """What FAB's ``User`` offers the check: a numeric id, a user name, an e-mail."""

    id: int
    username: str
    email: str

    def get_id(self) -> str:
        return str(self.id)


FIONA = FabUser(7, "fiona", "Fiona.Finance@Example.com")


@pytest.mark.parametrize(
    ("assigned", "expected"),
    [
        ({"fiona"}, True),
        ({"fiona.finance@example.com"}, True),  # e-mails in any case
        ({"7"}, True),  # Airflow's own rule, the id, still holds
        ({"Fiona"}, False),  # user names exactly
        ({"fion"}, False),
        ({"someone@example.com", "dana"}, False),
        ({""}, False),
    ],
    ids=["name", "email-any-case", "id", "name-case", "prefix", "others", "empty"],
)
def test_an_approver_is_matched_by_id_name_or_email(assigned: set[str], expected: bool) -> None:
    assert is_assigned(assigned, FIONA) is expected


def test_a_user_without_email_is_not_matched_by_an_empty_entry() -> None:
    assert not is_assigned({"", "x@example.com"}, FabUser(3, "sam", ""))


def test_an_owner_opens_the_page_and_nothing_else_of_airflow() -> None:
    resources = {resource for _, resource in OWNER_PERMISSIONS}
    assert ("can_read", PAGE_RESOURCE) in OWNER_PERMISSIONS
    assert FINANCE_RESOURCE not in resources
    assert not any(r.startswith(("DAG", "Task", "XCom", "HITL")) for r in resources)


def test_finance_sees_all_and_may_answer_the_review_and_trigger_runs() -> None:
    assert {
        ("can_read", FINANCE_RESOURCE),
        ("can_edit", "HITL Detail"),
        ("can_edit", "DAG:vapi_chargeback_monthly"),
        ("can_create", "DAG Runs"),
    } <= set(FINANCE_PERMISSIONS)
    assert set(OWNER_PERMISSIONS) <= set(FINANCE_PERMISSIONS)
    assert ("can_edit", "DAGs") not in FINANCE_PERMISSIONS, "only the chargeback DAG"
