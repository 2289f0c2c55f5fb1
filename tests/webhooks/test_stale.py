"""list.stale: emitted once by the worker's schedule when a list turns stale, to subscribers who ask."""

from sqlalchemy import select

from service.models import Event
from tests.webhooks.conftest import subscribe

CHECKS = "/v1/lists/us-ear-d1/checks"


def a_check():
    return {
        "source": {"title": "15 CFR 740 Supp. No. 1", "publisher": "eCFR", "url": "https://www.ecfr.gov/x"},
        "found": "unchanged",
    }


def test_a_list_turning_stale_is_announced_once(client, editor, receiver, worker, session, frozen_clock):
    subscribe(client, editor, receiver.url_for("/stale"), event_types=["list.stale"], lists=["us-ear-d1"])
    receiver.expect_request("/stale", method="POST").respond_with_data("ok")
    client.post(CHECKS, json=a_check(), headers=editor)
    worker.run_once()  # every other seeded list is stale already: announced once each
    assert len(receiver.log) == 0  # d1 was just checked
    frozen_clock.advance(days=35)
    worker.run_once()
    assert len(receiver.log) == 0
    frozen_clock.advance(days=1)
    assert worker.run_once() == 1
    frozen_clock.advance(days=3)
    assert worker.run_once() == 0
    stale = session.scalars(
        select(Event).where(Event.type == "list.stale", Event.list_id == "us-ear-d1")
    ).all()
    assert len(stale) == 1
    assert stale[0].data["age_days"] == 36
    # Not in the public feed: it is a freshness signal for those who ask.
    assert client.get("/v1/events?type=list.stale").status_code == 422
    others = session.scalars(
        select(Event).where(Event.type == "list.stale", Event.list_id != "us-ear-d1")
    ).all()
    assert len(others) == len({e.list_id for e in others}) > 0  # the seeded lists already stale: once each
