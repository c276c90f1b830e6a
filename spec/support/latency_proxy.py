#!/usr/bin/env python3
"""A TCP proxy that adds a one-way delay in each direction and counts flights (round trips).

    latency_proxy.py serve --target HOST:PORT [--delay-ms D] [--port-file F]
        listens on 127.0.0.1 (a free port), prints "port <data> <control>" (and writes it to F),
        forwards every connection to HOST:PORT. Bytes are held D ms in each direction, in order,
        without limiting throughput (a pipelined stream stays pipelined), so a round trip costs
        2*D plus the server's time: netem's effect, without the kernel.
    latency_proxy.py ctl CONTROL_PORT stats|reset|delay D|sever
        stats: one JSON line {"flights": n, "connections": n, "bytes_up": n, "bytes_down": n,
        "per_connection": [flights...]}; reset: zero the counters; delay: change D; sever: close
        the server side of the open connections, the clients hear it on their next send.

A flight is a burst of client bytes sent after the client has heard from the server (or the
first one on a connection): a request/response exchange is one flight, a pipeline of many
statements sent before any answer is one flight, a TLS handshake is as many flights as it waits.
The counts are decided by the order of bytes, not by timing, so tests can assert on them.
"""
import json
import os
import queue
import socket
import sys
import threading
import time


class Stats:
    def __init__(self, delay):
        self.delay = delay
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.flights = 0
        self.connections = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self.per_connection = {}

    def as_dict(self):
        return {
            "flights": self.flights, "connections": self.connections,
            "bytes_up": self.bytes_up, "bytes_down": self.bytes_down,
            "per_connection": list(self.per_connection.values()), "delay_ms": self.delay * 1000,
        }


STATS = Stats(0.0)
NEXT_ID = [0]
LIVE = {}  # id -> connection, for sever


def note(conn, up, n):
    """Counts a chunk; a chunk from the client after one from the server starts a flight."""
    with STATS.lock:
        if up:
            if conn["last"] != "up":
                STATS.flights += 1
                STATS.per_connection[conn["id"]] = STATS.per_connection.get(conn["id"], 0) + 1
            conn["last"] = "up"
            STATS.bytes_up += n
        else:
            conn["last"] = "down"
            STATS.bytes_down += n
        return STATS.delay


def pump(src, dst, up, conn):
    """One direction: a reader thread queues each chunk with its due time, a writer thread sends it
    then (time.sleep is precise to a fraction of a millisecond, unlike an event loop's timers)."""
    q = queue.Queue()

    def writer():
        while True:
            due, data = q.get()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if data is None:
                break
            try:
                dst.sendall(data)
            except OSError:
                if up:
                    writer_failed()
                break
        if not (conn.get("severed") and not up):
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def writer_failed():
        # The server side is gone: the client hears it now (EOF), not when it gives up waiting.
        try:
            src.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    while True:
        try:
            data = src.recv(65536)
        except OSError:
            data = b""
        if not data:
            break
        q.put((time.monotonic() + note(conn, up, len(data)), data))
    q.put((time.monotonic() + STATS.delay, None))
    t.join()


def handle(client, target):
    try:
        server = socket.create_connection(target)
    except OSError:
        client.close()
        return
    for sock in (client, server):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with STATS.lock:
        NEXT_ID[0] += 1
        conn = {"id": NEXT_ID[0], "last": None, "server": server}
        STATS.connections += 1
        LIVE[conn["id"]] = conn
    down = threading.Thread(target=pump, args=(server, client, False, conn), daemon=True)
    down.start()
    pump(client, server, True, conn)
    down.join()
    with STATS.lock:
        LIVE.pop(conn["id"], None)
    client.close()
    server.close()


def control(sock):
    with sock:
        line = sock.makefile().readline().split()
        with STATS.lock:
            if line and line[0] == "stats":
                reply = json.dumps(STATS.as_dict()) + "\n"
            elif line and line[0] == "reset":
                STATS.reset()
                reply = "ok\n"
            elif line and line[0] == "sever":
                # Closes the server side of every open connection without telling the clients: a
                # connection that died unseen (NAT timeout, network cut). A client's next send
                # then meets EOF.
                for c in LIVE.values():
                    c["severed"] = True
                    try:
                        c["server"].shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                reply = "ok %d\n" % len(LIVE)
            elif len(line) == 2 and line[0] == "delay":
                STATS.delay = float(line[1]) / 1000.0
                reply = "ok\n"
            else:
                reply = "error: stats | reset | delay MS\n"
        sock.sendall(reply.encode())


def accept_loop(listener, fn, *args):
    while True:
        sock, _ = listener.accept()
        threading.Thread(target=fn, args=(sock,) + args, daemon=True).start()


def listen():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(512)
    return s


def serve(target, delay_ms, port_file):
    STATS.delay = delay_ms / 1000.0
    # A thread woken from time.sleep or recv waits for the GIL up to the switch interval (5 ms by
    # default) while another runs Python code: keep that well under the delays it adds.
    sys.setswitchinterval(0.0002)
    data, ctl_sock = listen(), listen()
    line = "port %d %d\n" % (data.getsockname()[1], ctl_sock.getsockname()[1])
    if port_file:
        with open(port_file + ".tmp", "w") as f:
            f.write(line)
        os.rename(port_file + ".tmp", port_file)
    sys.stdout.write(line)
    sys.stdout.flush()
    threading.Thread(target=accept_loop, args=(ctl_sock, control), daemon=True).start()
    accept_loop(data, handle, target)


def ctl(port, words):
    with socket.create_connection(("127.0.0.1", int(port))) as s:
        s.sendall((" ".join(words) + "\n").encode())
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    sys.stdout.write(out.decode())


def main(argv):
    if len(argv) >= 3 and argv[0] == "ctl":
        ctl(argv[1], argv[2:])
        return 0
    if not argv or argv[0] != "serve":
        sys.stderr.write(__doc__)
        return 2
    target, delay, port_file = None, 0.0, None
    i = 1
    while i < len(argv):
        if argv[i] == "--target":
            h, p = argv[i + 1].rsplit(":", 1)
            target = (h, int(p))
        elif argv[i] == "--delay-ms":
            delay = float(argv[i + 1])
        elif argv[i] == "--port-file":
            port_file = argv[i + 1]
        else:
            sys.stderr.write("unknown option %s\n" % argv[i])
            return 2
        i += 2
    if not target:
        sys.stderr.write("--target HOST:PORT is required\n")
        return 2
    try:
        serve(target, delay, port_file)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
