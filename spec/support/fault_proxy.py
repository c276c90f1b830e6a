#!/usr/bin/env python3
"""A TCP fault proxy in front of the test PostgreSQL, on loopback only (spec/faults_spec.lua).

    fault_proxy.py <port file> <target port> <control file> <marks file> <cert> <key>

Listens on 127.0.0.1 (or $FAULT_PROXY_LISTEN: the host side of a test veth pair) on a free port,
written to <port file>, and forwards every connection to 127.0.0.1:<target port>. The control file holds a schedule, one step per line: `<mode> [seconds]`;
whenever its text changes the proxy runs the new schedule from the top (the last step lasts until
the next change; lines starting with # are ignored) and appends `<mode> <epoch seconds>` to the
marks file as each step begins.

Modes:
  pass      forward (the default)
  refuse    stop listening: connects are refused by the kernel, as by a compute that is not there
  starting  accept and answer the startup packet with FATAL 57P03 "the database system is starting
            up", as a waking compute does (TLS with the fixture's server certificate when asked)
  toomany   the same with FATAL 53300 "sorry, too many clients already"
  hba       the same with FATAL 28000 "no pg_hba.conf entry for host ..."
  authfail  the same with FATAL 28P01 "password authentication failed for user ..."
  drop      reset every forwarded connection once (no goodbye), then forward new ones
  blackhole keep every connection open but forward nothing in either direction

Counters: the marks file also gets `accepted <mode> <n>` lines when the proxy exits (SIGTERM).
"""
import os
import select
import signal
import socket
import ssl
import struct
import sys
import threading
import time

port_file, target_port, control_file, marks_file, cert, key = sys.argv[1:7]
target_port = int(target_port)
listen_host = os.environ.get("FAULT_PROXY_LISTEN", "127.0.0.1")

state = {"mode": "pass"}
lock = threading.Lock()
conns = []  # (client, server) pairs being forwarded
accepted = {}


def mark(text):
    with open(marks_file, "a") as f:
        f.write("%s %.6f\n" % (text, time.time()))


def listen(port=0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((listen_host, port))
    s.listen(256)
    return s


def reset(sock):
    # close() alone waits for the pump thread's select() to let go of the socket: shut it down
    # first so the peer hears it at once.
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def pump(client, server):
    socks = [client, server]
    try:
        while True:
            r, _, _ = select.select(socks, [], [], 0.05)
            for s in r:
                data = s.recv(65536)
                if not data:
                    return
                if state["mode"] == "blackhole":
                    continue  # swallowed
                (server if s is client else client).sendall(data)
    except OSError:
        pass
    finally:
        with lock:
            if (client, server) in conns:
                conns.remove((client, server))
        for s in socks:
            try:
                s.close()
            except OSError:
                pass


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise OSError("closed")
        buf += chunk
    return buf


REFUSALS = {
    "starting": (b"57P03", b"the database system is starting up"),
    "toomany": (b"53300", b"sorry, too many clients already"),
    "hba": (b"28000", b'no pg_hba.conf entry for host "127.0.0.1", user "app", database "db", '
                      b'no encryption'),
    "authfail": (b"28P01", b'password authentication failed for user "app"'),
}


def refuse_startup(client, mode):
    """Answers like a PostgreSQL that refuses the session: a FATAL after the startup packet."""
    try:
        client.settimeout(5)
        n = struct.unpack("!I", recv_exact(client, 4))[0]
        body = recv_exact(client, n - 4)
        if n == 8 and struct.unpack("!I", body)[0] == 80877103:  # SSLRequest
            client.sendall(b"S")
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            client = ctx.wrap_socket(client, server_side=True)
            n = struct.unpack("!I", recv_exact(client, 4))[0]
            recv_exact(client, n - 4)
        code, text = REFUSALS[mode]
        fields = b"SFATAL\0VFATAL\0C" + code + b"\0M" + text + b"\0\0"
        client.sendall(b"E" + struct.pack("!I", len(fields) + 4) + fields)
    except (OSError, ssl.SSLError):
        pass
    finally:
        try:
            client.close()
        except OSError:
            pass


def handle(client):
    mode = state["mode"]
    accepted[mode] = accepted.get(mode, 0) + 1
    if mode in REFUSALS:
        threading.Thread(target=refuse_startup, args=(client, mode), daemon=True).start()
        return
    try:
        server = socket.create_connection(("127.0.0.1", target_port), timeout=5)
        server.settimeout(None)
    except OSError:
        reset(client)
        return
    with lock:
        conns.append((client, server))
    threading.Thread(target=pump, args=(client, server), daemon=True).start()


def read_schedule():
    try:
        with open(control_file) as f:
            text = f.read()
    except OSError:
        return None, None
    steps = []
    for line in text.splitlines():
        parts = line.split()
        if parts and not parts[0].startswith("#"):
            steps.append((parts[0], float(parts[1]) if len(parts) > 1 else None))
    return text, steps


def main():
    lsock = listen()
    port = lsock.getsockname()[1]
    with open(port_file + ".tmp", "w") as f:
        f.write(str(port))
    os.rename(port_file + ".tmp", port_file)

    def stop(*_):
        with open(marks_file, "a") as f:
            for m, n in sorted(accepted.items()):
                f.write("accepted %s %d\n" % (m, n))
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    last_text, steps, step_i, step_end = None, [], 0, None
    while True:
        text, new_steps = read_schedule()
        now = time.monotonic()
        if text is not None and text != last_text:
            last_text, steps, step_i, step_end = text, new_steps, -1, now
        if steps and step_end is not None and now >= step_end and step_i + 1 < len(steps):
            step_i += 1
            mode, seconds = steps[step_i]
            step_end = now + seconds if seconds is not None else None
            state["mode"] = mode
            mark(mode)
            if mode == "drop":
                with lock:
                    victims = list(conns)
                    del conns[:]
                for c, s in victims:
                    reset(c)
                    reset(s)
                time.sleep(0.06)  # the pump threads let go (select timeout 0.05 s)
            if mode == "refuse" and lsock is not None:
                lsock.close()
                lsock = None
            elif mode != "refuse" and lsock is None:
                lsock = listen(port)
        if lsock is None:
            time.sleep(0.005)
            continue
        r, _, _ = select.select([lsock], [], [], 0.005)
        if r:
            try:
                client, _ = lsock.accept()
            except OSError:
                continue
            handle(client)


main()
