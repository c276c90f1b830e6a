-- lakebase.token and the credential cache against the fake workspace and the real PostgreSQL of
-- the fixtures: PAT and M2M credentials that open a connection, caching, refresh, outage,
-- Retry-After, 4xx errors, password auth, and no secret in anything the library returns.
local h = require("spec.support.helpers")
local lakebase = require("lakebase")
local core = require("lakebase.core")

local ws = h.workspace
local CRED, OAUTH = h.CRED_PATH, h.TOKEN_PATH

-- Every case gets its own credential cache entry: its own endpoint (the cache key is workspace,
-- endpoint and identity; application_name, max or timeouts do not change it).
local function pat(overrides)
  local o = h.pat_settings(overrides)
  o.endpoint = (overrides or {}).endpoint or h.endpoint_for(h.unique("cred"))
  return o
end

local function m2m(overrides)
  local o = h.settings(overrides)
  o.endpoint = (overrides or {}).endpoint or h.endpoint_for(h.unique("cred"))
  return o
end

-- Everything the library said during the spec, checked for secrets at the end.
local said = {}
local function remember(...)
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    if type(v) == "table" then
      said[#said + 1] = tostring(v)
      for k, x in pairs(v) do said[#said + 1] = tostring(k) .. "=" .. tostring(x) end
    elseif v ~= nil then
      said[#said + 1] = tostring(v)
    end
  end
  return ...
end

local issued = {} -- credentials handed out (secrets too)
local function token(opts)
  local t, exp = lakebase.token(opts)
  if t then issued[#issued + 1] = t; return t, exp end
  remember(exp)
  return t, exp
end

local function connects(tok)
  local e = h.env()
  local out = h.psql("SELECT current_user", { user = e.PGUSER, password = tok, database = e.PGDATABASE })
  return out ~= nil and out:match("^%s*(.-)%s*$") == e.PGUSER
end

describe("credentials", function()
  before_each(function() ws.reset() end)
  teardown(function() ws.reset() end)

  it("PAT: lakebase.token returns a credential that opens a real PostgreSQL connection", function()
    local t, exp = token(pat())
    assert.is_string(t)
    assert.is_true(exp > h.now() + 3500 and exp < h.now() + 3700)
    local req = ws.last_request(CRED)
    assert.are.equal("Bearer " .. h.env().TOKEN, req.headers.Authorization)
    assert.is_true(connects(t))
  end)

  it("M2M: client secret as HTTP Basic auth, the credential opens a real connection", function()
    local e = h.env()
    local t = token(m2m())
    assert.is_string(t)
    local req = ws.last_request(OAUTH)
    assert.are.equal("Basic " .. h.base64(e.CLIENT_ID .. ":" .. e.CLIENT_SECRET), req.headers.Authorization)
    assert.truthy(req.body:find("grant_type=client_credentials", 1, true))
    assert.truthy(req.body:find("scope=all-apis", 1, true))
    assert.is_true(connects(t))
    local c = ws.counters()
    assert.are.equal(1, c[OAUTH])
    assert.are.equal(1, c[CRED])
  end)

  it("caches: many calls, one HTTP call; stats count it", function()
    local o = pat()
    local first = token(o)
    for _ = 1, 30 do assert.are.equal(first, (token(o))) end
    assert.are.equal(1, ws.counters()[CRED])
    local st = remember(core.credential_stats(o))
    assert.are.equal(1, st.refreshes)
    assert.are.equal(0, st.failures)
    assert.is_true(st.expires_at > h.now())
  end)

  it("keeps one credential per workspace, endpoint and identity (pool size, timeouts, application_name share it)",
    function()
    local o = pat()
    local t1 = assert(token(o))
    local same = pat({ endpoint = o.endpoint, max = 3, connect_timeout = 2, acquire_timeout = 4,
      application_name = h.unique("other") })
    assert.are.equal(t1, (token(same)))
    assert.are.equal(1, ws.counters()[CRED])
    assert(token(pat())) -- another endpoint: a credential of its own
    assert.are.equal(2, ws.counters()[CRED])
  end)

  it("refreshes exactly once when less than 2 minutes remain, in the background", function()
    ws.config({ lifetime = 123 })
    local o = pat()
    local t1 = token(o)
    assert.are.equal(t1, (token(o)))
    assert.are.equal(1, ws.counters()[CRED])
    h.sleep(3.2)
    -- inside the window: the still-valid credential is served at once, the next one is fetched
    -- by a background thread
    assert.are.equal(t1, (token(o)))
    local t2
    local deadline = h.clock() + 10
    repeat
      h.sleep(0.02)
      t2 = token(o)
    until t2 ~= t1 or h.clock() > deadline
    assert.are_not.equal(t1, t2)
    assert.are.equal(t2, (token(o)))
    assert.are.equal(2, ws.counters()[CRED])
  end)

  -- Asks for the credential until it is no longer `old` (the background refresh landed, at most
  -- 10 s); returns it and the slowest call meanwhile.
  local function next_token(o, old)
    local slowest, t = 0
    local deadline = h.clock() + 10
    repeat
      local t0 = h.clock()
      t = token(o)
      slowest = math.max(slowest, h.clock() - t0)
      h.sleep(0.01)
    until t ~= old or h.clock() > deadline
    return t, slowest
  end

  it("a slow credential API (1.5 s) never delays a caller while the cached credential is valid", function()
    ws.config({ lifetime = 121 }) -- inside the refresh window after 1 s
    local o = pat()
    local t1 = token(o)
    h.sleep(1.2)
    ws.fault({ path = CRED, kind = "delay", delay = 1.5 })
    local t2, slowest = next_token(o, t1)
    assert.are_not.equal(t1, t2) -- the background refresh delivered the next one
    assert.truthy(slowest < 0.05, "slowest call " .. slowest)
  end)

  it("M2M: a slow OAuth endpoint (1.5 s) never delays a caller while the credential is valid", function()
    ws.config({ lifetime = 121, oauth_lifetime = 2 }) -- the workspace token is renewed after 1 s
    local o = h.settings({ application_name = h.unique("m2m_slow") })
    local t1 = token(o)
    h.sleep(1.2)
    local oauth0 = ws.counters()[h.TOKEN_PATH]
    ws.fault({ path = h.TOKEN_PATH, kind = "delay", delay = 1.5 })
    local t2, slowest = next_token(o, t1)
    assert.are_not.equal(t1, t2)
    assert.truthy(ws.counters()[h.TOKEN_PATH] > oauth0, "the workspace token was not renewed")
    assert.truthy(slowest < 0.05, "slowest call " .. slowest)
  end)

  it("a workspace whose TLS certificate is not trusted: not retried, not retriable", function()
    -- An HTTPS server with the fixtures' certificate (from the test CA, which curl does not trust)
    local e = h.env()
    local run_dir = e.SSLROOTCERT:gsub("/pki/[^/]*$", "")
    local base = os.tmpname()
    os.execute(string.format("python3 -c %s %s %s %s >/dev/null 2>&1 </dev/null & echo $! > %s.pid",
      h.shell_quote("import http.server, ssl, sys\n"
        .. "s = http.server.HTTPServer(('127.0.0.1', 0), http.server.BaseHTTPRequestHandler)\n"
        .. "c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); c.load_cert_chain(sys.argv[1], sys.argv[2])\n"
        .. "s.socket = c.wrap_socket(s.socket, server_side=True)\n"
        .. "open(sys.argv[3], 'w').write(str(s.server_address[1]))\n"
        .. "s.serve_forever()"),
      h.shell_quote(run_dir .. "/pki/server.pem"), h.shell_quote(run_dir .. "/pki/server.key"),
      h.shell_quote(base .. ".port"), h.shell_quote(base)))
    local port
    local deadline = h.clock() + 10
    repeat
      h.sleep(0.05)
      port = h.read_file(base .. ".port")
    until (port and port ~= "") or h.clock() > deadline
    local pid = h.read_file(base .. ".pid")
    local ok, t0, tok, err = pcall(function()
      local started = h.clock()
      return started, token(pat({ databricks_host = "https://127.0.0.1:" .. port, connect_timeout = 3 }))
    end)
    local took = h.clock() - (t0 or 0)
    os.execute("kill " .. tostring(pid):match("%d+") .. " 2>/dev/null")
    for _, n in ipairs({ base, base .. ".port", base .. ".pid" }) do os.remove(n) end
    assert(ok, t0)
    assert.is_nil(tok)
    assert.equal("credential", err.kind)
    assert.is_false(err.retriable)
    assert.matches("certificate", err.message)
    assert.truthy(took < 2, "took " .. took .. " (retried?)")
  end)

  it("invalidate drops the cached credential only when it is the given one", function()
    local o = pat()
    local t1 = token(o)
    assert.is_true(core.credential_invalidate(o, "something else"))
    assert.are.equal(t1, (token(o)))
    core.credential_invalidate(o, t1)
    assert.are_not.equal(t1, (token(o)))
    assert.are.equal(2, ws.counters()[CRED])
  end)

  for _, f in ipairs({
    { name = "503", fault = { kind = "status", status = 503 } },
    { name = "dropped connections", fault = { kind = "drop" } },
    { name = "malformed JSON", fault = { kind = "malformed" } },
  }) do
    it("outage (" .. f.name .. "): the valid cached credential keeps serving, without hammering", function()
      ws.config({ lifetime = 5 }) -- inside the refresh window from the start
      local o = pat({ connect_timeout = 2 })
      local t1 = token(o)
      f.fault.path = CRED
      ws.fault(f.fault)
      for _ = 1, 10 do assert.are.equal(t1, (token(o))) end
      assert.are.equal(2, ws.counters()[CRED]) -- one failed attempt, then backoff
      assert.are.equal(1, core.credential_stats(o).failures)
    end)
  end

  it("outage: after expiry a clear credential error; after recovery a new credential", function()
    ws.config({ lifetime = 3 })
    local o = pat({ connect_timeout = 1.5 })
    local t1 = token(o)
    ws.fault({ path = CRED, kind = "status", status = 503 })
    h.sleep(2.2) -- past the last second of validity
    local t0 = h.clock()
    local t, err = token(o)
    assert.is_nil(t)
    assert.are.equal("credential", err.kind)
    assert.truthy(err.message:find("lakebase credential: HTTP 503 TEMPORARILY_UNAVAILABLE", 1, true))
    assert.is_true(err.retriable)
    assert.is_true(h.clock() - t0 < 2.5)
    ws.reset()
    local t2 = token(o)
    assert.is_string(t2)
    assert.are_not.equal(t1, t2)
  end)

  it("honours 429 Retry-After: 1 (measured wait >= 1 s, then success)", function()
    ws.fault({ path = CRED, kind = "retry_after", retry_after = 1, count = 1 })
    local t0 = h.clock()
    local t = token(pat())
    assert.is_string(t)
    assert.is_true(h.clock() - t0 >= 1.0)
    assert.are.equal(2, ws.counters()[CRED])
  end)

  it("does not retry a 404; the error names step, status, error_code and message", function()
    local t, err = token(pat({ endpoint = "projects/q/branches/b/endpoints/e" })) -- unknown to the fake
    assert.is_nil(t)
    assert.are.equal("credential", err.kind)
    assert.truthy(err.message:find("lakebase credential: HTTP 404 NOT_FOUND", 1, true))
    assert.are.equal(1, ws.counters()[CRED])
  end)

  it("M2M: a wrong client secret is an oauth token error without the secret", function()
    local t, err = token(m2m({ client_secret = "wrong-secret-0123456789abcdef" }))
    assert.is_nil(t)
    assert.are.equal("credential", err.kind)
    assert.truthy(err.message:find("oauth token: HTTP 401 invalid_client", 1, true))
    assert.is_nil(tostring(err):find("wrong-secret-0123456789abcdef", 1, true))
    assert.are.equal(1, ws.counters()[OAUTH])
  end)

  it("M2M: a 401 on the credential call renews the workspace token once", function()
    local o = m2m()
    local t1 = token(o)
    core.credential_invalidate(o, t1)
    ws.fault({ path = CRED, kind = "status", status = 401, count = 1 })
    assert.is_string((token(o)))
    local c = ws.counters()
    assert.are.equal(2, c[OAUTH])
    assert.are.equal(3, c[CRED])
  end)

  -- PostgreSQL checks every login of the app role with the workspace (PAM), as Lakebase does: every
  -- unexpired credential is valid side by side and expiry counts at login only.
  it("two credentials side by side: two pools, each with its own, both connect and query", function()
    local a, b = pat({ application_name = h.unique("side_a") }), pat({ application_name = h.unique("side_b") })
    local da, dbb = assert(lakebase.new(a)), assert(lakebase.new(b))
    local ta, tb = assert(token(a)), assert(token(b))
    assert.are_not.equal(ta, tb) -- two endpoints: two credentials, the first not replaced by the second
    for _ = 1, 2 do
      assert.are.equal(h.env().PGUSER, assert(da:one("select current_user as u")).u)
      assert.are.equal(h.env().PGUSER, assert(dbb:one("select current_user as u")).u)
    end
    assert.is_true(connects(ta))
    assert.is_true(connects(tb))
    assert.are.equal(4, ws.logins().ok) -- each pool's login and psql's, all checked by the workspace
    assert.are.equal(0, da:stats().connect_failures + dbb:stats().connect_failures)
    da:close()
    dbb:close()
  end)

  it("an expired credential is refused at login; a connection opened with it keeps working", function()
    ws.config({ lifetime = 2 })
    local o = pat({ max = 1, application_name = h.unique("expiring") })
    local db = assert(lakebase.new(o))
    local pid = assert(db:one("select pg_backend_pid() as pid")).pid
    local t, exp = assert(token(o)) -- a 2-second credential, like the one the connection logged in with
    ws.config({ lifetime = 3600 })
    h.sleep(math.max(0, exp - h.now()) + 0.2)
    assert.is_false(connects(t))
    assert.are.equal(1, ws.logins().expired)
    -- the open connection is not checked again
    local row = assert(db:one("select pg_backend_pid() as pid, current_user as u"))
    assert.are.equal(pid, row.pid)
    assert.are.equal(h.env().PGUSER, row.u)
    -- a new login gets a fresh credential
    local o2 = pat({ endpoint = o.endpoint, application_name = h.unique("expiring2") })
    local db2 = assert(lakebase.new(o2))
    assert(db2:one("select 1 as n"))
    assert.are.equal(0, db2:stats().connect_failures)
    assert.are.equal(1, ws.logins().expired)
    db:close()
    db2:close()
  end)

  it("a revoked credential: the next login is refused, the pool refreshes once and goes on; open connections stay",
    function()
    local db = assert(lakebase.new(pat({ max = 2, application_name = h.unique("revoked") })))
    local pid = assert(db:one("select pg_backend_pid() as pid")).pid
    local before = db:stats()
    assert.is_true(ws.revoke({ all = true }) >= 1)
    local other = assert(db:transaction(function(tx)
      -- tx holds the open connection (not checked again); this query needs a new login
      assert.are.equal(pid, assert(tx:one("select pg_backend_pid() as pid")).pid)
      return assert(db:one("select pg_backend_pid() as pid")).pid
    end))
    assert.are_not.equal(pid, other)
    local after = db:stats()
    assert.are.equal(1, ws.logins().revoked)
    assert.are.equal(1, after.connect_failures - before.connect_failures)
    assert.are.equal(1, after.credential_refreshes - before.credential_refreshes)
    db:close()
  end)

  it("logins refused whatever the credential (access revoked): a clear error, not retriable; open ones stay",
    function()
    local o = pat({ max = 2, application_name = h.unique("denied"), acquire_timeout = 5 })
    local db = assert(lakebase.new(o))
    local pid = assert(db:one("select pg_backend_pid() as pid")).pid
    ws.config({ deny_logins = true })
    local before = db:stats()
    local rows, err = db:transaction(function(tx)
      assert.are.equal(pid, assert(tx:one("select pg_backend_pid() as pid")).pid) -- still serving
      local r, e = db:one("select 1 as n") -- a new login: refused, refreshed once, refused again
      assert.is_nil(r)
      return nil, e
    end)
    assert.is_nil(rows)
    remember(err)
    assert.are.equal("connect", err.kind)
    assert.are.equal("28P01", err.sqlstate)
    assert.is_false(err.retriable) -- README: a password refused again after the credential refresh
    assert.truthy(err.message:find("PAM authentication failed", 1, true), err.message)
    assert.is_string(err.hint) -- what to check: the user and its Postgres role
    assert.are.equal(2, ws.logins().denied)
    assert.are.equal(1, db:stats().credential_refreshes - before.credential_refreshes)
    ws.config({ deny_logins = false })
    assert(db:one("select 1 as n"))
    db:close()
  end)

  it("password auth: the password, no expiry, no HTTP", function()
    local o = h.password_settings()
    local t, exp = lakebase.token(o)
    assert.are.equal(h.env().ADMIN_PASSWORD, t)
    assert.is_nil(exp)
    assert.are.equal(0, ws.counters()[CRED])
  end)

  it("bad settings are config errors", function()
    local t, err = token(pat({ databricks_host = "http://example.com" }))
    assert.is_nil(t)
    assert.are.equal("config", err.kind)
    assert.has_error(function() core.token(42) end)
  end)

  it("nothing it returned or said contains a token or the client secret", function()
    local e = h.env()
    local secrets = { e.TOKEN, e.CLIENT_SECRET, e.ADMIN_PASSWORD, "wrong-secret-0123456789abcdef" }
    for _, t in ipairs(issued) do secrets[#secrets + 1] = t end
    assert.is_true(#said >= 5)
    for _, text in ipairs(said) do
      for _, s in ipairs(secrets) do
        assert.is_nil(text:find(s, 1, true), "a secret in: " .. text:sub(1, 60))
      end
    end
    -- the PostgreSQL log neither (PAM hands the token to the check program on stdin only)
    local log = h.read_file(e.PGLOG) or ""
    for _, t in ipairs(issued) do assert.is_nil(log:find(t, 1, true)) end
  end)
end)
