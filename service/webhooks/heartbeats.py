"""Workers' heartbeats in the database: each running `exportctl worker` notes when it last went round
its loop, so any API process can report every worker's age on GET /metrics (a worker that died
without saying so shows as an ever older heartbeat; a row unheard of for a day is dropped)."""

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.models import WorkerHeartbeat

FORGET_AFTER = timedelta(days=1)
# A worker beats every third of its lease (5 s by default): one unheard of for a minute is gone.
ALIVE_WITHIN = timedelta(minutes=1)


def beat(session: Session, name: str, *, started_at: datetime, now: datetime) -> None:
    """Note that worker `name` is alive at `now` (the caller commits)."""
    session.merge(WorkerHeartbeat(name=name, started_at=started_at, beat_at=now))
    session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.beat_at < now - FORGET_AFTER))


def forget(session: Session, name: str) -> None:
    """A worker that stops cleanly takes its row away (the caller commits)."""
    session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.name == name))


def ages(session: Session, now: datetime) -> list[tuple[str, float]]:
    """(worker, seconds since its last heartbeat), oldest first."""
    rows = session.execute(
        select(WorkerHeartbeat.name, WorkerHeartbeat.beat_at).order_by(WorkerHeartbeat.beat_at)
    )
    return [(name, max(0.0, (now - beat_at).total_seconds())) for name, beat_at in rows]
