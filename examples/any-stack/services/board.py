#!/usr/bin/env python3
"""board: a Python service that talks to the registry itself, with py-consul.

It knows nothing of Gantry: it uses the Consul client a Python team would
(py-consul, from PyPI, unchanged), so the same code runs against Consul in
production and against Gantry's dev registry in tests. It:

  * registers itself with a TTL check and keeps the check passing
    (and deregisters on SIGTERM);
  * reads its title from the KV store (config/board/title) on every
    request, so a change shows without a restart;
  * finds the greeter's passing instances by tag and calls one of them;
  * elects a leader among its instances with a session and a KV lock
    (service/board/leader): the session is tied to the instance's own check,
    so an instance that dies loses the lock once its TTL runs out, and
    another takes it.

Environment:
  PORT               where to listen (required)
  HOST               the address to bind (default 127.0.0.1)
  ADVERTISE          the address it registers (default HOST)
  INSTANCE_ID        its service id in the registry (required)
  CONSUL_HTTP_ADDR   the registry, as every Consul client reads it
  CONSUL_HTTP_TOKEN  its ACL token
  GREETER_TAG        the tag of the greeters it calls (default v1)
  CONSUL_DNS         the registry's DNS interface, host:port (optional)

GET /board         {"title", "leader", "me", "greeting"}: the greeting comes
                   from a greeter found by tag, called with the caller's
                   X-User-Id and X-Username
GET /greeters?tag= the passing greeter instances carrying the tag
GET /srv/<service> the ports an SRV query of _<service>._tcp.service.consul
                   answers, asked of the registry's DNS (CONSUL_DNS)
GET /health        200
"""

import json
import os
import random
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import consul

TTL = "3s"
HEARTBEAT = 1.0
TITLE_KEY = "config/board/title"
LEADER_KEY = "service/board/leader"


class Board:
    def __init__(self):
        self.id = os.environ["INSTANCE_ID"]
        self.port = int(os.environ["PORT"])
        self.host = os.environ.get("HOST", "127.0.0.1")
        self.advertise = os.environ.get("ADVERTISE", self.host)
        self.greeter_tag = os.environ.get("GREETER_TAG", "v1")
        # CONSUL_HTTP_ADDR and CONSUL_HTTP_TOKEN, as py-consul reads them.
        self.consul = consul.Consul()
        self.check_id = f"service:{self.id}"
        self.leader = None
        self.stopping = threading.Event()

    def register(self):
        # Critical until the first heartbeat, and removed a minute after it
        # stops, as a service that may die without deregistering should be.
        check = consul.Check.ttl(TTL)
        check["DeregisterCriticalServiceAfter"] = "1m"
        self.consul.agent.service.register(
            "board", service_id=self.id, address=self.advertise, port=self.port, tags=["py-consul"], check=check
        )
        self.consul.agent.check.ttl_pass(self.check_id, "serving")

    def heartbeat(self):
        while not self.stopping.wait(HEARTBEAT):
            try:
                self.consul.agent.check.ttl_pass(self.check_id, "serving")
            except Exception as e:  # the registry restarted: register again
                log(f"heartbeat failed ({e}); registering again")
                try:
                    self.register()
                except Exception as again:
                    log(f"registering again failed: {again}")

    def title(self):
        _, entry = self.consul.kv.get(TITLE_KEY)
        return entry["Value"].decode() if entry and entry["Value"] else "board"

    def elect(self):
        """Takes the leader lock whenever it is free; watches it otherwise."""
        session = None
        index = None
        while not self.stopping.is_set():
            try:
                if session is None:
                    # Tied to this instance's check: if it dies, its TTL runs
                    # out, the session ends and the lock is released.
                    session = self.consul.session.create(
                        name=f"board leader {self.id}",
                        checks=["serfHealth", self.check_id],
                        lock_delay=1,
                        behavior="release",
                    )
                index, entry = self.consul.kv.get(LEADER_KEY, index=index, wait="5s")
                if entry and entry.get("Session"):
                    self.leader = entry["Value"].decode() if entry["Value"] else None
                    continue
                self.leader = None
                if self.consul.kv.put(LEADER_KEY, self.id, acquire=session):
                    log("leader")
                    index = None
                else:
                    # Another took it first, or it is in its lock-delay.
                    self.stopping.wait(0.5)
                    index = None
            except consul.ConsulException as e:
                log(f"election: {e}; starting a new session")
                session, index = None, None
                self.stopping.wait(1)
            except Exception as e:
                log(f"election: {e}")
                index = None
                self.stopping.wait(1)
        if session:
            try:
                self.consul.session.destroy(session)
            except Exception:
                pass

    def greeters(self, tag):
        _, entries = self.consul.health.service("greeter", tag=tag, passing=True)
        return [(e["Service"]["ID"], e["Service"]["Address"], e["Service"]["Port"]) for e in entries]

    def stop(self):
        self.stopping.set()
        try:
            self.consul.agent.service.deregister(self.id)
        except Exception:
            pass


