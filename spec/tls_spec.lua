-- TLS: sslmode=require verifies the server (libpq verify-full against the CA bundle) and says
-- plainly why it refuses one; prefer encrypts without verifying; disable is plaintext.
-- Servers: the fixtures' PostgreSQL (test CA, certificate for localhost + 127.0.0.1) and a second
-- throwaway PostgreSQL (spec/support/tls_server.sh) whose certificate comes from another CA and
-- names only db.other.test, and a third one without TLS at all.
local h = require("spec.support.helpers")
local lakebase = require("lakebase")

local SSL_SQL = "select ssl from pg_stat_ssl where pid = pg_backend_pid()"

-- Connects with opts and reports what happened: { ok = true, ssl = bool } or { err = err, secs }.
local function attempt(opts)
  local db, err = lakebase.new(opts)
  if not db then return { new_err = err } end
  local t0 = h.clock()
  local rows, qerr = db:query(SSL_SQL)
  local secs = h.clock() - t0
  local stats = db:stats()
  db:close()
  if rows then return { ok = true, ssl = rows[1].ssl, stats = stats } end
  return { err = qerr, secs = secs, stats = stats }
end

-- A refused connection: kind connect, message as plain as libpq's, quick, nothing opened.
local function assert_refused(r, pattern)
  assert.is_nil(r.new_err, "settings were rejected instead: " .. tostring(r.new_err))
  assert.is_nil(r.ok, "connected although the certificate is wrong")
  assert.equal("connect", r.err.kind)
  assert.matches(pattern, r.err.message)
  assert.matches("^connect", tostring(r.err)) -- tostring names the kind
  assert.is_true(r.secs < 8, "took " .. r.secs .. " s to refuse")
  assert.equal(0, r.stats.total)
  assert.is_true(r.stats.connect_failures >= 1)
end

