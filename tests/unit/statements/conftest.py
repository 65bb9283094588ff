"""Fixtures for the statement writers; the samples themselves live in statement_samples."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from statement_samples import sample_statement

from vapi_chargeback.statement import Statement


@pytest.fixture
def statement() -> Statement:
    return sample_statement()


@pytest.fixture
def make_statement() -> Callable[..., Statement]:
    return sample_statement
