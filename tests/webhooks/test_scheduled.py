"""Events when a date arrives: entry.took_effect and entry.pending_overdue, exactly once,
driven by the worker's run_once() (and `exportctl schedule run`) with the clock moved."""

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from service import clock, db
from service.domain import schedule
from service.models import Event, ScheduledNotice
from service.webhooks.worker import DeliveryWorker
from tests.conftest import a_change, a_source
from tests.webhooks.conftest import received, subscribe, verify

D1_VN = "/v1/lists/us-ear-d1/entries/VN/changes"
D3_VN = "/v1/lists/us-ear-d3/entries/VN/changes"


def day(offset: int) -> str:
    return (clock.utcnow().date() + timedelta(days=offset)).isoformat()


def midnight(frozen_clock, offset_days: int) -> None:
    """Move the clock to 00:00 UTC `offset_days` from today."""
    today = frozen_clock.now.date() + timedelta(days=offset_days)
    frozen_clock.now = datetime(today.year, today.month, today.day, tzinfo=UTC)


def events_of(client, type_):
    return client.get(f"/v1/events?type={type_}&limit=100").get_json()["items"]


def record(client, editor, path, **change):
    response = client.post(path, json=a_change(**change), headers=editor)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["change"]


def test_a_removal_effective_tomorrow_is_announced_once_on_that_day(
    client, editor, receiver, worker, frozen_clock
):
    _, secret = subscribe(client, editor, receiver.url_for("/hook"), countries=["VN"])
    receiver.expect_request("/hook", method="POST").respond_with_data("ok")
    change = record(client, editor, D1_VN, effective_on=day(1))
    assert worker.run_once() == 1  # its entry.status_changed
    assert [p["type"] for _, p in received(receiver, secret)] == ["entry.status_changed"]

    frozen_clock.advance(hours=11, minutes=59)  # 23:59 the same day: not yet
    assert worker.run_once() == 0
    assert events_of(client, "entry.took_effect") == []

    midnight(frozen_clock, 1)
    assert worker.run_once() == 1
    [event] = events_of(client, "entry.took_effect")
    request, _ = receiver.log[-1]  # verified at the time it was sent
    payload = verify(secret, request.get_data(as_text=True), dict(request.headers))
    assert payload == event  # the delivery is the feed's event
    data = event["data"]
    assert data["took_effect_on"] == day(0)
    assert data["before"] == {
        "status": "pending_removal",
        "restrictions_apply": True,
        "basis": "recorded_change",
    }
    assert data["after"] == {"status": "removed", "restrictions_apply": False, "basis": "recorded_change"}
    assert data["change"]["id"] == change["id"]
    assert data["sources"][0]["citation"] == "91 FR 99999"
    assert data["list"]["id"] == "us-ear-d1"
    assert data["country"]["alpha_2"] == "VN"
    assert data["links"]["entry"] == "/v1/lists/us-ear-d1/entries/VN"

    frozen_clock.advance(hours=1)
    assert worker.run_once() == 0
    frozen_clock.advance(days=3)
    assert worker.run_once() == 0
    assert len(events_of(client, "entry.took_effect")) == 1
    assert len(received(receiver)) == 2


def test_a_change_recorded_already_in_effect_owes_nothing(client, editor, worker, frozen_clock, session):
    record(client, editor, D1_VN)  # effective 2026-11-20, before today
    frozen_clock.advance(days=30)
    worker.run_once()
    assert events_of(client, "entry.took_effect") == []
    assert session.scalar(select(func.count()).select_from(ScheduledNotice)) == 0


def test_a_worker_off_for_a_week_catches_up_in_order(client, editor, worker, frozen_clock):
    d1 = record(client, editor, D1_VN, effective_on=day(4))
    d3 = record(client, editor, D3_VN, effective_on=day(2))
    frozen_clock.advance(days=7)
    worker.run_once()
    took = events_of(client, "entry.took_effect")
    assert [e["data"]["change"]["id"] for e in took] == [d3["id"], d1["id"]]
    assert took[0]["sequence"] < took[1]["sequence"]
    worker.run_once()
    assert len(events_of(client, "entry.took_effect")) == 2


def test_a_backdated_correction_moves_the_event_to_its_own_date(client, editor, worker, frozen_clock):
    later = record(client, editor, D1_VN, effective_on=day(10))
    frozen_clock.advance(hours=1)
    earlier = record(
        client, editor, D1_VN, effective_on=day(5), note="Corrected: the rule takes effect earlier."
    )
    frozen_clock.advance(days=12)
    worker.run_once()
    [event] = events_of(client, "entry.took_effect")
    assert event["data"]["change"]["id"] == earlier["id"]
    assert event["data"]["took_effect_on"] == earlier["effective_on"]
    assert later["id"] != earlier["id"]  # the old date brings nothing: removed stays removed


