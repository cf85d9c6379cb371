#!/usr/bin/env python3
"""Prints each notification Alertmanager POSTs to the webhook receivers of alertmanager.yml
(http://127.0.0.1:5001/page and /ticket): one line per alert, for trying the demo.

    python3 deploy/alertmanager/receiver.py [PORT]   # default 5001; Ctrl-C stops it
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        for a in body.get("alerts", []):
            labels = a.get("labels", {})
            where = ",".join(f"{k}={labels[k]}" for k in ("account", "package_type", "package_id") if k in labels)
            print(f"{self.path[1:]}: {a.get('status')} {labels.get('alertname')} {where}: "
                  f"{a.get('annotations', {}).get('summary', '')}", flush=True)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):  # no access log: the lines above are the point
        pass


HTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 5001), Receiver).serve_forever()
