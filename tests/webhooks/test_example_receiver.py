"""examples/receiver.py, fed by the real worker: it verifies, prints, and refuses forgeries."""

import importlib.util
import io
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import requests
from standardwebhooks.webhooks import Webhook

from tests.conftest import a_change
from tests.webhooks.conftest import _ServiceTime, subscribe

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "receiver.py"


def load_example():
    spec = importlib.util.spec_from_file_location("example_receiver", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_receiver_verifies_and_prints_events(client, editor, worker, monkeypatch):
    example = load_example()
    monkeypatch.setattr("standardwebhooks.webhooks.datetime", _ServiceTime)  # the tests' clock
    out = io.StringIO()
    server = ThreadingHTTPServer(("127.0.0.1", 0), example.make_handler(Webhook("whsec_" + "A" * 32), out))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/hook"
    try:
        webhook_id, secret = subscribe(client, editor, url, countries=["VN"])
        server.RequestHandlerClass = example.make_handler(Webhook(secret), out)
        client.post("/v1/lists/us-ear-d1/entries/VN/changes", json=a_change(), headers=editor)
        worker.run_once()
        forged = requests.post(
            url,
            data=b'{"type": "entry.status_changed"}',
            headers={"webhook-id": "evt_1", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA"},
            timeout=5,
        )
    finally:
        server.shutdown()
        server.server_close()

    printed = out.getvalue()
    assert (
        "entry.status_changed: Vietnam (VN) on D:1 National Security: pending_removal -> removed" in printed
    )
    assert "source: Revision of Country Group D entries for Vietnam" in printed
    assert forged.status_code == 401
    log = client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=editor).get_json()["items"]
    assert log[0]["state"] == "succeeded"
    assert log[0]["attempt_log"][0]["http_status"] == 204
