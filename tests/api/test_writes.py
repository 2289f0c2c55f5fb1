"""How every write runs: only the known write races are retried."""

import pytest
from sqlalchemy.exc import IntegrityError

from service.api import writes


def integrity_error(text: str) -> IntegrityError:
    return IntegrityError("INSERT ...", {}, Exception(text))


@pytest.mark.parametrize(
    "text",
    [
        "UNIQUE constraint failed: entries.list_id, entries.country_code",
        'duplicate key value violates unique constraint "uq_entries_list_id_country_code"',
        "UNIQUE constraint failed: idempotency_records.api_key_id, idempotency_records.key",
    ],
)
def test_a_known_race_is_retried_from_a_fresh_read(app, editor, text):
    calls = []

    def operation(_session, _principal):
        calls.append(1)
        if len(calls) == 1:
            raise integrity_error(text)
        return writes.Outcome({"ok": True}, 201)

    with app.test_request_context("/v1/anything", method="POST", headers=editor):
        response = writes.perform(operation)

    assert response.status_code == 201
    assert len(calls) == 2


def test_any_other_integrity_error_is_not_retried(app, editor):
    calls = []

    def operation(_session, _principal):
        calls.append(1)
        raise integrity_error("CHECK constraint failed: status")

    with (
        app.test_request_context("/v1/anything", method="POST", headers=editor),
        pytest.raises(IntegrityError),
    ):
        writes.perform(operation)

    assert len(calls) == 1
