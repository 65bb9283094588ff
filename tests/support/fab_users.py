"""Create the chargeback roles and test users in the FAB auth manager, in one process.

Run as a script with an Airflow environment (``tests/stack``, ``tests/browser``):
``python tests/support/fab_users.py < users.json`` (a list of
``{"username", "password", "email", "roles"}``). Does what compose's init service does —
``python -m vapi_chargeback.airflow.roles`` and ``airflow users create`` — but for several
users at once: each ``airflow users create`` builds FAB's Flask app anew (some 20 s).
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    from vapi_chargeback.airflow.roles import sync_roles

    sync_roles()
    users = json.load(sys.stdin)
    with get_application_builder() as appbuilder:
        sm = appbuilder.sm
        for user in users:
            roles = [sm.find_role(name) for name in user["roles"]]
            missing = [name for name, role in zip(user["roles"], roles, strict=True) if not role]
            if missing:
                raise SystemExit(f"{user['username']}: no role {missing}")
            created = sm.add_user(
                user["username"], user["username"], "Stack", user["email"], roles, user["password"]
            )
            if not created:
                raise SystemExit(f"could not create {user['username']}")


if __name__ == "__main__":
    main()
