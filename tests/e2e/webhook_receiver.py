"""A webhook receiver for the end-to-end tests: verifies every request with the
`standardwebhooks` package (an implementation independent of authtrail's) and records it.

    webhook_receiver.py LOG [--hold-file PATH]

The signing secret comes from the WEBHOOK_SECRET environment variable. Prints the port it
listens on (127.0.0.1) as its first line. POST /hook answers 200, POST /gone 404. While
the hold file exists, requests are held (recorded as received, answered once it is gone).
Each request appends one JSON line to LOG: path, webhook-id, verified, alert id, action.
"""

import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

args = argparse.ArgumentParser()
args.add_argument("log")
args.add_argument("--hold-file")
options = args.parse_args()
webhook = Webhook(os.environ["WEBHOOK_SECRET"])
lock = threading.Lock()


def record(entry):
    with lock, open(options.log, "a") as log:
        log.write(json.dumps(entry) + "\n")


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            payload = webhook.verify(body, headers)
            verified = True
        except Exception as error:  # any verification failure is recorded, not raised
            payload, verified = {}, False
            print(f"verification failed: {error}", file=sys.stderr)
        alert = payload.get("alert", {}) if isinstance(payload, dict) else {}
        record({
            "path": self.path,
            "id": headers.get("webhook-id"),
            "verified": verified,
            "alert_id": alert.get("id"),
            "action": payload.get("action") if isinstance(payload, dict) else None,
        })
        while options.hold_file and os.path.exists(options.hold_file):
            time.sleep(0.05)
        status = 200 if self.path == "/hook" else 404
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *_):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
