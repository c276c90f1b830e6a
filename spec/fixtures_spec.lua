-- The fixtures themselves: a real PostgreSQL behind TLS and scram, and a fake workspace whose
-- credentials PostgreSQL checks at every login of the app role (PAM asks the fake, as Lakebase
-- checks its own credentials): every unexpired credential is valid side by side, expiry counts at
-- login only, revocation is an explicit fault. Everything else in the suite stands on these facts.
local h = require("spec.support.helpers")

local CRED, TOKEN, ME = h.CRED_PATH, h.TOKEN_PATH, h.ME_PATH

local function bearer(tok) return { "Authorization: Bearer " .. tok } end

local function credential(tok, endpoint)
  return h.http("POST", CRED, h.json.encode({ endpoint = endpoint or h.env().ENDPOINT }), bearer(tok or h.env().TOKEN))
end

local function form_token(body, headers)
  return h.http("POST", TOKEN, body, headers, { content_type = "application/x-www-form-urlencoded" })
end

local function as_app(password, sql)
  return h.psql(sql or "select current_user", { user = h.env().PGUSER, password = password })
end

local function parse_rfc3339(s)
  local y, mo, d, hh, mi, ss, frac = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)%.(%d+)Z$")
  assert(y, "not RFC 3339 with fraction and Z: " .. tostring(s))
  -- days from civil (UTC), no os.time (local time zone)
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (mo + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + tonumber(hh) * 3600 + tonumber(mi) * 60 + tonumber(ss) + tonumber("0." .. frac), #frac
end

describe("fixtures", function()
  local e
  setup(function() e = h.env() end)
  before_each(function() h.workspace.reset() end)
  teardown(function() h.workspace.reset() end)

  describe("PostgreSQL", function()
    it("answers over TLS verified against the test CA, with scram-sha-256 passwords", function()
      local out, err = h.psql("select ssl, version from pg_stat_ssl where pid = pg_backend_pid()")
      assert.is_nil(err)
      assert.matches("^t|TLSv1%.[23]$", out)
      assert.equal("scram-sha-256", h.psql("show password_encryption"))
      assert.equal("t", h.psql("select rolpassword like 'SCRAM-SHA-256$%' from pg_authid where rolname = current_user"))
      assert.matches("^15%.", h.psql("show server_version"))
    end)

    it("listens on 127.0.0.1 only and names itself localhost in its certificate", function()
      assert.equal("127.0.0.1", h.psql("show listen_addresses"))
      local ok = h.psql("select 1", { host = "127.0.0.1" })
      assert.equal("1", ok) -- the IP SAN
    end)

    it("fails verification against another CA", function()
      local out, err = h.psql("select 1", { sslrootcert = "/etc/ssl/certs/ca-certificates.crt" })
      assert.is_nil(out)
      assert.matches("certificate verify failed", err)
    end)

    it("refuses a wrong password", function()
      local out, err = h.psql("select 1", { password = "not-the-password" })
      assert.is_nil(out)
      assert.matches("password authentication failed", err)
    end)

    it("lets the app role in only through PAM over TLS: it has no password of its own", function()
      assert.equal("t", h.psql(("select rolpassword is null from pg_authid where rolname = '%s'"):format(e.PGUSER)))
      local _, c = credential()
      assert.equal(e.PGUSER, as_app(c.token))
      local out, err = h.psql("select 1", { user = e.PGUSER, password = c.token, sslmode = "disable" })
      assert.is_nil(out)
      assert.matches("password authentication failed", err) -- not PAM: scram, and no password
      out, err = as_app("not-a-credential")
      assert.is_nil(out)
      assert.matches("PAM authentication failed", err)
      assert.equal(1, h.workspace.logins().unknown)
    end)

    it("lets the app role create tables in public and schemas in the database", function()
      local r = h.workspace.config({ lifetime = 60 })
      assert.equal(60, r.lifetime)
      local _, c = credential()
      local t, s = h.unique("fx"), h.unique("fxs")
      local out, err = as_app(c.token, ("create table public.%s (id int); insert into %s values (1);"
        .. "select count(*) from %s; drop table %s; create schema %s; drop schema %s;"):format(t, t, t, t, s, s))
      assert.is_nil(err)
      assert.equal("1", out)
    end)
  end)

  describe("credentials", function()
    it("with a PAT: a token that opens a real TLS connection as the app role", function()
      local status, c, text = credential()
      assert.equal(200, status, text)
      assert.is_string(c.token)
      assert.truthy(#c.token >= 32)
      local exp, digits = parse_rfc3339(c.expire_time)
      assert.equal(6, digits)
      assert.is_true(math.abs(exp - (h.now() + 3600)) < 30)
      local out, err = as_app(c.token,
        "select current_user, (select ssl from pg_stat_ssl where pid = pg_backend_pid())")
      assert.is_nil(err)
      assert.equal(e.PGUSER .. "|t", out)
      assert.equal(1, h.workspace.logins().ok) -- PostgreSQL asked the fake
    end)

    it("are valid side by side: each is new, and the earlier ones keep opening connections", function()
      local _, c1 = credential()
      local _, c2 = credential()
      local _, c3 = credential(nil, h.endpoint_for(h.unique("side")))
      assert.are_not.equal(c1.token, c2.token)
      for _, c in ipairs({ c1, c2, c3, c1 }) do assert.equal(e.PGUSER, as_app(c.token)) end
      assert.equal(4, h.workspace.logins().ok)
    end)

    it("expire at login only: refused once expired, for the expiry", function()
      h.workspace.config({ lifetime = 2 })
      local _, c = credential()
      local exp = parse_rfc3339(c.expire_time)
      assert.is_true(math.abs(exp - (h.now() + 2)) < 1)
      assert.equal(e.PGUSER, as_app(c.token))
      h.sleep(math.max(0, exp - h.now()) + 0.2)
      local out, err = as_app(c.token)
      assert.is_nil(out)
      assert.matches("PAM authentication failed", err)
      assert.equal(1, h.workspace.logins().expired) -- the expiry, not an unknown token
      -- a fresh credential works again
      h.workspace.config({ lifetime = 3600 })
      local _, c2 = credential()
      assert.equal(e.PGUSER, as_app(c2.token))
    end)

    it("are bound to their user and to their endpoint's compute", function()
      local _, c = credential()
      local out, err = h.psql("select 1", { user = e.ADMIN_USER, password = c.token })
      assert.is_nil(out) -- the admin has a native password: the credential is no password of it
      assert.matches("password authentication failed", err)
      local _, ro = credential(nil, e.READ_ENDPOINT) -- the read endpoint's: the standby's, not the primary's
      assert.is_nil((as_app(ro.token)))
      assert.equal(1, h.workspace.logins().compute)
      -- the check itself refuses a token as another user
      local status, body = h.http("POST", "/_test/login?compute=rw", c.token .. "\nsomeone-else", nil,
        { content_type = "text/plain" })
      assert.equal(401, status)
      assert.equal("user", body.reason)
    end)

    it("revocation is an explicit fault: one credential, every one so far, or every login", function()
      local _, c1 = credential()
      local _, c2 = credential()
      assert.equal(1, h.workspace.revoke({ token = c1.token }))
      assert.is_nil((as_app(c1.token)))
      assert.equal(e.PGUSER, as_app(c2.token))
      assert.is_true(h.workspace.revoke({ all = true }) >= 1) -- c2 and every other one still valid
      assert.is_nil((as_app(c2.token)))
      assert.equal(2, h.workspace.logins().revoked)
      local _, c3 = credential() -- issued after the revocation: valid
      assert.equal(e.PGUSER, as_app(c3.token))
      h.workspace.config({ deny_logins = true }) -- the identity lost its access: nothing logs in
      local _, c4 = credential()
      local out, err = as_app(c4.token)
      assert.is_nil(out)
      assert.matches("PAM authentication failed", err)
      assert.equal(1, h.workspace.logins().denied)
      h.workspace.reset() -- deny_logins off; revoked ones stay revoked
      assert.equal(e.PGUSER, as_app(c4.token))
      assert.is_nil((as_app(c1.token)))
      assert.equal(400, (h.http("POST", "/_test/revoke", "{}")))
    end)

    it("answers 401 with the JSON error shape for a bad token, and for none", function()
      for _, hdr in ipairs({ bearer("dapi-not-a-token"), {} }) do
        local status, body = h.http("POST", CRED, '{"endpoint":"' .. e.ENDPOINT .. '"}', hdr)
        assert.equal(401, status)
        assert.equal("UNAUTHENTICATED", body.error_code)
        assert.is_string(body.message)
      end
    end)

    it("answers 404 for an unknown endpoint, 400 for a malformed one and for a bad body, with a request id", function()
      local status, body = credential(nil, "projects/other/branches/b/endpoints/e")
      assert.equal(404, status)
      assert.equal("NOT_FOUND", body.error_code)
      assert.equal("type.googleapis.com/google.rpc.RequestInfo", body.details[2]["@type"])
      assert.matches("^%x+%-%x+%-%x+%-%x+%-%x+$", body.details[2].request_id)
      for _, bad in ipairs({ "nope", "projects/p/branches/b/endpoints/", "projects/p/branches/b/endpoints/a/b" }) do
        status, body = credential(nil, bad)
        assert.equal(400, status, bad)
        assert.equal("INVALID_PARAMETER_VALUE", body.error_code)
      end
      for _, bad in ipairs({ "{", "[]", '{"endpoint": 5}', "" }) do
        status, body = h.http("POST", CRED, bad, bearer(e.TOKEN))
        assert.equal(400, status, bad)
        assert.equal("INVALID_PARAMETER_VALUE", body.error_code)
        assert.is_string(body.message)
      end
    end)
  end)

  describe("OAuth M2M", function()
    local grant = "grant_type=client_credentials&scope=all-apis"

    it("accepts HTTP Basic client auth and the access token works for the credential call", function()
      local basic = "Authorization: Basic " .. h.base64(e.CLIENT_ID .. ":" .. e.CLIENT_SECRET)
      local status, t = form_token(grant, { basic })
      assert.equal(200, status)
      assert.equal("Bearer", t.token_type)
      assert.equal(3600, t.expires_in)
      assert.is_string(t.access_token)
      local st2, c = credential(t.access_token)
      assert.equal(200, st2)
      assert.equal(e.PGUSER, as_app(c.token))
      local req = h.workspace.last_request(TOKEN)
      assert.equal("POST", req.method)
      assert.matches("^Basic ", req.headers.Authorization)
      assert.equal(grant, req.body)
    end)

    it("accepts client_id/client_secret form fields", function()
      local status, t = form_token(grant .. "&client_id=" .. e.CLIENT_ID .. "&client_secret=" .. e.CLIENT_SECRET)
      assert.equal(200, status)
      assert.equal("Bearer", t.token_type)
      local st2 = credential(t.access_token)
      assert.equal(200, st2)
    end)

    it("rejects a wrong secret and a wrong grant type", function()
      local status, t = form_token(grant, { "Authorization: Basic " .. h.base64(e.CLIENT_ID .. ":wrong") })
      assert.equal(401, status)
      assert.equal("invalid_client", t.error)
      status = form_token("grant_type=password&scope=all-apis&client_id=" .. e.CLIENT_ID
        .. "&client_secret=" .. e.CLIENT_SECRET)
      assert.equal(400, status)
    end)

    it("SCIM Me answers for the PAT and for an access token, 401 otherwise", function()
      local status, me = h.http("GET", ME, nil, bearer(e.TOKEN))
      assert.equal(200, status)
      assert.equal(e.CLIENT_ID, me.userName)
      assert.is_string(me.id)
      status, me = h.http("GET", ME, nil, bearer("nope"))
      assert.equal(401, status)
      assert.equal("UNAUTHENTICATED", me.error_code)
    end)
  end)

  describe("faults", function()
    it("status: the given HTTP status with a JSON error, then normal again (count)", function()
      h.workspace.fault({ path = CRED, kind = "status", status = 503, count = 1 })
      local status, body = credential()
      assert.equal(503, status)
      assert.is_string(body.error_code)
      assert.is_string(body.message)
      status = credential()
      assert.equal(200, status)
    end)

    it("retry_after: 429 with a Retry-After header", function()
      h.workspace.fault({ path = CRED, kind = "retry_after", retry_after = 3, count = 2 })
      for _ = 1, 2 do
        local status, body, _, head = credential()
        assert.equal(429, status)
        assert.equal("REQUEST_LIMIT_EXCEEDED", body.error_code)
        assert.matches("\nRetry%-After: 3\r", head)
      end
      assert.equal(200, (credential()))
    end)

    it("delay: answers normally, late", function()
      h.workspace.fault({ path = CRED, kind = "delay", delay = 0.6, count = 1 })
      local t0 = h.clock()
      local status, c = credential()
      assert.is_true(h.clock() - t0 >= 0.6)
      assert.equal(200, status)
      assert.is_string(c.token)
    end)

    it("delay: a caller that gave up gets no credential (none is issued)", function()
      local log = e.RUNDIR .. "/workspace.log"
      local before = #(h.read_file(log) or "")
      h.workspace.fault({ path = CRED, kind = "delay", delay = 1.0, count = 1 })
      local status = h.http("POST", CRED, h.json.encode({ endpoint = e.ENDPOINT }), bearer(e.TOKEN), { timeout = 0.3 })
      assert.equal(0, status)
      local said
      local deadline = h.clock() + 5
      repeat
        h.sleep(0.05)
        said = (h.read_file(log) or ""):sub(before + 1)
      until said:find("client left during the delay", 1, true) or h.clock() > deadline
      assert.truthy(said:find("client left during the delay", 1, true), said)
      assert.is_nil(said:find("credential issued", 1, true))
    end)

    it("malformed: 200 with invalid JSON", function()
      h.workspace.fault({ path = CRED, kind = "malformed", count = 1 })
      local status, body, text = credential()
      assert.equal(200, status)
      assert.is_nil(body)
      assert.truthy(#text > 0)
    end)

    it("truncated: fewer bytes than Content-Length, then the connection closes", function()
      h.workspace.fault({ path = CRED, kind = "truncated", count = 1 })
      local _, body, _, _, code = credential()
      assert.is_nil(body)
      assert.equal(18, code) -- curl: partial file
    end)

    it("drop: the connection closes without an answer", function()
      h.workspace.fault({ path = CRED, kind = "drop", count = 1 })
      local status, _, text, _, code = credential()
      assert.equal(0, status)
      assert.equal("", text)
      assert.equal(52, code) -- curl: empty reply from server
    end)

    it("huge: a 10 MB body", function()
      h.workspace.fault({ path = CRED, kind = "huge", count = 1 })
      local status, _, text = credential()
      assert.equal(200, status)
      assert.truthy(#text >= 10 * 1024 * 1024)
    end)

    it("empty: 200 with an empty body", function()
      h.workspace.fault({ path = CRED, kind = "empty", count = 1 })
      local status, body, text = credential()
      assert.equal(200, status)
      assert.is_nil(body)
      assert.equal("", text)
    end)

    it("body: exactly the answer a test asks for", function()
      h.workspace.fault({ path = CRED, kind = "body", status = 200, body = '{"token": 42}', count = 1 })
      local status, body, text = credential()
      assert.equal(200, status)
      assert.equal('{"token": 42}', text)
      assert.equal(42, body.token)
      h.workspace.fault({ path = CRED, kind = "body", status = 502, body = "<html>bad gateway</html>",
        content_type = "text/html", count = 1 })
      local st2, _, text2, head = credential()
      assert.equal(502, st2)
      assert.equal("<html>bad gateway</html>", text2)
      assert.matches("Content%-Type: text/html", head)
    end)

    it("bomb: deeply nested JSON", function()
      h.workspace.fault({ path = CRED, kind = "bomb", depth = 5000, count = 1 })
      local status, _, text = credential()
      assert.equal(200, status)
      assert.truthy(text:find(string.rep("[", 5000), 1, true))
      assert.equal(200, (credential()))
    end)

    it("applies to its path only, or to every path with *; lasts until reset without count", function()
      h.workspace.fault({ path = TOKEN, kind = "status", status = 500 })
      assert.equal(200, (credential()))
      assert.equal(500, (form_token("grant_type=client_credentials")))
      assert.equal(500, (form_token("grant_type=client_credentials")))
      h.workspace.reset()
      h.workspace.fault({ path = "*", kind = "status", status = 502, count = 2 })
      assert.equal(502, (credential()))
      assert.equal(502, (h.http("GET", ME, nil, bearer(e.TOKEN))))
      assert.equal(200, (credential()))
    end)

    it("rejects an unknown fault kind", function()
      local status, body = h.http("POST", "/_test/fault", '{"kind": "meteor"}')
      assert.equal(400, status)
      assert.is_string(body.error_code)
    end)
  end)

  describe("controls", function()
    it("count requests per path, faulted ones included, and reset to zero", function()
      credential()
      credential()
      h.workspace.fault({ path = CRED, kind = "status", status = 500, count = 1 })
      credential()
      form_token("grant_type=client_credentials")
      local c = h.workspace.counters()
      assert.equal(3, c[CRED])
      assert.equal(1, c[TOKEN])
      assert.equal(0, c[ME])
      h.workspace.reset()
      assert.equal(0, h.workspace.counters()[CRED])
    end)

    it("last_request shows the headers and the body of the last call to a path", function()
      assert.is_nil(h.workspace.last_request(CRED))
      credential()
      local r = h.workspace.last_request(CRED)
      assert.equal("POST", r.method)
      assert.equal("application/json", r.headers["Content-Type"])
      assert.same({ endpoint = e.ENDPOINT }, h.json.decode(r.body))
    end)

    it("reset restores the default lifetime and counts logins from zero", function()
      h.workspace.config({ lifetime = 5 })
      as_app("not-a-credential")
      assert.equal(1, h.workspace.logins().unknown)
      h.workspace.reset()
      assert.equal(0, h.workspace.logins().unknown)
      local _, c = credential()
      assert.is_true(parse_rfc3339(c.expire_time) - h.now() > 3500)
    end)
  end)

  describe("logs", function()
    it("hold no secret: not the PAT, the client secret, the admin password or an issued credential", function()
      local _, c = credential()
      local basic = "Authorization: Basic " .. h.base64(e.CLIENT_ID .. ":" .. e.CLIENT_SECRET)
      local _, t = form_token("grant_type=client_credentials&scope=all-apis", { basic })
      h.workspace.fault({ path = CRED, kind = "status", status = 500, count = 1 })
      credential()
      as_app(c.token)
      as_app("wrong-" .. c.token)
      local logs = (h.read_file(e.RUNDIR .. "/workspace.log") or "") .. (h.read_file(e.PGLOG) or "")
      assert.truthy(#logs > 0)
      for _, secret in ipairs({ e.TOKEN, e.CLIENT_SECRET, e.ADMIN_PASSWORD, c.token, t.access_token }) do
        assert.is_nil(logs:find(secret, 1, true))
      end
    end)
  end)

  describe("helpers", function()
    it("restart PostgreSQL and it comes back", function()
      assert.is_true(h.pg_running())
      assert.is_true(h.pg_restart("fast"))
      assert.equal("1", h.psql("select 1"))
    end)

    it("settings tables carry the fixtures' values", function()
      local s = h.settings({ max = 3 })
      assert.equal(e.CLIENT_ID, s.user)
      assert.equal(e.CLIENT_ID, s.client_id)
      assert.equal("require", s.sslmode)
      assert.equal(3, s.max)
      assert.equal(e.TOKEN, h.pat_settings().token)
      assert.is_nil(h.pat_settings().client_secret)
      local p = h.password_settings()
      assert.equal("lakebase_admin", p.user)
      assert.is_nil(p.endpoint)
      assert.are_not.equal(h.unique("x"), h.unique("x"))
    end)
  end)
end)
