#!/usr/bin/env python3
"""Fake Databricks workspace for the lakebase tests (python3 stdlib only).

Real endpoints, real shapes:
  POST /oidc/v1/token                      OAuth M2M (client_credentials, Basic or form client auth)
  POST /api/2.0/postgres/credentials       {"endpoint": ...} -> {"token", "expire_time"}; before answering
                                           it sets the app role's password to the token with VALID UNTIL
                                           expire_time, so PostgreSQL itself enforces the credential.
  GET  /api/2.0/preview/scim/v2/Me         {"userName", "id"}
  GET  /api/2.0/postgres/<endpoint>        the Endpoint: {"name", "parent", "uid", "spec", "status":
                                           {"current_state", "endpoint_type", "hosts": {"host"}}}
  GET  /api/2.0/database/instances/<name>  the DatabaseInstance: {"name", "uid", "state", "read_write_dns"}
  POST /api/2.0/database/credentials       {"instance_names": [...], "request_id"} -> {"token",
                                           "expiration_time"} (issued like the endpoint credential)
Endpoints exist under projects/p/branches/b/endpoints/, instances when their name starts with "inst-";
a malformed name is 400 INVALID_PARAMETER_VALUE, an unknown one 404 NOT_FOUND.
Errors: {"error_code": ..., "message": ..., "details": [ErrorInfo {reason}, RequestInfo {request_id}]}
with a 4xx/5xx status, as the Databricks APIs answer; the OAuth endpoint answers
{"error": ..., "error_description": ...}.

Test controls (loopback only):
  POST /_test/config   {"lifetime": s, "share": bool, "oauth_lifetime": s}  applies to credentials
                       (OAuth tokens) issued afterwards;
                       share: hand out the still-valid token again with a renewed expiry
  POST /_test/fault    {"path", "kind", "status", "retry_after", "delay", "count"}; kinds: status (JSON
                       error), retry_after (429 + Retry-After), delay (late, then normal), malformed
                       (invalid JSON), truncated (short body, then close), drop (close, no answer),
                       huge (10 MB), empty (200, no body), body (this "body" with "status",
                       "content_type"), bomb (nesting "depth" deep, default 100000)
  POST /_test/reset    clear faults, lifetime 3600, share off, counters 0 (issued tokens stay valid)
  GET  /_test/counters {path: n}
  GET  /_test/last_request?path=...  {"method","path","headers","body"} of the last request there

Configuration comes from FAKE_WS_* environment variables (secrets never on argv). Tokens and secrets
are never written to stdout or the log.
"""
import base64
import datetime
import hashlib
import hmac
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CRED_PATH = "/api/2.0/postgres/credentials"
TOKEN_PATH = "/oidc/v1/token"
ME_PATH = "/api/2.0/preview/scim/v2/Me"
DB_CRED_PATH = "/api/2.0/database/credentials"
POSTGRES_PREFIX = "/api/2.0/postgres/"
INSTANCE_PREFIX = "/api/2.0/database/instances/"
ENDPOINT_PREFIX = "projects/p/branches/b/endpoints/"
KNOWN_INSTANCE_PREFIX = "inst-"
DEFAULT_LIFETIME = 3600.0
FAULT_KINDS = ("status", "retry_after", "delay", "malformed", "truncated", "drop", "huge", "empty", "body", "bomb")
OAUTH_LIFETIME = 3600

ENV = os.environ
PORT = int(ENV.get("FAKE_WS_PORT", "0"))
LOG_PATH = ENV.get("FAKE_WS_LOG")
PGHOST = ENV.get("FAKE_WS_PGHOST", "")
PGPORT = ENV.get("FAKE_WS_PGPORT", "5432")
PGDATABASE = ENV.get("FAKE_WS_PGDATABASE", "postgres")
ADMIN_USER = ENV.get("FAKE_WS_ADMIN_USER", "postgres")
ADMIN_PASSWORD = ENV.get("FAKE_WS_ADMIN_PASSWORD", "")
APP_ROLE = ENV.get("FAKE_WS_APP_ROLE", "")
CLIENT_ID = ENV.get("FAKE_WS_CLIENT_ID", "")
CLIENT_SECRET = ENV.get("FAKE_WS_CLIENT_SECRET", "")
PAT = ENV.get("FAKE_WS_PAT", "")
PSQL = ENV.get("FAKE_WS_PSQL", "psql")
ENDPOINT_HOST = ENV.get("FAKE_WS_ENDPOINT_HOST", "localhost")  # what clients connect to

