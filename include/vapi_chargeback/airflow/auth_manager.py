"""The FAB auth manager, with approvers named by user name or e-mail instead of database id.

``docker-compose.yml`` runs this class as ``[core] auth_manager``. It is Airflow's
``FabAuthManager`` (users, roles, LDAP/OAuth through ``webserver_config.py``) with one
change, to the human-in-the-loop check: Airflow compares an assigned user's ``id`` with
``user.get_id()``, which for FAB is the row number in ``ab_user`` — something nobody can
write into chargeback.yaml, and which changes when an account is recreated. Here an
assigned entry also matches the user's name, or their e-mail ignoring case, so
``approvers: [fiona, controller@example.com]`` means those people, checked when they
answer (a user created after the request was written can answer it; a deactivated one
cannot sign in at all).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.fab.auth_manager.fab_auth_manager import FabAuthManager


class ChargebackFabAuthManager(FabAuthManager):
    """``FabAuthManager`` whose HITL respondents are matched by id, user name or e-mail."""

    def is_authorized_hitl_task(self, *, assigned_users: set[str], user: Any) -> bool:
        return is_assigned(assigned_users, user)


def is_assigned(assigned: set[str], user: Any) -> bool:
    """Whether ``user`` is one of ``assigned``: its id or user name exactly, its e-mail in any case."""
    names = {str(user.get_id()), str(getattr(user, "username", "") or "")} - {""}
    email = str(getattr(user, "email", "") or "").casefold()
    return bool(names & assigned) or (
        bool(email) and email in {entry.casefold() for entry in assigned}
    )
