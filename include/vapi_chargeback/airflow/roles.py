"""Create or update the two chargeback roles in the FAB auth manager: ``python -m vapi_chargeback.airflow.roles``.

Idempotent: run it after ``airflow db migrate`` (compose's init service does, on every
``docker compose up``); each run leaves both roles with exactly the permissions below,
adding what is missing and removing what a person added by hand, and gives ``Admin`` the
two statement views (an admin is finance). Users get these roles besides (or instead of)
Airflow's own ``Viewer``/``User``/``Op``: ``airflow users add-role`` or the Security menu.

- ``Chargeback Owner``: sign in, find the page under Browse (which needs the plugin list)
  and open it; it then shows only the
  cost centers whose ``owner_email`` is the user's or whose ``owner_groups`` hold one of
  the user's roles (``page_access``). Nothing else of Airflow: no DAG, run, log or XCom.
- ``Chargeback Finance``: the whole page (every cost center, org-wide files); the
  monthly DAG — its runs, task logs and the Required Actions page — to approve or reject
  a month (when chargeback.yaml's ``approvers`` names them) and to trigger restatements and
  redeliveries (a run with params); the daily DAG read-only.

Exits 0 silently; 1 with the reason when the FAB tables are missing (``airflow fab-db
migrate`` or ``airflow db migrate`` first) or the auth manager is not FAB.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from vapi_chargeback.airflow.page_access import FINANCE_RESOURCE, PAGE_RESOURCE
from vapi_chargeback.errors import ChargebackError

OWNER_ROLE = "Chargeback Owner"
FINANCE_ROLE = "Chargeback Finance"
ADMIN_ROLE = "Admin"
MONTHLY_DAG = "DAG:vapi_chargeback_monthly"
DAILY_DAG = "DAG:vapi_chargeback_daily"
"""FAB's per-DAG resource names (``permissions.resource_name(dag_id, "DAGs")``)."""

READ, EDIT, CREATE, MENU = "can_read", "can_edit", "can_create", "menu_access"
SIGN_IN = [
    (READ, "Website"),
    (READ, "My Profile"),
    (EDIT, "My Profile"),
    (READ, "My Password"),
    (EDIT, "My Password"),
    (MENU, "Browse"),
    (READ, "Plugins"),  # the UI lists the page under Browse from the plugins endpoint
]
OWNER_PERMISSIONS = [*SIGN_IN, (READ, PAGE_RESOURCE)]
FINANCE_PERMISSIONS = [
    *OWNER_PERMISSIONS,
    (READ, FINANCE_RESOURCE),
    (READ, MONTHLY_DAG),
    (EDIT, MONTHLY_DAG),
    (READ, DAILY_DAG),
    (MENU, "DAGs"),
    (READ, "DAG Runs"),
    (CREATE, "DAG Runs"),
    (MENU, "DAG Runs"),
    (READ, "Task Instances"),
    (MENU, "Task Instances"),
    (READ, "Task Logs"),
    (READ, "XComs"),
    (READ, "HITL Detail"),
    (EDIT, "HITL Detail"),
    (MENU, "HITL Detail"),
]
ROLES = {OWNER_ROLE: OWNER_PERMISSIONS, FINANCE_ROLE: FINANCE_PERMISSIONS}
ADMIN_EXTRA = [(READ, PAGE_RESOURCE), (READ, FINANCE_RESOURCE)]


class RolesError(ChargebackError):
    """The roles cannot be written here; the message says what to do."""


def sync_roles() -> dict[str, set[tuple[str, str]]]:
    """Bring both roles to exactly their permissions (and Admin up to the page's); returns
    each role's permissions as stored afterwards."""
    from airflow.configuration import conf
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder
    from airflow.providers.fab.auth_manager.fab_auth_manager import FabAuthManager
    from sqlalchemy.exc import OperationalError, ProgrammingError

    if not issubclass(conf.getimport("core", "auth_manager"), FabAuthManager):
        raise RolesError(
            "[core] auth_manager is not the FAB auth manager: roles belong to FAB; set"
            " AIRFLOW__CORE__AUTH_MANAGER (docker-compose.yml does)"
        )
    try:
        with get_application_builder() as appbuilder:
            sm = appbuilder.sm
            sm.bulk_sync_roles(
                [{"role": name, "perms": perms} for name, perms in ROLES.items()]
                + [{"role": ADMIN_ROLE, "perms": ADMIN_EXTRA}]
            )
            stored: dict[str, set[tuple[str, str]]] = {}
            for name, wanted in ROLES.items():
                role = sm.find_role(name)
                for permission in list(role.permissions):
                    key = (permission.action.name, permission.resource.name)
                    if key not in wanted:
                        sm.remove_permission_from_role(role, permission)
                stored[name] = {(p.action.name, p.resource.name) for p in role.permissions}
            return stored
    except (OperationalError, ProgrammingError) as error:
        raise RolesError(
            f"the FAB tables are not there ({type(error).__name__}): run `airflow db migrate`"
            " (or `airflow fab-db migrate`) first"
        ) from error


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vapi_chargeback.airflow.roles",
        description=(
            "Create or update the roles 'Chargeback Owner' and 'Chargeback Finance' in the FAB"
            " auth manager's database (idempotent); prints nothing on success."
        ),
    )
    parser.add_argument(
        "--list", action="store_true", help="print each role's permissions afterwards"
    )
    args = parser.parse_args(argv)
    try:
        stored = sync_roles()
    except RolesError as error:
        print(f"vapi_chargeback.airflow.roles: {error}", file=sys.stderr)
        return 1
    if args.list:
        for name, permissions in stored.items():
            print(name)
            for action, resource in sorted(permissions, key=lambda p: (p[1], p[0])):
                print(f"  {action} on {resource}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
