"""Event numbers and the data version: the counters every writer takes."""

from sqlalchemy import event

from service import db
from service.domain.events import DATA_COUNTER, EVENTS_COUNTER, next_sequence
from service.models import ControlList


def test_an_event_number_is_taken_after_the_pending_rows_move_the_data_version(app):
    """Writers lock the data counter before the events counter, whatever they left pending:
    two writers taking them in opposite orders could deadlock on PostgreSQL."""
    counters = []

    def record(_conn, _cursor, statement, parameters, _context, _many):
        if statement.startswith("UPDATE counters"):
            values = parameters.values() if isinstance(parameters, dict) else parameters
            counters.extend(v for v in values if v in (DATA_COUNTER, EVENTS_COUNTER))

    with app.app_context():
        engine = db.database().engine
        event.listen(engine, "before_cursor_execute", record)
        try:
            with db.database().sessionmaker() as session:
                session.get(ControlList, "us-ear-d1").name = "Renamed"  # pending, not flushed
                next_sequence(session)
                session.rollback()
        finally:
            event.remove(engine, "before_cursor_execute", record)

    assert counters == [DATA_COUNTER, EVENTS_COUNTER]
