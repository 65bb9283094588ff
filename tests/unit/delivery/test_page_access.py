"""Who sees what on the statements page: finance everything, an owner their own workbooks.

The page's app in-process with the signed-in user swapped in (the auth manager's answers
are checked for real in tests/stack and tests/browser). An owner's refusals must not tell a
guessed path from another owner's existing file: same status, same body.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest

from vapi_chargeback.airflow.page_access import FORBIDDEN, Scope, Viewer
from vapi_chargeback.airflow.statements_page import Source, create_app
from vapi_chargeback.config import ChargebackConfig

from support.delivery_samples import PERIOD, PREVIOUS, chargeback_config

BASE = "http://testserver/"
NAMES = {"sales": "Sales", "support": "Customer <Support>"}
SALES_OWNER = Viewer("sam", "Sales-Owner@Example.com", frozenset({"Chargeback Owner"}), False)
FINANCE = Viewer("fiona", "fiona@example.com", frozenset(), finance=True)
STRANGER = Viewer("zoe", "zoe@example.com", frozenset({"Viewer"}), finance=False)


def get(
    output: Path, viewer: Viewer, url: str, config: ChargebackConfig | None = None
) -> httpx.Response:
    found = Source(output.as_uri(), NAMES, config or chargeback_config())
    app = create_app(output.parent, source=lambda: found, viewer=lambda: viewer)

    async def request() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            return await client.get(url)

    return asyncio.run(request())


def test_an_owner_sees_only_their_cost_centers_workbooks(output: Path) -> None:
    page = get(output, SALES_OWNER, "/").text
    links = re.findall(r"href='([^']+)'", page)
    assert links == [
        f"files/{PERIOD}/cost-centers/sales-{PERIOD}.xlsx",
        f"files/{PREVIOUS}/cost-centers/sales-{PREVIOUS}.xlsx",
    ]
    assert "support" not in page.lower() and "Total USD" not in page
    assert "Month to date" not in page and "Reconciliation" not in page
    body = get(output, SALES_OWNER, links[0]).content
    assert body == (output / PERIOD / "cost-centers" / f"sales-{PERIOD}.xlsx").read_bytes()


@pytest.mark.parametrize(
    "url",
    [
        f"files/{PERIOD}/cost-centers/support-{PERIOD}.xlsx",  # another owner's, exists
        f"files/{PERIOD}/chargeback-{PERIOD}.xlsx",  # org-wide workbook
        f"files/{PERIOD}/chargeback-{PERIOD}.csv",
        f"files/{PERIOD}/manifest.json",
        f"files/{PERIOD}/delivery.json",
        f"files/{PERIOD}/cost-centers/nosuch-{PERIOD}.xlsx",  # guessed
        "files/2031-01/cost-centers/support-2031-01.xlsx",  # guessed month, another's
        f"files/{PERIOD}/../{PREVIOUS}/manifest.json",
        f"versions/{PERIOD}/v1/chargeback-{PERIOD}.csv",
        f"_mtd/{PERIOD}/mtd-{PERIOD}-05.json",
        "files/not-a-month/x",
    ],
)
def test_every_refusal_to_an_owner_is_the_same_403(output: Path, url: str) -> None:
    response = get(output, SALES_OWNER, url)
    assert (response.status_code, response.json()) == (403, {"detail": FORBIDDEN})


def test_an_owners_own_workbook_of_a_month_not_published_is_a_plain_404(output: Path) -> None:
    """Theirs to ask for: saying it is not there reveals nothing of anyone else."""
    response = get(output, SALES_OWNER, "files/2031-01/cost-centers/sales-2031-01.xlsx")
    assert response.status_code == 404


def test_ownership_by_group(output: Path) -> None:
    config = chargeback_config()
    support = config.cost_centers[1].model_copy(update={"owner_groups": ["Support Leads"]})
    config = config.model_copy(update={"cost_centers": [config.cost_centers[0], support]})
    lead = Viewer("lee", "lee@example.com", frozenset({"Support Leads"}), finance=False)
    page = get(output, lead, "/", config).text
    assert re.findall(r"href='([^']+)'", page)[0] == (
        f"files/{PERIOD}/cost-centers/support-{PERIOD}.xlsx"
    )
    assert (
        get(output, lead, f"files/{PERIOD}/cost-centers/sales-{PERIOD}.xlsx", config).status_code
        == 403
    )


def test_a_user_owning_nothing_is_told_so_and_gets_nothing(output: Path) -> None:
    page = get(output, STRANGER, "/").text
    assert "No cost center names you as its owner" in page
    assert "href=" not in page
    response = get(output, STRANGER, f"files/{PERIOD}/cost-centers/sales-{PERIOD}.xlsx")
    assert response.status_code == 403


def test_without_a_readable_config_an_owner_owns_nothing(output: Path) -> None:
    assert Viewer.cost_centers(SALES_OWNER, None) == frozenset()
    assert not Scope(False, frozenset()).may_read(PERIOD, f"cost-centers/sales-{PERIOD}.xlsx")


def test_finance_sees_every_file(output: Path) -> None:
    page = get(output, FINANCE, "/").text
    links = set(re.findall(r"href='(files/[^']+)'", page))
    assert f"files/{PERIOD}/chargeback-{PERIOD}.xlsx" in links
    assert f"files/{PERIOD}/cost-centers/support-{PERIOD}.xlsx" in links
    for link in links:
        assert get(output, FINANCE, link).status_code == 200, link
    assert get(output, FINANCE, f"files/{PERIOD}/cost-centers/nosuch.xlsx").status_code == 404