lock = threading.Lock()
role_lock = threading.Lock()  # one ALTER ROLE at a time: the last issued token is the valid one
state = {}
log_file = open(LOG_PATH, "a", buffering=1) if LOG_PATH else sys.stderr


def log(msg):
    now = time.time()
    log_file.write("%s.%03d %s\n" % (time.strftime("%H:%M:%S", time.gmtime(now)), int(now % 1 * 1000), msg))


def reset_state():
    """Faults, lifetime, share mode and counters back to defaults. Issued access tokens and the
    current credential stay valid: a real workspace does not forget them either."""
    with lock:
        keep_tokens = state.get("access_tokens", {})
        keep_current = state.get("current")
        state.clear()
        state.update(
            lifetime=DEFAULT_LIFETIME,
            oauth_lifetime=OAUTH_LIFETIME,
            share=False,
            faults=[],
            counters={},
            last_request={},
            access_tokens=keep_tokens,  # token -> expiry epoch
            current=keep_current,  # (token, expiry epoch, issued epoch) of the last credential
        )


reset_state()


def endpoint_problem(ep):
    """None for a well-formed existing endpoint name, else (status, error_code, message)."""
    parts = ep.split("/")
    ok_seg = lambda x: x and len(x) <= 63 and all(c.isalnum() or c in "-_." for c in x)
    if (len(parts) != 6 or parts[0] != "projects" or parts[2] != "branches" or parts[4] != "endpoints"
            or not all(ok_seg(parts[i]) for i in (1, 3, 5))):
        return 400, "INVALID_PARAMETER_VALUE", ("Invalid endpoint name '%s': expected "
                                               "projects/{project_id}/branches/{branch_id}/endpoints/{endpoint_id}." % ep[:200])
    if not ep.startswith(ENDPOINT_PREFIX):
        return 404, "NOT_FOUND", "Endpoint '%s' does not exist." % ep[:200]
    return None


def instance_problem(name):
    if not isinstance(name, str) or not name or len(name) > 63 or not all(c.isalnum() or c == "-" for c in name):
        return 400, "INVALID_PARAMETER_VALUE", "Invalid database instance name '%s'." % str(name)[:200]
    if not name.startswith(KNOWN_INSTANCE_PREFIX):
        return 404, "NOT_FOUND", "Database instance '%s' does not exist." % name[:200]
    return None