def test_a_correction_for_the_same_day_overrides_the_change(client, editor, worker, frozen_clock):
    """The removal is withdrawn before its date: the removal never takes effect, so only the
    correction's event goes out."""
    record(client, editor, D1_VN, effective_on=day(3))
    correction = record(
        client,
        editor,
        D1_VN,
        status="listed",
        effective_on=day(3),
        sources=[a_source(citation="91 FR 10001")],
    )
    frozen_clock.advance(days=3)
    worker.run_once()
    [event] = events_of(client, "entry.took_effect")
    assert event["data"]["change"]["id"] == correction["id"]
    assert event["data"]["sources"][0]["citation"] == "91 FR 10001"
    assert event["data"]["before"]["status"] == "pending_removal"
    assert event["data"]["after"] == {
        "status": "listed",
        "restrictions_apply": True,
        "basis": "recorded_change",
    }


def test_a_pending_status_past_its_expected_date_is_overdue_once(
    client, editor, receiver, worker, frozen_clock
):
    _, secret = subscribe(client, editor, receiver.url_for("/hook"), event_types=["entry.pending_overdue"])
    receiver.expect_request("/hook", method="POST").respond_with_data("ok")
    pending = record(
        client, editor, D1_VN, status="pending_removal", effective_on=day(0), expected_effective_on=day(3)
    )
    midnight(frozen_clock, 3)  # the expected day itself: not yet overdue
    assert worker.run_once() == 0
    midnight(frozen_clock, 1)
    assert worker.run_once() == 1
    [(_, payload)] = received(receiver, secret)
    assert payload["type"] == "entry.pending_overdue"
    assert payload["data"]["change"]["id"] == pending["id"]
    assert payload["data"]["expected_effective_on"] == pending["expected_effective_on"]
    assert payload["data"]["status"] == "pending_removal"
    assert payload["data"]["restrictions_apply"] is True
    frozen_clock.advance(days=5)
    assert worker.run_once() == 0
    assert len(events_of(client, "entry.pending_overdue")) == 1


def test_a_pending_status_that_took_effect_in_time_is_not_overdue(client, editor, worker, frozen_clock):
    record(client, editor, D1_VN, status="pending_removal", effective_on=day(0), expected_effective_on=day(3))
    removal = record(client, editor, D1_VN, effective_on=day(2))
    frozen_clock.advance(days=10)
    worker.run_once()
    assert events_of(client, "entry.pending_overdue") == []
    assert [e["data"]["change"]["id"] for e in events_of(client, "entry.took_effect")] == [removal["id"]]


def test_several_workers_emit_each_event_exactly_once(app, client, editor, frozen_clock, session):
    record(client, editor, D1_VN, effective_on=day(1))
    record(client, editor, D3_VN, effective_on=day(2))
    record(client, editor, D1_VN, status="listed", effective_on=day(3))
    frozen_clock.advance(days=5)
    workers = [DeliveryWorker(app, name=f"w{i}") for i in range(4)]
    start = threading.Barrier(len(workers))
    results = []

    def run(worker):
        start.wait()
        results.append(worker.run_scheduled())

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for worker in workers:
        worker.close()
    assert sum(r.failed for r in results) == 0
    took = session.scalars(select(Event).where(Event.type == "entry.took_effect")).all()
    assert len(took) == 3
    assert len({e.change_id for e in took}) == 3
    assert sum(r.emitted for r in results) == 3


def test_a_claimed_notice_cannot_be_taken_again(app, client, editor, frozen_clock):
    record(client, editor, D1_VN, effective_on=day(1))
    frozen_clock.advance(days=1)
    with app.app_context(), db.database().sessionmaker() as s:
        [notice_id] = schedule.due_notices(s, clock.today(), 10)
        assert schedule.process_notice(s, notice_id, clock.utcnow()) is not None
        s.commit()
        assert schedule.process_notice(s, notice_id, clock.utcnow()) is None


def test_the_cli_runs_the_schedule_once(app, client, editor, frozen_clock):
    record(client, editor, D1_VN, effective_on=day(1))
    frozen_clock.advance(days=1)
    runner = app.test_cli_runner()
    first = runner.invoke(args=["schedule", "run"])
    assert first.exit_code == 0, first.output
    assert first.output.startswith("1 events emitted")
    again = runner.invoke(args=["schedule", "run"])
    assert again.output.startswith("0 events emitted")
    assert len(events_of(client, "entry.took_effect")) == 1
