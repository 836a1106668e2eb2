"""Drives Gantry's fault proxy with Toxiproxy's own Python client
(toxiproxy-python, unchanged): the proxy must behave as Toxiproxy does for
a client written against Toxiproxy. Run by tests/toxiproxy.rs with the API's
port and an echo upstream's address; exits non-zero on the first mismatch."""

import sys
import time

try:
    import requests
    from toxiproxy import Toxiproxy
    from toxiproxy.exceptions import InvalidToxic, NotFound
except ImportError as e:  # the Rust test says how to install it
    print(f"missing Python module: {e}", file=sys.stderr)
    sys.exit(3)

api_port, upstream = int(sys.argv[1]), sys.argv[2]
server = Toxiproxy()
server.update_api_consumer("127.0.0.1", api_port)


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def get(listen):
    return requests.get(f"http://{listen}/through/the/link", timeout=10)


check(server.running(), "the API answers where the client looks")
check(server.version(), "GET /version answers")

proxy = server.create(upstream=upstream, name="echo", listen="127.0.0.1:0")
listen = proxy.listen
check(not listen.endswith(":0"), f"the proxy reports the port it listens on ({listen})")
check("echo" in server.proxies(), "GET /proxies lists it by name")

r = get(listen)
check(r.status_code == 200 and r.json()["path"] == "/through/the/link", "a request passes through untouched")

proxy.add_toxic(type="latency", attributes={"latency": 300})
check("latency_downstream" in proxy.toxics(), "the toxic is named <type>_<stream> and listed")
started = time.monotonic()
get(listen)
check(time.monotonic() - started >= 0.3, "latency holds the answer at least 300 ms")
proxy.destroy_toxic("latency_downstream")
check(proxy.toxics() == {}, "a destroyed toxic is gone")

with proxy.down():
    try:
        get(listen)
        check(False, "a disabled proxy refuses connections")
    except requests.exceptions.ConnectionError:
        check(True, "a disabled proxy refuses connections")
check(get(listen).status_code == 200, "enabled again, it serves")

proxy.add_toxic(type="reset_peer", attributes={"timeout": 0})
try:
    get(listen)
    check(False, "reset_peer resets the connection")
except requests.exceptions.ConnectionError:
    check(True, "reset_peer resets the connection")

try:
    proxy.add_toxic(type="meteor", attributes={})
    check(False, "an unknown toxic type is refused")
except InvalidToxic:
    check(True, "an unknown toxic type is refused (400)")

check(server.reset(), "POST /reset")
check(proxy.toxics() == {}, "reset removed every toxic")
check(get(listen).status_code == 200, "after reset it serves")

proxy.add_toxic(type="bandwidth", name="thin", stream="upstream", toxicity=0.5, attributes={"rate": 100})
toxic = proxy.get_toxic("thin")
check(toxic.stream == "upstream" and toxic.toxicity == 0.5 and toxic.attributes == {"rate": 100},
      "a toxic reads back as it was written")

try:
    server.create(upstream=upstream, name="echo")
    check(False, "a second proxy of the same name is refused")
except Exception:
    check(True, "a second proxy of the same name is refused")

try:
    requests.get(f"http://127.0.0.1:{api_port}/proxies/nothing", timeout=5).raise_for_status()
    check(False, "an unknown proxy is a 404")
except requests.exceptions.HTTPError:
    check(True, "an unknown proxy is a 404")

print("done")