def rfc3339(epoch):
    dt = datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def scram_verifier(password, iterations=4096):
    """A SCRAM-SHA-256 verifier, so the token itself never reaches PostgreSQL (nor its logs)."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = lambda b: base64.b64encode(b).decode()
    return "SCRAM-SHA-256$%d:%s$%s:%s" % (iterations, b64(salt), b64(stored_key), b64(server_key))


def sql_literal(s):
    return "'" + s.replace("'", "''") + "'"


def sql_ident(s):
    return '"' + s.replace('"', '""') + '"'


def run_admin_sql(sql):
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("FAKE_WS_"):
            del env[k]
    env.update(PGHOST=PGHOST, PGPORT=PGPORT, PGDATABASE=PGDATABASE, PGUSER=ADMIN_USER,
               PGPASSWORD=ADMIN_PASSWORD, PGCONNECT_TIMEOUT="5", PGAPPNAME="fake_workspace")
    r = subprocess.run([PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1"], input=sql, env=env,
                       capture_output=True, text=True, timeout=20)
    return r.returncode == 0, r.stderr.strip()


def set_role_password(token, expiry):
    sql = "ALTER ROLE %s PASSWORD %s VALID UNTIL %s;\n" % (
        sql_ident(APP_ROLE), sql_literal(scram_verifier(token)),
        sql_literal(rfc3339(expiry).replace("T", " ").replace("Z", "+00")))
    return run_admin_sql(sql)


def set_role_valid_until(expiry):
    sql = "ALTER ROLE %s VALID UNTIL %s;\n" % (
        sql_ident(APP_ROLE), sql_literal(rfc3339(expiry).replace("T", " ").replace("Z", "+00")))
    return run_admin_sql(sql)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-databricks/1.0"

    def log_message(self, fmt, *args):  # http.server logs to stderr by default: route to the log
        pass

    # ---- plumbing
    def _read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _send(self, status, body, ctype="application/json", headers=None):
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status, obj, headers=None):
        self._send(status, json.dumps(obj), headers=headers)

    def _error(self, status, code, message, headers=None):
        # As the Databricks APIs answer: google.rpc details with the reason and the request id.
        rid = str(uuid.uuid4())
        self._json(status, {"error_code": code, "message": message, "details": [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": code, "domain": "databricks.com",
             "metadata": {}},
            {"@type": "type.googleapis.com/google.rpc.RequestInfo", "request_id": rid, "serving_data": ""},
        ]}, headers)

    def _take_fault(self, path):
        with lock:
            for f in state["faults"]:
                if f["path"] in (path, "*"):
                    if f["count"] is not None:
                        if f["count"] <= 0:
                            continue
                        f["count"] -= 1
                    return dict(f)
        return None

    def _apply_fault(self, f):
        """Returns True when the fault produced the whole answer."""
        kind = f["kind"]
        log("fault %s on %s" % (kind, self.path))
        if kind == "delay":
            time.sleep(float(f.get("delay", 2.0)))
            if self._client_gone():
                # The caller gave up: do not issue (and rotate to) a credential nobody receives.
                log("client left during the delay on %s" % self.path)
                self.close_connection = True
                return True
            return False
        if kind == "status":
            st = int(f.get("status", 503))
            code = {400: "INVALID_PARAMETER_VALUE", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                    404: "NOT_FOUND", 429: "REQUEST_LIMIT_EXCEEDED"}.get(st, "TEMPORARILY_UNAVAILABLE")
            self._error(st, code, "injected fault: HTTP %d" % st)
        elif kind == "retry_after":
            ra = f.get("retry_after", 1)
            self._error(429, "REQUEST_LIMIT_EXCEEDED", "Too many requests, retry later",
                        {"Retry-After": str(ra)})
        elif kind == "malformed":
            self._send(200, b'{"token": "abc", "expire_time": ')
        elif kind == "truncated":
            body = b'{"token": "abcdefghijklmnopqrstuvwxyz", "expire_time": "2030-01-01T00:00:00Z"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body) + 100))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self._hard_close()
        elif kind == "drop":
            self.close_connection = True
            self._hard_close()
        elif kind == "huge":
            chunk = b'{"token": "' + b"x" * (10 * 1024 * 1024) + b'", "expire_time": "2030-01-01T00:00:00Z"}'
            self._send(200, chunk)
        elif kind == "empty":
            self._send(200, b"")
        elif kind == "body":
            # any answer a test wants: wrong types, missing fields, odd content types...
            self._send(int(f.get("status", 200)), str(f.get("body", "")).encode(),
                       ctype=str(f.get("content_type", "application/json")))
        elif kind == "bomb":
            depth = int(f.get("depth", 100000))
            self._send(200, b'{"token": ' + b"[" * depth + b"]" * depth + b', "expire_time": "2030-01-01T00:00:00Z"}')
        else:
            self._error(500, "INTERNAL_ERROR", "unknown fault kind")
        return True

    def _client_gone(self):
        import select
        import socket
        try:
            r, _, _ = select.select([self.connection], [], [], 0)
            return bool(r) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _hard_close(self):
        try:
            self.wfile.flush()
        except OSError:
            pass
        try:
            import socket
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _count(self, path):
        with lock:
            state["counters"][path] = state["counters"].get(path, 0) + 1

    def _remember(self, path, body):
        with lock:
            state["last_request"][path] = {
                "method": self.command, "path": self.path,
                "headers": {k: v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"),
            }

    def _bearer_ok(self):
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return False
        tok = auth[7:].strip()
        if PAT and hmac.compare_digest(tok, PAT):
            return True
        with lock:
            exp = state["access_tokens"].get(tok)
        return exp is not None and exp > time.time()

    # ---- dispatch
    def _handle(self):
        parsed = urllib.parse.urlsplit(self.path)
        path = parsed.path
        body = self._read_body()
        if path.startswith("/_test/"):
            return self._control(path, parsed.query, body)
        self._count(path)
        self._remember(path, body)
        fault = self._take_fault(path)
        if fault and self._apply_fault(fault):
            return
        if path == TOKEN_PATH and self.command == "POST":
            return self._oauth(body)
        if path == CRED_PATH and self.command == "POST":
            return self._credential(body)
        if path == DB_CRED_PATH and self.command == "POST":
            return self._credential(body, instances=True)
        if path.startswith(POSTGRES_PREFIX + "projects/") and self.command == "GET":
            return self._get_endpoint(urllib.parse.unquote(path[len(POSTGRES_PREFIX):]))
        if path.startswith(INSTANCE_PREFIX) and self.command == "GET":
            return self._get_instance(urllib.parse.unquote(path[len(INSTANCE_PREFIX):]))
        if path == ME_PATH and self.command == "GET":
            if not self._bearer_ok():
                return self._error(401, "UNAUTHENTICATED", "Invalid access token.")
            return self._json(200, {"userName": CLIENT_ID, "id": "1234567890123456",
                                    "displayName": "lakebase test principal", "active": True})
        return self._error(404, "ENDPOINT_NOT_FOUND", "No API found for '%s %s'" % (self.command, path))

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (BrokenPipeError, ConnectionResetError):
            # the client hung up (timeout, body cap): normal in fault tests
            log("client closed the connection early")
            self.close_connection = True

    def do_GET(self):
        self._handle()

    def do_POST(self):
        self._handle()

    def do_PUT(self):
        self._handle()

    def do_DELETE(self):
        self._handle()

    # ---- OAuth M2M
    def _oauth(self, body):
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        get = lambda k: (form.get(k) or [None])[0]
        cid, csec = get("client_id"), get("client_secret")
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                cid, _, csec = base64.b64decode(auth[6:].strip()).decode().partition(":")
                cid, csec = urllib.parse.unquote(cid), urllib.parse.unquote(csec)
            except Exception:
                return self._json(400, {"error": "invalid_request", "error_description": "bad Basic header"})
        if get("grant_type") != "client_credentials":
            return self._json(400, {"error": "unsupported_grant_type",
                                    "error_description": "grant_type must be client_credentials"})
        if not cid or not csec or not (hmac.compare_digest(cid, CLIENT_ID)
                                       and hmac.compare_digest(csec, CLIENT_SECRET)):
            return self._json(401, {"error": "invalid_client",
                                    "error_description": "Client authentication failed"})
        tok = "eyJ" + secrets.token_urlsafe(48)
        with lock:
            now = time.time()
            state["access_tokens"] = {t: e for t, e in state["access_tokens"].items() if e > now}
            life = state["oauth_lifetime"]
            state["access_tokens"][tok] = now + life
        log("oauth token issued (scope=%s)" % get("scope"))
        self._json(200, {"access_token": tok, "token_type": "Bearer", "scope": get("scope") or "all-apis",
                         "expires_in": life})

    # ---- Lakebase credential
    def _credential(self, body, instances=False):
        """POST /api/2.0/postgres/credentials {"endpoint"} -> {"token", "expire_time"}; with instances,
        POST /api/2.0/database/credentials {"instance_names", "request_id"} -> {"token",
        "expiration_time"} (the DatabaseCredential of service/database)."""
        if not self._bearer_ok():
            return self._error(401, "UNAUTHENTICATED", "Invalid access token.")
        try:
            req = json.loads(body.decode("utf-8")) if body else None
        except (ValueError, UnicodeDecodeError):
            req = None
        if not isinstance(req, dict):
            req = {}
        names = req.get("instance_names")
        if instances and (not isinstance(names, list) or not names or not isinstance(req.get("request_id", ""), str)):
            return self._error(400, "INVALID_PARAMETER_VALUE",
                               "Request body must be JSON with 'instance_names' (a list of names).")
        if not instances and not isinstance(req.get("endpoint"), str):
            return self._error(400, "INVALID_PARAMETER_VALUE", "Request body must be JSON with 'endpoint'.")
        problems = [instance_problem(n) for n in names] if instances else [endpoint_problem(req["endpoint"])]
        problem = next((p for p in problems if p), None)
        if problem:
            return self._error(*problem)
        issued = self._issue()
        if issued:
            self._json(200, {"token": issued[0], ("expiration_time" if instances else "expire_time"): rfc3339(issued[1])})

    def _issue(self):
        """A new credential (token, expiry epoch), or None after answering 503."""
        with role_lock:
            with lock:
                lifetime, share, cur = state["lifetime"], state["share"], state["current"]
            now = time.time()
            exp = now + lifetime
            if share and cur and cur[1] > now:
                # Share mode: the valid token again, with a renewed expiry (several caches, one role).
                tok = cur[0]
                ok, err = set_role_valid_until(exp)
            else:
                tok = secrets.token_urlsafe(32)
                ok, err = set_role_password(tok, exp)
            if not ok:
                log("credential: ALTER ROLE failed: %s" % err.replace(tok, "<token>")[:300])
                self._error(503, "TEMPORARILY_UNAVAILABLE", "Database is not available.")
                return None
            with lock:
                state["current"] = (tok, exp, now)
        log("credential issued, lifetime %.1fs" % (exp - now))
        return tok, exp

    # ---- discovery: the Endpoint (service/postgres) and the DatabaseInstance (service/database)
    def _get_endpoint(self, name):
        if not self._bearer_ok():
            return self._error(401, "UNAUTHENTICATED", "Invalid access token.")
        problem = endpoint_problem(name)
        if problem:
            return self._error(*problem)
        parts = name.split("/")
        self._json(200, {
            "name": name, "parent": "/".join(parts[:4]), "uid": "ep-" + hashlib.sha1(name.encode()).hexdigest()[:12],
            "create_time": "2026-01-01T00:00:00Z", "update_time": "2026-01-01T00:00:00Z",
            "spec": {"endpoint_type": "READ_WRITE", "autoscaling_limit_min_cu": 0.5, "autoscaling_limit_max_cu": 2},
            "status": {"current_state": "ACTIVE", "endpoint_type": "READ_WRITE",
                       "autoscaling_limit_min_cu": 0.5, "autoscaling_limit_max_cu": 2,
                       "hosts": {"host": ENDPOINT_HOST}},
        })

    def _get_instance(self, name):
        if not self._bearer_ok():
            return self._error(401, "UNAUTHENTICATED", "Invalid access token.")
        problem = instance_problem(name)
        if problem:
            return self._error(*problem)
        self._json(200, {
            "name": name, "uid": hashlib.sha1(name.encode()).hexdigest()[:32], "state": "AVAILABLE",
            "capacity": "CU_1", "pg_version": "PG_VERSION_15", "creator": CLIENT_ID,
            "creation_time": "2026-01-01T00:00:00Z", "read_write_dns": ENDPOINT_HOST,
        })

    # ---- controls
    def _control(self, path, query, body):
        try:
            req = json.loads(body.decode()) if body else {}
        except ValueError:
            return self._error(400, "INVALID_PARAMETER_VALUE", "bad JSON")
        if path == "/_test/config" and self.command == "POST":
            with lock:
                if "lifetime" in req:
                    state["lifetime"] = float(req["lifetime"])
                if "share" in req:
                    state["share"] = bool(req["share"])
                if "oauth_lifetime" in req:
                    state["oauth_lifetime"] = float(req["oauth_lifetime"])
                out = {"lifetime": state["lifetime"], "share": state["share"],
                       "oauth_lifetime": state["oauth_lifetime"]}
            log("config %s" % out)
            return self._json(200, out)
        if path == "/_test/fault" and self.command == "POST":
            kind = req.get("kind")
            if kind not in FAULT_KINDS:
                return self._error(400, "INVALID_PARAMETER_VALUE", "unknown fault kind")
            f = {"path": req.get("path", "*"), "kind": kind, "count": req.get("count")}
            for k in ("status", "retry_after", "delay", "body", "content_type", "depth"):
                if k in req:
                    f[k] = req[k]
            with lock:
                state["faults"].append(f)
            log("fault added %s" % f)
            return self._json(200, f)
        if path == "/_test/reset" and self.command == "POST":
            reset_state()
            log("reset")
            return self._json(200, {"ok": True})
        if path == "/_test/counters":
            with lock:
                return self._json(200, dict(state["counters"]))
        if path == "/_test/last_request":
            p = (urllib.parse.parse_qs(query).get("path") or [""])[0]
            with lock:
                r = state["last_request"].get(p)
            if r is None:
                return self._error(404, "NOT_FOUND", "no request to %s yet" % p)
            return self._json(200, r)
        return self._error(404, "ENDPOINT_NOT_FOUND", "unknown control %s" % path)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main():
    srv = Server(("127.0.0.1", PORT), Handler)
    signal.signal(signal.SIGTERM, lambda *_: (log("stopping"), os._exit(0)))
    log("listening on 127.0.0.1:%d" % srv.server_address[1])
    srv.serve_forever()


if __name__ == "__main__":
    main()
