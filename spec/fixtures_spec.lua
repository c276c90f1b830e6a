-- The fixtures themselves: a real PostgreSQL behind TLS and scram, and a fake workspace whose
-- credentials PostgreSQL really enforces. Everything else in the suite stands on these facts.
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
      local out, err = as_app(c.token, "select current_user, (select ssl from pg_stat_ssl where pid = pg_backend_pid())")
      assert.is_nil(err)
      assert.equal(e.PGUSER .. "|t", out)
      -- PostgreSQL enforces the expire_time the API announced.
      local until_epoch = h.psql(("select extract(epoch from rolvaliduntil) from pg_roles where rolname = '%s'")
        :format(e.PGUSER))
      assert.is_true(math.abs(tonumber(until_epoch) - exp) < 0.01)
    end)

    it("rotates: each credential is new and the previous one stops working", function()
      local _, c1 = credential()
      local _, c2 = credential()
      assert.are_not.equal(c1.token, c2.token)
      assert.is_nil((as_app(c1.token)))
      assert.equal(e.PGUSER, as_app(c2.token))
    end)

    it("share mode hands out the same credential while more than half of it is left", function()
      h.workspace.config({ share = true })
      local _, c1 = credential()
      local _, c2 = credential()
      assert.equal(c1.token, c2.token)
      assert.equal(c1.expire_time, c2.expire_time)
      assert.equal(e.PGUSER, as_app(c1.token))
    end)

    it("expires for real: VALID UNTIL makes PostgreSQL refuse the password afterwards", function()
      h.workspace.config({ lifetime = 2 })
      local _, c = credential()
      local exp = parse_rfc3339(c.expire_time)
      assert.is_true(math.abs(exp - (h.now() + 2)) < 1)
      assert.equal(e.PGUSER, as_app(c.token))
      h.sleep(math.max(0, exp - h.now()) + 0.3)
      local out, err = as_app(c.token)
      assert.is_nil(out)
      assert.matches("password authentication failed", err)
      -- and it is the expiry, not a wrong password, that PostgreSQL reports in its log
      local log = h.read_file(e.PGLOG) or ""
      assert.matches('User "' .. e.PGUSER:gsub("%-", "%%-") .. '" has an expired password', log)
      -- a fresh credential works again
      h.workspace.config({ lifetime = 3600 })
      local _, c2 = credential()
      assert.equal(e.PGUSER, as_app(c2.token))
    end)

    it("answers 401 with the JSON error shape for a bad token, and for none", function()
      for _, hdr in ipairs({ bearer("dapi-not-a-token"), {} }) do
        local status, body = h.http("POST", CRED, '{"endpoint":"' .. e.ENDPOINT .. '"}', hdr)
        assert.equal(401, status)
        assert.equal("UNAUTHENTICATED", body.error_code)
        assert.is_string(body.message)
      end
    end)

    it("answers 404 for an unknown endpoint and 400 for a bad body", function()
      local status, body = credential(nil, "projects/p/branches/b/endpoints/")
      assert.equal(404, status)
      assert.equal("NOT_FOUND", body.error_code)
      status, body = credential(nil, "nope")
      assert.equal(404, status)
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
      local status, t = form_token(grant, { "Authorization: Basic " .. h.base64(e.CLIENT_ID .. ":" .. e.CLIENT_SECRET) })
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
      status = form_token("grant_type=password&scope=all-apis&client_id=" .. e.CLIENT_ID .. "&client_secret=" .. e.CLIENT_SECRET)
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

    it("reset restores the default lifetime", function()
      h.workspace.config({ lifetime = 5 })
      h.workspace.reset()
      local _, c = credential()
      assert.is_true(parse_rfc3339(c.expire_time) - h.now() > 3500)
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
