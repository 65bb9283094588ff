"""Fixtures for the statement writers; the samples themselves live in statement_samples."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from vapi_chargeback.statement import Statement

from support.statement_samples import sample_statement


@pytest.fixture
def statement() -> Statement:
    return sample_statement()


@pytest.fixture
def make_statement() -> Callable[..., Statement]:
    return sample_statement
