"""Who may see what on the statements page: finance everything, an owner their own workbooks.

Chargeback statements are internal financial data: one department's spend is not every
Airflow user's business. The page asks Airflow's auth manager two questions about the
signed-in user, as custom views (so any auth manager can answer them; the FAB auth
manager answers from role permissions, see ``vapi_chargeback.airflow.roles``):

- ``can_read`` on :data:`PAGE_RESOURCE`: may open the page at all (role ``Chargeback Owner``);
- ``can_read`` on :data:`FINANCE_RESOURCE`: sees every cost center and the org-wide files
  — workbook, CSV, FOCUS file, journal, manifest, delivery log, month to date — (role
  ``Chargeback Finance``).

Anyone else with page access sees only the workbooks of the cost centers they own: the
user's e-mail equals the cost center's ``owner_email`` (case-insensitive), or one of the
user's roles is among its ``owner_groups`` in chargeback.yaml. With the simple auth
manager (``make demo``, ``make ui``) every custom view is granted to any user with a
role, so everyone there is finance.

Every refusal is the same 403 with the same text, decided from the request's path alone
before the storage is touched, so an owner cannot tell a guessed path from an existing
file of another cost center.
"""

# No ``from __future__ import annotations``: FastAPI reads the dependency's annotation,
# which names imports local to ``airflow_viewer``, at definition time.
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from fastapi import HTTPException

from vapi_chargeback.config import ChargebackConfig
from vapi_chargeback.statements.xlsx import cost_center_workbook_name

PAGE_RESOURCE = "Chargeback Statements"
"""Custom view whose ``can_read`` opens the page (an owner sees only their workbooks)."""
FINANCE_RESOURCE = "Chargeback All Cost Centers"
"""Custom view whose ``can_read`` shows every cost center and the org-wide files."""
FORBIDDEN = "You may not open this file. Finance can send it to you."
"""The one refusal text: the same for a missing file and for another owner's file."""
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class Viewer:
    """The signed-in user as the page needs them: name, e-mail, roles, and finance or not."""

    name: str
    email: str | None
    groups: frozenset[str]
    finance: bool

    def cost_centers(self, config: ChargebackConfig | None) -> frozenset[str]:
        """Ids of the cost centers this user owns; none when the config cannot be read."""
        if config is None:
            return frozenset()
        email = (self.email or "").strip().lower()
        return frozenset(
            center.id
            for center in config.cost_centers
            if (email and center.owner_email.lower() == email)
            or self.groups.intersection(center.owner_groups)
        )


@dataclass(frozen=True)
class Scope:
    """What one request may read: everything (finance) or these cost centers' workbooks."""

    finance: bool
    cost_centers: frozenset[str]

    def may_read(self, period: str, relative: str) -> bool:
        """A month's file (path relative to the month folder or a version of it)."""
        if self.finance:
            return True
        return bool(MONTH.match(period)) and relative in owned_workbooks(self.cost_centers, period)

    def require(self, period: str, relative: str) -> None:
        """403 unless :meth:`may_read`; called before anything is looked up."""
        if not self.may_read(period, relative):
            raise HTTPException(403, FORBIDDEN)

    def require_finance(self) -> None:
        """403 unless finance: for files that are org-wide whatever their name."""
        if not self.finance:
            raise HTTPException(403, FORBIDDEN)


def owned_workbooks(cost_centers: Iterable[str], period: str) -> set[str]:
    return {cost_center_workbook_name(center, period) for center in cost_centers}


def scope_of(viewer: Viewer, config: ChargebackConfig | None) -> Scope:
    return Scope(viewer.finance, frozenset() if viewer.finance else viewer.cost_centers(config))


def airflow_viewer() -> Callable[..., Viewer]:
    """The FastAPI dependency giving the signed-in :class:`Viewer` (401 without a session,
    403 without access to the page), from Airflow's user and auth manager."""
    from typing import Annotated

    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import Depends

    def viewer(user: Annotated[object, Depends(get_user)]) -> Viewer:
        auth = get_auth_manager()

        def granted(resource: str) -> bool:
            return bool(
                auth.is_authorized_custom_view(method="GET", resource_name=resource, user=user)
            )

        finance = granted(FINANCE_RESOURCE)
        if not (finance or granted(PAGE_RESOURCE)):
            raise HTTPException(403, FORBIDDEN)
        return Viewer(
            name=str(user.get_name()),  # type: ignore[attr-defined]
            email=getattr(user, "email", None) or None,
            groups=user_groups(user),
            finance=finance,
        )

    return viewer


def user_groups(user: object) -> frozenset[str]:
    """The user's role names: FAB's roles (LDAP/OAuth groups map onto them), else the simple
    auth manager's one role."""
    roles = getattr(user, "roles", None)
    if roles is not None:
        return frozenset(str(role.name) for role in roles)
    role = getattr(user, "role", None)
    return frozenset({str(role)}) if role else frozenset()
