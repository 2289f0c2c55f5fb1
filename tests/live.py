"""Live servers for tests that need real HTTP (generated clients, several processes)."""

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from werkzeug.serving import make_server


def free_port() -> int:
    """A free port on 127.0.0.1: the OS's choice, or one in EXPORTCTL_TEST_PORTS ("8200-8299") when
    several people share a machine and each keeps to a range."""
    chosen = os.environ.get("EXPORTCTL_TEST_PORTS")
    candidates = range(int(chosen.split("-")[0]), int(chosen.split("-")[1]) + 1) if chosen else [0]
    for port in candidates:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise RuntimeError(f"no free port in {chosen}")


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
