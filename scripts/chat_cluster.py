#!/usr/bin/env python3
"""Two nodes of examples/chat over one real Redis, driven by Python `websockets`.

Run by scripts/chat_cluster_test.sh (which installs redis-server and websockets
and builds the chat). Starts Redis and the nodes itself, on free loopback ports,
writes every pid it starts to $WORK/pids (for the calling script's trap), and
stops them all before it exits.

Checks: the user lists agree across the nodes; a message to everyone reaches all;
an addressed message reaches exactly its recipients on both nodes (and its
sender, marked), nobody else; malformed JSON and an unknown recipient get an
error and reach nobody; a node killed with SIGKILL leaves the other node's lists
within the bound the chat prints; Redis stopped: each node says so to its users
and keeps serving them; Redis started again: the nodes rejoin, the lists heal,
cross-node messages flow, and new names stay unique.

Usage: chat_cluster.py CHAT_BIN REDIS_SERVER WORK_DIR
"""

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import websockets

CHAT_BIN, REDIS_SERVER, WORK = sys.argv[1:4]
T0 = time.monotonic()
PROCS = []
CHECKS = {"passed": 0}


def log(msg):
    print(f"[{time.monotonic() - T0:6.2f}s] {msg}", flush=True)


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)
    CHECKS["passed"] += 1
    log(f"ok   {what}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(name, argv):
    logf = open(os.path.join(WORK, f"{name}.log"), "ab")
    proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    proc.label = name
    PROCS.append(proc)
    with open(os.path.join(WORK, "pids"), "a") as f:
        f.write(f"{proc.pid}\n")
    return proc


async def wait_port(port, proc, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Failed(f"{proc.label} exited at start (see {WORK}/{proc.label}.log)")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            await asyncio.sleep(0.05)
    raise Failed(f"{proc.label} does not listen on {port} within {timeout} s")


def stop(proc, sig=signal.SIGTERM):
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_redis(port):
    return start(
        "redis",
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", WORK, "--protected-mode", "yes"],
    )


def start_node(label, port, redis_port):
    return start(label, [CHAT_BIN, f"127.0.0.1:{port}", "--redis", f"redis://127.0.0.1:{redis_port}/"])


class User:
    """One chat client: keeps every event, and the user list as the page would."""

    def __init__(self, label, port):
        self.label, self.port = label, port
        self.events = []
        self.users = set()
        self.name = None
        self.changed = asyncio.Event()

    async def connect(self):
        self.ws = await websockets.connect(f"ws://127.0.0.1:{self.port}/chat", open_timeout=10)
        self.reader = asyncio.create_task(self.read())
        welcome = await self.wait_for(lambda e: e["type"] == "welcome", "a welcome")
        self.name = welcome["name"]
        log(f"{self.label} (node on {self.port}) is {self.name}")
        return self

    async def read(self):
        try:
            async for raw in self.ws:
                e = json.loads(raw)
                self.events.append(e)
                t = e["type"]
                if t == "welcome":
                    self.users = set(e["users"])
                elif t == "join":
                    self.users.add(e["name"])
                elif t == "leave":
                    self.users.discard(e["name"])
                elif t == "users":
                    self.users = set(e["users"]) - {self.name}
                self.changed.set()
        except websockets.ConnectionClosed:
            pass

    async def wait_for(self, pred, what, timeout=10, start=0):
        """The first event from index `start` on matching pred."""
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events[start:]:
                if pred(e):
                    return e
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failed(f"{self.label} ({self.name}): no {what} within {timeout} s; events: {self.events[-8:]}")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def wait_users(self, want, timeout=10):
        want = set(want) - {self.name}
        deadline = time.monotonic() + timeout
        while self.users != want:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failed(f"{self.label} ({self.name}) lists {sorted(self.users)}, not {sorted(want)}")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    def msgs(self, start=0):
        return [e for e in self.events[start:] if e["type"] == "msg"]

    async def send(self, text):
        await self.ws.send(text)

    async def close(self):
        await self.ws.close()
        self.reader.cancel()


def mark(users):
    return {u: len(u.events) for u in users}


async def scenario():
    rport, pa, pb = free_port(), free_port(), free_port()
    redis = start_redis(rport)
    await wait_port(rport, redis)
    log(f"redis-server on 127.0.0.1:{rport}")
    node_a = start_node("node-a", pa, rport)
    node_b = start_node("node-b", pb, rport)
    await wait_port(pa, node_a)
    await wait_port(pb, node_b)

    # The bound the chat documents (printed at start).
    bound = None
    for _ in range(50):
        m = re.search(r"leave the lists within (\d+) s", open(os.path.join(WORK, "node-a.log")).read())
        if m:
            bound = int(m.group(1))
            break
        await asyncio.sleep(0.1)
    check(bound is not None, f"node A prints its presence bound ({bound} s)")

    # Wait until both nodes reach Redis (the welcome says).
    async def connected_user(label, port, timeout=15):
        deadline = time.monotonic() + timeout
        while True:
            u = await User(label, port).connect()
            if u.events[0].get("redis") is True:
                return u
            await u.close()
            if time.monotonic() > deadline:
                raise Failed(f"the node on {port} does not reach Redis within {timeout} s")
            await asyncio.sleep(0.3)

    a1 = await connected_user("a1", pa)
    b1 = await connected_user("b1", pb)
    a2 = await User("a2", pa).connect()
    b2 = await User("b2", pb).connect()
    everyone = [a1, a2, b1, b2]
    names = [u.name for u in everyone]
    check(len(set(names)) == 4 and all(re.fullmatch(r"guest-\d+", n) for n in names),
          f"names are unique across the nodes: {names}")
    for u in everyone:
        await u.wait_users(names, timeout=5)
    check(True, "the user lists agree across the nodes (each user lists the other three)")

    # To everyone.
    at = mark(everyone)
    await a1.send("hello everyone")
    for u in everyone:
        e = await u.wait_for(lambda e: e["type"] == "msg" and e["text"] == "hello everyone", "message", start=at[u])
        if e["from"] != a1.name or "to" in e:
            raise Failed(f"{u.label} got {e}")
    check(True, "a message to everyone from node A reaches all four users on both nodes")

    # Addressed: a1 -> b1 (other node) and a2 (same node); b2 must not get it.
    at = mark(everyone)
    await a1.send(json.dumps({"to": [b1.name, a2.name], "text": "just for you two"}))
    for u in (b1, a2, a1):
        e = await u.wait_for(lambda e: e["type"] == "msg" and e["text"] == "just for you two", "the addressed message",
                             start=at[u])
        if e["from"] != a1.name or e.get("to") != [b1.name, a2.name]:
            raise Failed(f"{u.label} got {e}")
    # b2 gets a later everyone-message first: anything addressed would have come before it.
    await b1.send("fence")
    await b2.wait_for(lambda e: e["type"] == "msg" and e["text"] == "fence", "the fence message", start=at[b2])
    await asyncio.sleep(0.3)
    check(not any(e["text"] == "just for you two" for e in b2.msgs(at[b2])),
          "an addressed message reaches its recipients on both nodes and the sender (marked with \"to\"), not b2")

    at = mark(everyone)
    await b2.send(json.dumps({"to": [a2.name], "text": "cross-node private"}))
    e = await a2.wait_for(lambda e: e.get("text") == "cross-node private", "the private message", start=at[a2])
    check(e["from"] == b2.name and e["to"] == [a2.name], "b2 -> a2 (node B to node A), addressed")
    await b2.wait_for(lambda e: e.get("text") == "cross-node private", "its echo", start=at[b2])
    await a2.send("fence 2")
    for u in (a1, b1):
        await u.wait_for(lambda e: e.get("text") == "fence 2", "fence 2", start=at[u])
    await asyncio.sleep(0.3)
    check(not any(e.get("text") == "cross-node private" for u in (a1, b1) for e in u.msgs(at[u])),
          "... and not a1 or b1")

    # Malformed input and unknown recipients: an error to the sender, nothing to anyone.
    at = mark(everyone)
    for bad, expect in [
        ("{not json", "malformed JSON"),
        (json.dumps({"to": ["guest-999999"], "text": "to nobody"}), "guest-999999"),
        (json.dumps({"to": [b1.name, "nobody-here"], "text": "half known"}), "nobody-here"),
        (json.dumps({"to": [], "text": "x"}), "names nobody"),
        (json.dumps({"to": b1.name, "text": "x"}), "must be an array"),
        (json.dumps({"text": 3}), "must be a string"),
        ("[1,2", None),  # not JSON-looking: plain text to everyone
    ]:
        mark_a2 = len(a2.events)
        await a2.send(bad)
        if expect is None:
            await b2.wait_for(lambda e: e.get("text") == bad, "the plain text", start=at[b2])
            continue
        e = await a2.wait_for(lambda e: e["type"] in ("error", "msg"), f"an error for {bad!r}", start=mark_a2)
        if e["type"] != "error" or expect not in e["text"]:
            raise Failed(f"{bad!r}: got {e}, wanted an error naming {expect!r}")
        log(f"     {bad!r} -> error: {e['text']}")
    await a2.send("fence 3")
    for u in everyone:
        await u.wait_for(lambda e: e.get("text") == "fence 3", "fence 3", start=at[u])
    leaked = [(u.label, e) for u in everyone for e in u.msgs(at[u]) if e["text"] not in ("fence 3", "[1,2")]
    check(not leaked, "malformed JSON, a wrong field and unknown recipients get an error and reach nobody")
    check(node_a.poll() is None and node_b.poll() is None, "both nodes still run")

    # Kill node B: its users leave node A's lists within the bound.
    t = time.monotonic()
    node_b.send_signal(signal.SIGKILL)
    node_b.wait()
    await a1.wait_users([a1.name, a2.name], timeout=bound + 5)
    took = time.monotonic() - t
    await a2.wait_users([a1.name, a2.name], timeout=1)
    check(took <= bound, f"node B killed (SIGKILL): its users left node A's lists in {took:.1f} s (bound {bound} s)")

    node_b = start_node("node-b", pb, rport)
    await wait_port(pb, node_b)
    b3 = await connected_user("b3", pb)
    check(b3.name not in names, f"node B restarted; its new user is {b3.name}, a new name")
    for u in (a1, a2, b3):
        await u.wait_users([a1.name, a2.name, b3.name], timeout=5)
    check(True, "the lists agree again: a1, a2 and b3")

    # Redis stops: each node tells its users and keeps serving them.
    now = mark([a1, a2, b3])
    stop(redis)
    log("redis-server stopped")
    for u in (a1, a2, b3):
        await u.wait_for(lambda e: e["type"] == "status" and e["redis"] is False, "a 'lost Redis' status",
                         start=now[u])
    check(True, "Redis stopped: every user is told (status redis:false)")
    await a1.wait_users([a1.name, a2.name], timeout=3)
    await b3.wait_users([b3.name], timeout=3)
    check(True, "while Redis is lost each node lists only its own users")
    now = mark([a1, a2, b3])
    await a1.send("still here")
    await a2.wait_for(lambda e: e.get("text") == "still here", "a local message", start=now[a2])
    await a1.send(json.dumps({"to": [a2.name], "text": "still private"}))
    await a2.wait_for(lambda e: e.get("text") == "still private", "a local private message", start=now[a2])
    b4 = await User("b4", pb).connect()
    check(b4.events[0].get("redis") is False, f"node B still welcomes new users without Redis ({b4.name})")
    await b4.send("alone on B")
    await b3.wait_for(lambda e: e.get("text") == "alone on B", "b4's message", start=now[b3])
    check(True, "without Redis each node keeps serving its own users (to everyone and addressed)")

    # Redis back (empty: no persistence): the nodes rejoin, the lists heal.
    now = mark([a1, a2, b3, b4])
    redis = start_redis(rport)
    await wait_port(rport, redis)
    t = time.monotonic()
    log("redis-server started again (empty)")
    for u in (a1, a2, b3, b4):
        await u.wait_for(lambda e: e["type"] == "status" and e["redis"] is True, "a 'connected' status",
                         start=now[u], timeout=15)
    all_now = [a1.name, a2.name, b3.name, b4.name]
    for u in (a1, a2, b3, b4):
        await u.wait_users(all_now, timeout=10)
    check(True, f"Redis back: both nodes rejoin and the lists heal in {time.monotonic() - t:.1f} s ({all_now})")
    now = mark([a1, a2, b3, b4])
    await b3.send("across again")
    for u in (a1, a2, b4):
        await u.wait_for(lambda e: e.get("text") == "across again", "a cross-node message", start=now[u])
    await a1.send(json.dumps({"to": [b4.name], "text": "private again"}))
    await b4.wait_for(lambda e: e.get("text") == "private again", "a cross-node private message", start=now[b4])
    await a1.send("fence 4")
    for u in (a2, b3):
        await u.wait_for(lambda e: e.get("text") == "fence 4", "fence 4", start=now[u])
    check(not any(e.get("text") == "private again" for u in (a2, b3) for e in u.msgs(now[u])),
          "after the heal, messages cross the nodes again (to everyone, and addressed to b4 only)")
    a3 = await User("a3", pa).connect()
    check(a3.name not in all_now and a3.events[0].get("redis") is True,
          f"a name handed out after Redis restarted empty is still new: {a3.name}")

    for u in (a1, a2, b3, b4, a3):
        await u.close()


async def main():
    try:
        await asyncio.wait_for(scenario(), 150)
    finally:
        for p in PROCS:
            stop(p)


if __name__ == "__main__":
    rc = 0
    try:
        asyncio.run(main())
    except (Failed, asyncio.TimeoutError, OSError) as e:
        log(f"FAIL {type(e).__name__}: {e}")
        rc = 1
    print(f"chat-cluster: {CHECKS['passed']} passed, {rc} failed")
    sys.exit(rc)
