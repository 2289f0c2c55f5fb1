"""Live servers for tests that need real HTTP (generated clients, several processes)."""

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from werkzeug.serving import make_server

_handed_out: set[int] = set()


def free_port() -> int:
    """A free port on 127.0.0.1, never one handed out before in this run (a test may ask for several
    before binding any): the OS's choice, or one in EXPORTCTL_TEST_PORTS ("8200-8299") when several
    people share a machine and each keeps to a range."""
    chosen = os.environ.get("EXPORTCTL_TEST_PORTS")
    candidates = range(int(chosen.split("-")[0]), int(chosen.split("-")[1]) + 1) if chosen else [0] * 20
    for port in candidates:
        if port in _handed_out:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            found = probe.getsockname()[1]
        if found not in _handed_out:
            _handed_out.add(found)
            return found
    raise RuntimeError(f"no free port in {chosen or 'the ephemeral range'}")


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """`app` on a real HTTP server (werkzeug, threaded) in a thread; yields its base URL."""
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
