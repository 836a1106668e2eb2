#!/usr/bin/env python3
"""greeter: a small HTTP service from Python's standard library alone.

It knows nothing of Gantry. It does not verify tokens: it trusts the identity
headers the gateway in front of it sets (X-User-Id, X-Username) and refuses a
request without them, the way a service behind Kong trusts X-Consumer-*. That
is only safe when nothing but the gateway can reach it; the gateway strips
client-sent copies of those headers.

Environment:
  PORT         where to listen (required)
  HOST         the address to bind (default 127.0.0.1)
  INSTANCE_ID  sent back in X-Served-By so load spreading can be observed
  GREETING_FILE  a file whose first line is the greeting (default "hello")
"""

import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 64 * 1024


class Handler(BaseHTTPRequestHandler):
    # Keep-alive, as a gateway's connection pool expects of an upstream.
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes: without TCP_NODELAY the
    # body waits for the peer's delayed ACK (~40 ms) on a kept-alive connection.
    disable_nagle_algorithm = True
    server_version = "greeter/1"

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.log_request(status)
        head = (
            f"HTTP/1.1 {status} {self.responses[status][0]}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n"
            f"X-Served-By: {self.server.instance_id}\r\n"
            "\r\n"
        ).encode()
        # Head and body in one write: an instance killed between two writes
        # would leave its caller with a head and no body.
        self.wfile.write(head if self.command == "HEAD" else head + data)

    def identity(self):
        user_id = self.headers.get("X-User-Id")
        if not user_id:
            self.answer(401, {"error": "unauthenticated", "message": "no X-User-Id: call me through the gateway"})
            return None
        return user_id, self.headers.get("X-Username", "")

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/health":
            self.answer(200, {"status": "ok"})
        elif path in ("/hello", "/hello/"):
            who = self.identity()
            if who:
                self.answer(200, {"hello": who[1] or who[0], "user_id": who[0], "instance": self.server.instance_id, "greeting": self.server.greeting})
        else:
            self.answer(404, {"error": "not_found", "message": f"no route for {path}"})

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        if path != "/echo":
            self.answer(404, {"error": "not_found", "message": f"no route for {path}"})
            return
        who = self.identity()
        if not who:
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            self.answer(400, {"error": "bad_length", "message": "Content-Length is not a number"})
            return
        if length > MAX_BODY:
            self.answer(413, {"error": "too_large", "message": f"at most {MAX_BODY} bytes"})
            return
        try:
            body = json.loads(self.rfile.read(length) or b"null")
        except ValueError:
            self.answer(400, {"error": "bad_json", "message": "the body is not JSON"})
            return
        self.answer(200, {"from": who[1] or who[0], "echo": body, "instance": self.server.instance_id})

    def log_request(self, code="-", size="-"):
        # Health checks come every second: logged, they would bury the rest.
        if self.path != "/health":
            super().log_request(code, size)

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.server.instance_id, fmt % args))


def main():
    port = os.environ.get("PORT")
    if not port or not port.isdigit():
        sys.exit("greeter: PORT must be set to a port number, e.g. PORT=8080")
    host = os.environ.get("HOST", "127.0.0.1")
    server = ThreadingHTTPServer((host, int(port)), Handler)
    server.daemon_threads = True
    server.instance_id = os.environ.get("INSTANCE_ID", f"greeter-{port}")
    server.greeting = "hello"
    if os.environ.get("GREETING_FILE"):
        with open(os.environ["GREETING_FILE"]) as f:
            server.greeting = f.readline().strip()
    # SIGTERM: finish and exit 0, as an orchestrator's stop expects.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"greeter listening on {host}:{port} as {server.instance_id}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
