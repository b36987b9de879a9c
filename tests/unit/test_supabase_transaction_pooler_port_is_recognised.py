"""A DATABASE_URL on port 6543 (Supabase's transaction-mode pooler) is taken as pooled without
relying on the probe alone; other ports, and URLs without one, are left to the probe."""

from __future__ import annotations

import pytest

from reconciler.store.postgres import names_the_transaction_pooler_port


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("postgresql://postgres.ref:pw@aws-0-eu-west-1.pooler.supabase.com:6543/postgres", True),
        ("postgresql://postgres.ref:pw@aws-0-eu-west-1.pooler.supabase.com:5432/postgres", False),
        ("postgresql://postgres:pw@db.ref.supabase.co/postgres", False),
        ("postgresql://postgres:pw@db.ref.supabase.co:notaport/postgres", False),
    ],
)
def test_port_6543_names_the_pooler(dsn: str, expected: bool) -> None:
    assert names_the_transaction_pooler_port(dsn) is expected
