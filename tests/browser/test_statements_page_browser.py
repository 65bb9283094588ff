"""The statements page in headless Chromium against a running api-server, behind Airflow's login.

The api-server signs people in with the FAB auth manager, as compose does. One browser
session walks the way finance does: opens the page, is sent to the login form, signs in,
sees the months with their figures, downloads a workbook with the session's cookie, and
finds the page under Browse inside the Airflow UI. Then a cost-center owner signs in and
sees their own workbooks only, and the org files refuse them. Screenshots go to
``test-artifacts/`` (gitignored) for a person to look at.
"""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest
from chromium_webdriver import Browser
from statements_site import ARTIFACTS, FINANCE, MONTHS, OWNER, OWNER_CENTER, ApiServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PAGE = "/chargeback/"


def sign_in(browser: Browser, server: ApiServer, user: str = FINANCE) -> None:
    """Open the page signed out; the FAB login form comes first and sends us back after."""
    browser.call("DELETE", "/cookie")
    browser.get(f"{server.url}{PAGE}")
    browser.wait_for("the login form", lambda: "/auth/login" in browser.url)
    browser.wait_for("the username field", lambda: browser.find("input[name=username]")).type(user)
    browser.find("input[name=password]").type(server.passwords[user])
    browser.find("form[name=login] [type=submit]").click()
    browser.wait_for("the statements page", lambda: browser.url.endswith(PAGE))
    browser.wait_for("its heading", lambda: browser.find("h1").text == "Chargeback statements")


def test_signed_in_the_page_lists_the_months_and_a_link_downloads_the_workbook(
    browser: Browser, api_server: ApiServer
) -> None:
    sign_in(browser, api_server)

    listed = [cell.text for cell in browser.find_all("tbody tr td:first-child b")]
    assert listed == sorted(MONTHS, reverse=True)
    october = json.loads((api_server.output / "2026-10" / "manifest.json").read_text())
    first_row = browser.find("tbody tr").text
    assert f"{float(october['totals']['cost_usd']):,.2f}" in first_row
    assert "OK" in first_row and "5/5 sent" in first_row
    assert "4/5 sent" in browser.find_all("tbody tr")[1].text

    href = "files/2026-10/chargeback-2026-10.xlsx"
    link = browser.find(f"a[href='{href}']")
    assert link.text == "Workbook"
    link.click()
    body = browser.downloaded("chargeback-2026-10.xlsx")
    published = (api_server.output / "2026-10" / "chargeback-2026-10.xlsx").read_bytes()
    assert body == published
    assert hashlib.sha256(body).hexdigest() == october["files"]["chargeback-2026-10.xlsx"]["sha256"]
    assert browser.url.endswith(PAGE), "a download, not a navigation away from the page"

    browser.resize(1440, 1000)
    browser.screenshot(ARTIFACTS / "statements-page.png")


def test_the_page_is_in_the_airflow_ui_under_browse(
    browser: Browser, api_server: ApiServer
) -> None:
    """The external view: Airflow's own UI frames the page, with the same session."""
    browser.get(f"{api_server.url}/plugin/chargeback-statements")
    if "/auth/login" in browser.url:
        sign_in(browser, api_server)
        browser.get(f"{api_server.url}/plugin/chargeback-statements")
    frame = browser.wait_for(
        "the page's frame", lambda: browser.find("iframe[title='Chargeback statements']")
    )
    browser.switch_to_frame(frame)
    try:
        browser.wait_for(
            "the framed heading", lambda: browser.find("h1").text == "Chargeback statements"
        )
        assert len(browser.find_all("tbody tr td:first-child b")) == len(MONTHS)
    finally:
        browser.switch_to_frame(None)
    browser.screenshot(ARTIFACTS / "statements-page-in-airflow.png")


def test_an_owner_sees_only_their_workbooks_and_is_refused_the_rest(
    browser: Browser, api_server: ApiServer
) -> None:
    sign_in(browser, api_server, OWNER)

    intro = browser.find("p.sub").text
    assert f"Signed in as {OWNER}" in intro and "Your cost center: Sales" in intro
    rows = [row.text for row in browser.find_all("tbody tr")]
    assert len(rows) == len(MONTHS) and all("Sales" in row and "final" in row for row in rows)
    hrefs = [a.attribute("href") or "" for a in browser.find_all("a")]
    assert [h.split(PAGE, 1)[-1] for h in hrefs] == [
        f"files/{m}/cost-centers/{OWNER_CENTER}-{m}.xlsx" for m in sorted(MONTHS, reverse=True)
    ]
    page = browser.run("return document.body.innerText")
    assert "Total USD" not in page and "Customer Support" not in page

    browser.find_all("a")[0].click()
    body = browser.downloaded(f"{OWNER_CENTER}-2026-10.xlsx")
    published = api_server.output / "2026-10" / "cost-centers" / f"{OWNER_CENTER}-2026-10.xlsx"
    assert body == published.read_bytes()

    # The org workbook and another owner's, opened with the owner's own session cookie.
    for href in (
        "files/2026-10/chargeback-2026-10.xlsx",
        "files/2026-10/cost-centers/support-2026-10.xlsx",
    ):
        browser.get(f"{api_server.url}{PAGE}{href}")
        shown = browser.wait_for("the refusal", lambda: browser.find("body").text)
        assert "You may not open this file" in shown, (href, shown)
    browser.get(f"{api_server.url}{PAGE}")
    browser.resize(1440, 700)
    browser.screenshot(ARTIFACTS / "statements-page-owner.png")


def test_without_a_session_nothing_is_served(api_server: ApiServer) -> None:
    with httpx.Client(base_url=api_server.url) as client:
        page = client.get(PAGE, headers={"accept": "text/html"})
        assert page.status_code == 303
        assert page.headers["location"].startswith("/auth/login/?next=")
        download = client.get(f"{PAGE}files/2026-10/chargeback-2026-10.xlsx")
        assert download.status_code == 401

        token = client.post(
            "/auth/token", json={"username": FINANCE, "password": api_server.passwords[FINANCE]}
        ).json()["access_token"]
        with_token = client.get(
            f"{PAGE}files/2026-10/manifest.json", headers={"Authorization": f"Bearer {token}"}
        )
        assert with_token.status_code == 200
        assert with_token.json()["period"] == "2026-10"