describe("TLS", function()
  local other -- the second server: { port = n, ca = path }
  local foreign_ca -- a CA that signed nothing the servers use
  local name = h.unique("tls") -- this run's own second server
  local plain -- a third server without TLS: { port = n }

  setup(function()
    local out, ok = h.run("bash spec/support/tls_server.sh start " .. name .. " 2>&1")
    assert(ok, "tls_server.sh start failed: " .. out)
    local port, ca = out:match("TLS_PORT=(%d+) TLS_CA=(%S+)")
    assert(port, "unexpected tls_server.sh output: " .. out)
    other = { port = tonumber(port), ca = ca }
    out, ok = h.run("bash spec/support/tls_server.sh start " .. name .. "_plain plain 2>&1")
    assert(ok, "tls_server.sh start plain failed: " .. out)
    plain = { port = tonumber(out:match("TLS_PORT=(%d+)")) }
    foreign_ca = os.tmpname()
    local dir = foreign_ca .. ".d"
    out, ok = h.run("mkdir -p " .. h.shell_quote(dir) .. " && openssl req -x509 -new -nodes -newkey rsa:2048"
      .. " -days 1 -subj '/CN=lakebase foreign CA' -keyout " .. h.shell_quote(dir .. "/k.pem")
      .. " -out " .. h.shell_quote(foreign_ca) .. " 2>&1 && rm -rf " .. h.shell_quote(dir))
    assert(ok, "openssl failed: " .. out)
  end)

  teardown(function()
    h.run("bash spec/support/tls_server.sh stop " .. name .. " 2>&1")
    h.run("bash spec/support/tls_server.sh stop " .. name .. "_plain 2>&1")
    if foreign_ca then os.remove(foreign_ca) end
  end)

  -- Settings for the second server (trust auth: the password is never asked for).
  local function other_settings(overrides)
    local s = {
      host = "localhost", port = other.port, database = "postgres", user = "postgres",
      password = "not-needed", sslmode = "require", sslrootcert = other.ca, connect_timeout = 5,
    }
    for k, v in pairs(overrides or {}) do s[k] = v end
    return s
  end

  describe("sslmode=require", function()
    it("connects encrypted to a server whose certificate the CA bundle vouches for", function()
      local r = attempt(h.password_settings())
      assert.is_true(r.ok, r.err and tostring(r.err))
      assert.is_true(r.ssl)
      r = attempt(h.password_settings({ host = "127.0.0.1" })) -- the IP SAN
      assert.is_true(r.ok, r.err and tostring(r.err))
      assert.is_true(r.ssl)
    end)

    it("rejects the fixtures' server when the bundle holds another CA", function()
      local pw = h.env().ADMIN_PASSWORD
      local r = attempt(h.password_settings({ sslrootcert = foreign_ca }))
      assert_refused(r, "certificate verify failed")
      assert.matches("localhost", r.err.message) -- which server
      assert.is_nil(r.err.message:find(pw, 1, true))
      assert.is_nil(tostring(r.err):find(pw, 1, true))
    end)

    it("rejects a server whose certificate is signed by another CA", function()
      local r = attempt(other_settings({ sslrootcert = h.env().SSLROOTCERT }))
      assert_refused(r, "certificate verify failed")
      assert.matches(tostring(other.port), r.err.message)
      -- said plainly, with what was checked, and not worth retrying
      assert.matches("the server's certificate was not accepted", r.err.message, 1, true)
      assert.matches("sslrootcert", r.err.hint, 1, true)
      assert.is_false(r.err.retriable)
    end)

    it("rejects a server whose certificate names another host (by name)", function()
      local r = attempt(other_settings())
      assert_refused(r, "server certificate for \"db%.other%.test\"")
      assert.matches("does not match host name \"localhost\"", r.err.message)
    end)

    it("rejects a server whose certificate names another host (by IP address)", function()
      local r = attempt(other_settings({ host = "127.0.0.1" }))
      assert_refused(r, "does not match host name \"127%.0%.0%.1\"")
    end)

    it("verifies against the system bundle when no sslrootcert is given", function()
      if os.getenv("PGSSLROOTCERT") then
        pending("PGSSLROOTCERT is set in this environment")
        return
      end
      local s = h.password_settings()
      s.sslrootcert = nil
      assert_refused(attempt(s), "certificate verify failed")
    end)

    it("treats verify-full as require, and verify-ca as a CA check without the host name", function()
      assert_refused(attempt(other_settings({ sslmode = "verify-full" })), "does not match host name")
      local r = attempt(other_settings({ sslmode = "verify-ca" }))
      assert.is_true(r.ok, r.err and tostring(r.err))
      assert.is_true(r.ssl)
      r = attempt(other_settings({ sslmode = "verify-ca", sslrootcert = foreign_ca }))
      assert_refused(r, "certificate verify failed")
    end)

    it("a bundle without a CA certificate is refused, naming the file", function()
      local garbage = os.tmpname()
      local f = assert(io.open(garbage, "w"))
      f:write("not a certificate\n")
      f:close()
      local r = attempt(h.password_settings({ sslrootcert = garbage }))
      os.remove(garbage)
      assert_refused(r, "could not read root certificate file")
      assert.matches(garbage, r.err.message, 1, true)
      -- the server's own (leaf) certificate is no CA: it vouches for nothing
      r = attempt(h.password_settings({ sslrootcert = h.env().RUNDIR .. "/pki/server.pem" }))
      assert_refused(r, "certificate verify failed")
    end)

    it("keeps refusing: a later query on the same db fails the same way", function()
      local db = assert(lakebase.new(other_settings()))
      for _ = 1, 3 do
        local rows, err = db:query("select 1")
        assert.is_nil(rows)
        assert.equal("connect", err.kind)
        assert.matches("does not match host name", err.message)
      end
      assert.equal(0, db:stats().total)
      db:close()
    end)
  end)

  describe("a server without TLS", function()
    local function plain_settings(mode)
      return { host = "localhost", port = plain.port, database = "postgres", user = "postgres",
        password = "not-needed", sslmode = mode, sslrootcert = h.env().SSLROOTCERT, connect_timeout = 5 }
    end

    it("require (and verify-ca) refuse it: no fallback to plaintext", function()
      assert_refused(attempt(plain_settings("require")), "server does not support SSL, but SSL was required")
      assert_refused(attempt(plain_settings("verify-ca")), "server does not support SSL")
    end)

    it("prefer falls back to plaintext, disable is plaintext", function()
      for _, mode in ipairs({ "prefer", "disable" }) do
        local r = attempt(plain_settings(mode))
        assert.is_true(r.ok, r.err and tostring(r.err))
        assert.is_false(r.ssl)
      end
    end)
  end)

  describe("sslmode=prefer", function()
    it("connects encrypted without verifying the certificate", function()
      local r = attempt(h.password_settings({ sslmode = "prefer", sslrootcert = foreign_ca }))
      assert.is_true(r.ok, r.err and tostring(r.err))
      assert.is_true(r.ssl)
      r = attempt(other_settings({ sslmode = "prefer", sslrootcert = h.env().SSLROOTCERT }))
      assert.is_true(r.ok, r.err and tostring(r.err))
      assert.is_true(r.ssl)
    end)
  end)

  describe("sslmode=disable", function()
    it("connects in plaintext", function()
      local r = attempt(h.password_settings({ sslmode = "disable" }))
      assert.is_true(r.ok, r.err and tostring(r.err))
      assert.is_false(r.ssl)
      r = attempt(other_settings({ sslmode = "disable" }))
      assert.is_true(r.ok, r.err and tostring(r.err))
      assert.is_false(r.ssl)
    end)
  end)

  it("rejects an unreadable CA bundle as a settings problem, before connecting", function()
    local db, err = lakebase.new(h.password_settings({ sslrootcert = "/nonexistent/lakebase-ca.pem" }))
    assert.is_nil(db)
    assert.equal("config", err.kind)
    assert.matches("PGSSLROOTCERT", err.message)
    assert.matches("/nonexistent/lakebase%-ca%.pem", err.message)
  end)
end)