def srv_ports(dns, service):
    """The ports of an SRV answer, asked over UDP as any resolver asks."""
    host, port = dns.rsplit(":", 1)
    name = f"_{service}._tcp.service.consul"
    query = struct.pack(">HHHHHH", random.randrange(65536), 0x0100, 1, 0, 0, 0)
    query += b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    query += struct.pack(">HH", 33, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(query, (host, int(port)))
        reply, _ = sock.recvfrom(1500)
    answers = struct.unpack(">H", reply[6:8])[0]
    at = 12
    while reply[at] != 0:  # the question's name, then its type and class
        at += reply[at] + 1
    at += 5
    ports = []
    for _ in range(answers):
        while reply[at] != 0 and reply[at] & 0xC0 != 0xC0:
            at += reply[at] + 1
        at += 2 if reply[at] & 0xC0 == 0xC0 else 1
        rtype, _, _, length = struct.unpack(">HHIH", reply[at : at + 10])
        at += 10
        if rtype == 33:
            ports.append(struct.unpack(">H", reply[at + 4 : at + 6])[0])
        at += length
    return sorted(ports)


def log(message):
    print(f"board {os.environ.get('INSTANCE_ID', '?')}: {message}", file=sys.stderr, flush=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "board/1"

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.log_request(status)
        head = (
            f"HTTP/1.1 {status} {self.responses[status][0]}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n"
            f"X-Served-By: {self.server.board.id}\r\n"
            "\r\n"
        ).encode()
        self.wfile.write(head + data)

    def do_GET(self):
        board = self.server.board
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path == "/health":
            self.answer(200, {"status": "ok"})
        elif url.path == "/greeters":
            tag = query.get("tag", [board.greeter_tag])[0]
            found = sorted(i for i, _, _ in board.greeters(tag))
            self.answer(200, {"tag": tag, "greeters": found})
        elif url.path == "/board":
            self.board()
        elif url.path.startswith("/srv/") and os.environ.get("CONSUL_DNS"):
            service = url.path[len("/srv/") :]
            self.answer(200, {"service": service, "ports": srv_ports(os.environ["CONSUL_DNS"], service)})
        else:
            self.answer(404, {"error": "not_found", "message": f"no route for {url.path}"})

    def board(self):
        board = self.server.board
        body = {"title": board.title(), "leader": board.leader, "me": board.id}
        found = board.greeters(board.greeter_tag)
        if not found:
            body.update(error="no_greeter", message=f"no passing greeter carries the tag {board.greeter_tag!r}")
            self.answer(503, body)
            return
        greeter_id, address, port = random.choice(found)
        request = urllib.request.Request(f"http://{address}:{port}/hello")
        for name in ("X-User-Id", "X-Username"):
            if self.headers.get(name):
                request.add_header(name, self.headers[name])
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                body["greeting"] = json.load(resp)
        except urllib.error.HTTPError as e:
            body["greeting"] = {"status": e.code}
        except OSError as e:
            body.update(error="greeter_unreachable", message=f"{greeter_id}: {e}")
            self.answer(502, body)
            return
        body["greeter"] = greeter_id
        self.answer(200, body)

    def log_message(self, format, *args):
        sys.stderr.write("board %s: %s\n" % (self.server.board.id, format % args))


def main():
    board = Board()
    server = ThreadingHTTPServer((board.host, board.port), Handler)
    server.daemon_threads = True
    server.board = board
    board.register()
    for work in (board.heartbeat, board.elect):
        threading.Thread(target=work, daemon=True).start()

    def stop(signum, frame):
        board.stop()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log(f"listening on {board.host}:{board.port}")
    server.serve_forever()


if __name__ == "__main__":
    main()
