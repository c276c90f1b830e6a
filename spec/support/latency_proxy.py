#!/usr/bin/env python3
"""A TCP proxy that adds a one-way delay in each direction and counts flights (round trips).

    latency_proxy.py serve --target HOST:PORT [--delay-ms D] [--port-file F]
        listens on 127.0.0.1 (a free port), prints "port <data> <control>" (and writes it to F),
        forwards every connection to HOST:PORT. Bytes are held D ms in each direction, in order,
        without limiting throughput (a pipelined stream stays pipelined), so a round trip costs
        2*D plus the server's time: netem's effect, without the kernel.
    latency_proxy.py ctl CONTROL_PORT stats|reset|delay D
        stats: one JSON line {"flights": n, "connections": n, "bytes_up": n, "bytes_down": n,
        "per_connection": [flights...]}; reset: zero the counters; delay: change D.

A flight is a burst of client bytes sent after the client has heard from the server (or the
first one on a connection): a request/response exchange is one flight, a pipeline of many
statements sent before any answer is one flight, a TLS handshake is as many flights as it waits.
The counts are decided by the order of bytes, not by timing, so tests can assert on them.
"""
import asyncio
import json
import socket
import sys
import time


class Stats:
    def __init__(self, delay):
        self.delay = delay
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


async def pump(reader, writer, up, conn):
    """Reads one direction; each chunk is written delay seconds after it arrived, in order."""
    queue = asyncio.Queue()

    async def send():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                writer.write(data)
                await writer.drain()
            except (ConnectionError, OSError):
                break
        try:
            if writer.can_write_eof():
                writer.write_eof()
            else:
                writer.close()
        except (ConnectionError, OSError):
            pass

    sender = asyncio.ensure_future(send())
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if up:
                if conn["last"] != "up":
                    STATS.flights += 1
                    STATS.per_connection[conn["id"]] = STATS.per_connection.get(conn["id"], 0) + 1
                conn["last"] = "up"
                STATS.bytes_up += len(data)
            else:
                conn["last"] = "down"
                STATS.bytes_down += len(data)
            queue.put_nowait((time.monotonic() + STATS.delay, data))
    except (ConnectionError, OSError):
        pass
    queue.put_nowait((time.monotonic() + STATS.delay, None))
    await sender


NEXT_ID = [0]


async def handle(client_reader, client_writer, target):
    host, port = target
    try:
        server_reader, server_writer = await asyncio.open_connection(host, port)
    except OSError:
        client_writer.close()
        return
    for w in (client_writer, server_writer):
        sock = w.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    NEXT_ID[0] += 1
    conn = {"id": NEXT_ID[0], "last": None}
    STATS.connections += 1
    await asyncio.gather(pump(client_reader, server_writer, True, conn),
                         pump(server_reader, client_writer, False, conn))
    for w in (client_writer, server_writer):
        try:
            w.close()
        except OSError:
            pass


async def control(reader, writer):
    line = (await reader.readline()).decode().split()
    if line and line[0] == "stats":
        writer.write((json.dumps(STATS.as_dict()) + "\n").encode())
    elif line and line[0] == "reset":
        STATS.reset()
        writer.write(b"ok\n")
    elif len(line) == 2 and line[0] == "delay":
        STATS.delay = float(line[1]) / 1000.0
        writer.write(b"ok\n")
    else:
        writer.write(b"error: stats | reset | delay MS\n")
    await writer.drain()
    writer.close()


async def serve(target, delay_ms, port_file):
    STATS.delay = delay_ms / 1000.0
    data = await asyncio.start_server(lambda r, w: handle(r, w, target), "127.0.0.1", 0)
    ctl = await asyncio.start_server(control, "127.0.0.1", 0)
    line = "port %d %d\n" % (data.sockets[0].getsockname()[1], ctl.sockets[0].getsockname()[1])
    if port_file:
        with open(port_file + ".tmp", "w") as f:
            f.write(line)
        import os
        os.rename(port_file + ".tmp", port_file)
    sys.stdout.write(line)
    sys.stdout.flush()
    await asyncio.gather(data.serve_forever(), ctl.serve_forever())


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
        asyncio.run(serve(target, delay, port_file))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
