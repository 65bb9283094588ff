"""The failure alert's text: what failed, which month, the error's first lines, no secret."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vapi_chargeback.failure_mail import (
    MASK,
    AlertRoute,
    FailedTask,
    alert_route,
    compose,
    first_lines,
    scrub,
)

KEY = "sk-live-3f9a0c77d1e24b"
ROUTE = AlertRoute(
    to="oncall@example.com", smtp_conn_id="smtp_default", from_email=None, subject_prefix="[VC]"
)


def failed(error: str, *, month: str | None = "2026-10", map_index: int = -1) -> FailedTask:
    return FailedTask(
        dag_id="vapi_chargeback_monthly",
        task_id="fetch",
        map_index=map_index,
        run_id="manual__2026-11-01",
        month=month,
        try_number=1,
        max_tries=2,
        error=error,
    )


@pytest.mark.parametrize(
    "text",
    [
        f"Authorization: Bearer {KEY}",
        f"headers={{'authorization': 'Bearer {KEY}'}}",
        f"https://user:{KEY}@api.example.com/analytics",
        f"api_key={KEY}&x=1",
        f'{{"password": "{KEY}"}}',
        f"token: {KEY}",
        f"Bearer {KEY}",
    ],
    ids=["header", "repr", "url-userinfo", "query", "json", "yaml", "bare-bearer"],
)
def test_credential_shapes_are_masked_without_being_named(text: str) -> None:
    cleaned = scrub(text)
    assert KEY not in cleaned and MASK in cleaned


def test_named_secrets_are_masked_wherever_they_appear() -> None:
    assert scrub(f"refused {KEY} (the key {KEY})", [KEY]) == f"refused {MASK} (the key {MASK})"
    assert scrub("the word key stays", ["", "abc"]) == "the word key stays"


def test_the_mail_names_task_month_try_and_quotes_the_error_without_the_key() -> None:
    error = f"AuthenticationError: POST /analytics: 401 for key {KEY}\nline two\n"
    mail = compose(failed(error, map_index=0), ROUTE, secrets=[KEY])
    assert mail.subject == "[VC] FAILED vapi_chargeback_monthly fetch[0] 2026-10"
    assert "Month: 2026-10" in mail.text and "Try: 1 of up to 2" in mail.text
    assert "AuthenticationError: POST /analytics: 401" in mail.text and "line two" in mail.text
    for part in (mail.subject, mail.html, mail.text):
        assert KEY not in part


def test_error_html_is_escaped_and_an_unknown_month_is_said() -> None:
    mail = compose(failed("<script>x</script> {{ conn.vapi_default.password }}", month=None), ROUTE)
    assert "<script>" not in mail.html and "&lt;script&gt;" in mail.html
    assert "{{ conn.vapi_default.password }}" in mail.html
    assert "unknown (the run failed before its month was fixed)" in mail.text


def test_a_long_error_is_cut_saying_so() -> None:
    text = "\n".join(f"cost center {n}: differs by 0.01" for n in range(100))
    quoted = first_lines(text)
    assert quoted.count("\n") == 40 and "100 lines in all" in quoted


def test_the_route_is_read_from_a_config_that_does_not_validate(tmp_path: Path) -> None:
    config = tmp_path / "chargeback.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "alerts_email": "oncall@example.com",
                "delivery": {"smtp_conn_id": "smtp_ops", "from_email": "vc@example.com"},
                "cost_centers": "not a list",
            }
        )
    )
    route = alert_route(config)
    assert route == AlertRoute(
        "oncall@example.com", "smtp_ops", "vc@example.com", "[Vapi chargeback]"
    )
    config.write_text("alerts_email: not-an-address\n")
    assert alert_route(config) is None
    assert alert_route(tmp_path / "missing.yaml") is None
