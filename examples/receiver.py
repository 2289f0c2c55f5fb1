#!/usr/bin/env python3
"""A small webhook receiver for exportctl: verifies Standard Webhooks signatures and prints events.

    WEBHOOK_SECRET=whsec_... .venv/bin/python examples/receiver.py --port 9000

Subscribe it with `POST /v1/webhooks {"url": "http://127.0.0.1:9000/hook"}` (the
response holds the secret). It answers 204 to a verified event, 401 to a bad
signature, and remembers webhook-ids so a retried delivery is printed once.
Events carry their feed `sequence`: after downtime, catch up with
`GET /v1/events?after=<last sequence seen>`.
"""

import argparse
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

MAX_BODY = 1024 * 1024


def describe(event: dict) -> str:
    data = event.get("data", {})
    if event.get("type") == "entry.status_changed":
        pending = data.get("expected_effective_on")
        return (
            f"{data['country']['name']} ({data['country']['alpha_2']}) on {data['list']['code']} "
            f"{data['list']['name']}: {data.get('from_status') or 'new'} -> {data['status']}, "
            f"effective {data.get('effective_on') or 'unrecorded'}"
            + (f", expected {pending}" if pending else "")
            + f"; restrictions apply: {data.get('restrictions_apply')}"
            + "".join(
                f"\n      source: {s['title']} ({s['publisher']}) {s['url']}" for s in data.get("sources", [])
            )
        )
    return json.dumps(data, ensure_ascii=False)


def make_handler(verifier: Webhook, out=sys.stdout):
    seen: set[str] = set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.send_error(413)
                return
            body = self.rfile.read(length)
            try:
                event = verifier.verify(body, dict(self.headers))
            except WebhookVerificationError as exc:
                print(f"rejected: {exc}", file=out, flush=True)
                self.send_response(401)
                self.end_headers()
                return
            message_id = self.headers["webhook-id"]
            if message_id in seen:
                print(f"{message_id}: duplicate, already handled", file=out, flush=True)
            else:
                seen.add(message_id)
                line = f"#{event.get('sequence')} {message_id} {event['type']}: {describe(event)}"
                print(line, file=out, flush=True)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args):  # quiet: the events are the output
            pass

    return Handler


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--secret", default=os.environ.get("WEBHOOK_SECRET"), help="or WEBHOOK_SECRET")
    args = parser.parse_args(argv)
    if not args.secret:
        parser.error("give the subscription's secret with --secret or WEBHOOK_SECRET")
    server = ThreadingHTTPServer((args.host, args.port), make_handler(Webhook(args.secret)))
    print(f"listening on http://{args.host}:{args.port}/hook", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
