"""What gunicorn itself refuses (before the app sees a request) is problem+json like the app's errors."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from tests.live import free_port

COMMANDS = {
    # `make run`'s and `exportctl serve`'s
    "serve": ["-m", "service.cli", "serve"],
    # docker-compose's and the Dockerfile's
    "gunicorn.conf": ["-m", "gunicorn", "--config", "python:service.gunicorn_conf", "service.wsgi:app"],
}


@pytest.fixture(scope="module", params=list(COMMANDS))
def server(request, tmp_path_factory):
    """gunicorn on a fresh SQLite database, started each way the project starts it (HOST and PORT
    from the environment, as both read them)."""
    directory = tmp_path_factory.mktemp("gunicorn")
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{directory / 'db.sqlite3'}",
        "EXPORTCTL_WEB_WORKERS": "1",
        "HOST": "127.0.0.1",
        "PORT": str(port),
    }
    subprocess.run(
        [sys.executable, "-m", "service.cli", "db", "upgrade"], env=env, check=True, capture_output=True
    )
    log = directory / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, *COMMANDS[request.param]],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0] != 200:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the server did not answer /healthz within 60 s"
            time.sleep(0.2)
        yield port, log
    finally:
        process.terminate()
        process.wait(30)


def exchange(port: int, request: bytes) -> tuple[int | None, dict[str, str], bytes]:
    """Send raw bytes; the response's status, headers (lower-case names) and body."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            connection.sendall(request)
            received = b""
            while chunk := connection.recv(65536):
                received += chunk
    except OSError:
        return None, {}, b""
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {name.lower(): value for name, value in headers.items()}, body


@pytest.mark.parametrize(
    ("request_bytes", "status", "slug"),
    [
        (b"GET /v1/countries/VN?as_of=" + b"2" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri-too-long"),
        (
            b"GET /v1/countries/VN HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
            431,
            "headers-too-large",
        ),
        (b"NOT HTTP AT ALL\r\n\r\n", 400, "malformed-request"),
    ],
    ids=["request-line-too-long", "header-too-large", "not-http"],
)
def test_requests_gunicorn_refuses_get_a_problem_document(server, request_bytes, status, slug):
    port, _log = server
    found, headers, body = exchange(port, request_bytes)

    assert found == status
    assert headers["content-type"] == "application/problem+json"
    assert int(headers["content-length"]) == len(body)
    problem = json.loads(body)
    assert problem["type"] == f"/problems/{slug}"
    assert problem["status"] == status
    assert problem["title"] and problem["detail"]


def test_starting_logs_no_alembic_plugin_lines(server):
    """Each worker checks the schema with alembic, which announced its 7 plugins at INFO: 7 lines of
    noise per worker start (outside probe)."""
    _port, log = server
    text = log.read_text(errors="replace")

    assert "Booting worker" in text  # the log is the server's
    assert "setup plugin" not in text
