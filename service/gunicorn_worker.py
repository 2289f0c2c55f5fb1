"""gunicorn's threaded worker, answering what gunicorn refuses itself as the app answers its errors.

gunicorn reads the request line and headers before the app sees anything, and refuses some
requests there: a request line over its limit (414), headers over theirs (431), bytes that are
not HTTP (400). It answered those with an HTML page. This worker (`exportctl serve`, `make run`,
docker-compose's gunicorn.conf) sends an RFC 9457 problem document instead, with a type that
resolves at /problems/<slug> like every other.
"""

import json

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

from service.errors import PROBLEM_MIMETYPE, gunicorn_problem_slug


def write_problem(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn.util.write_error's contract (the worker's handle_error calls it), as problem+json."""
    body = json.dumps(
        {
            "type": f"/problems/{gunicorn_problem_slug(status_int)}",
            "title": reason,
            "status": status_int,
            "detail": mesg or reason,
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        f"Content-Type: {PROBLEM_MIMETYPE}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


class ProblemThreadWorker(ThreadWorker):
    """gunicorn's gthread worker; what it refuses itself gets a problem document (`write_problem`)."""

    def init_process(self) -> None:
        # Worker.handle_error writes through gunicorn.util.write_error: only this worker process's
        # gunicorn calls it, and it is gunicorn's one way to answer a request it refused.
        util.write_error = write_problem
        super().init_process()
