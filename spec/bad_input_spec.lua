-- Bad input catalogue (issue 9): every case gets a clear error (or the right answer), nothing
-- crashes, nothing is lost, and the db keeps working afterwards. What other specs already cover is
-- not repeated here: single malformed settings and the all-wrong environment (config_spec), workspace
-- outages while a credential is cached (credentials_spec), NUL/invalid UTF-8/table/function
-- parameters and a 50 MB text parameter (types_spec), builder misuse and injection (builder_spec,
-- injection_spec), transaction option misuse (transaction_spec).
local h = require("spec.support.helpers")
local lakebase = require("lakebase")

local unpack = table.unpack or unpack
local ws = h.workspace
local CRED, OAUTH = h.CRED_PATH, h.TOKEN_PATH

local function lines_of(s)
  local t = {}
  for l in s:gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

-- The message of the error fn raises (as a string).
local function raised(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

local function valid_utf8(s)
  if utf8 and utf8.len then return utf8.len(s) ~= nil end
  -- LuaJIT: no utf8 library; the messages here only need to be free of bytes >= 0x80
  return not s:find("[\128-\255]")
end

local function rss_kb()
  for l in io.lines("/proc/self/status") do
    local v = l:match("^VmRSS:%s+(%d+)")
    if v then return tonumber(v) end
  end
end

local function full_gc()
  collectgarbage()
  collectgarbage()
end

---------------------------------------------------------------------------------------------
describe("bad settings", function()
  -- Every option lakebase.new takes, with its environment variable (nil: options only).
  local OPTIONS = {
    { "host", "PGHOST" }, { "port", "PGPORT" }, { "database", "PGDATABASE" }, { "user", "PGUSER" },
    { "sslmode", "PGSSLMODE" }, { "sslrootcert", "PGSSLROOTCERT" }, { "endpoint", "LAKEBASE_ENDPOINT" },
    { "databricks_host", "DATABRICKS_HOST" }, { "token", "DATABRICKS_TOKEN" },
    { "client_id", "DATABRICKS_CLIENT_ID" }, { "client_secret", "DATABRICKS_CLIENT_SECRET" },
    { "password", "PGPASSWORD" }, { "max" }, { "idle_timeout" }, { "connect_timeout" },
    { "acquire_timeout" }, { "statement_timeout" }, { "application_name" }, { "max_lifetime" },
    { "prepare" }, { "min_idle" }, { "prefetch" },
  }
  local STRINGS = {
    "host", "port", "database", "user", "sslmode", "sslrootcert", "endpoint", "databricks_host", "token",
    "client_id", "client_secret", "password", "application_name",
  }
  local SECRETS = { token = true, client_secret = true, password = true }

  local function label(o)
    return o[2] and (o[2] .. " (" .. o[1] .. ")") or o[1]
  end

  -- lakebase.new must return nil, err (never raise) with one line per problem, in option order.
  local function config_error(opts, count)
    local db, err = lakebase.new(opts)
    assert.is_nil(db)
    assert.equal("config", err.kind)
    assert.is_false(err.retriable)
    local ls = lines_of(err.message)
    assert.equal(("config: invalid settings (%d problem%s):"):format(count, count == 1 and "" or "s"),
      "config: " .. ls[1])
    assert.equal(count + 1, #ls, err.message)
    return err, ls
  end

  it("every setting malformed at once: one error, one line per setting, no secret", function()
    local opts = {
      host = "a b", port = "x", database = "a\tb", user = "\255", sslmode = "sometimes",
      sslrootcert = "/nonexistent/ca.pem", endpoint = "projects/p", databricks_host = "ftp://x",
      token = "tokALLBAD\1SECRET", client_id = "c\2", client_secret = "csALLBAD\1SECRET",
      password = "pwALLBAD\127SECRET", max = 0, idle_timeout = -1, connect_timeout = 0 / 0,
      acquire_timeout = math.huge, statement_timeout = 1.5, application_name = "caf\195\169",
      max_lifetime = -1, prepare = "maybe", min_idle = -1, prefetch = "sometimes",
    }
    local err, ls = config_error(opts, #OPTIONS)
    for i, o in ipairs(OPTIONS) do
      assert.equal(label(o) .. ":", ls[i + 1]:sub(1, #label(o) + 1), "line " .. (i + 1) .. ": " .. ls[i + 1])
    end
    assert.is_nil(err.message:find("ALLBAD", 1, true))
    assert.is_nil(tostring(err):find("ALLBAD", 1, true))
  end)

  it("every setting of a wrong Lua type at once", function()
    local kinds = { {}, true, print, coroutine.create(function() end) }
    local opts = {}
    for i, o in ipairs(OPTIONS) do opts[o[1]] = kinds[i % #kinds + 1] end
    local _, ls = config_error(opts, #OPTIONS)
    for i, o in ipairs(OPTIONS) do
      local want = type(kinds[i % #kinds + 1])
      assert.matches("^" .. label(o):gsub("[%(%)]", "%%%0") .. ": expected .*got " .. want .. "$", ls[i + 1])
    end
  end)

  it("a NUL byte in every setting at once", function()
    local opts = {}
    for _, o in ipairs(OPTIONS) do opts[o[1]] = "a\0b" end
    local _, ls = config_error(opts, #OPTIONS)
    for i = 2, #ls do assert.matches("a string containing a NUL byte$", ls[i]) end
  end)

  it("1 MB values: reported by size, never echoed", function()
    local big = string.rep("x", 1024 * 1024)
    local opts = {}
    for _, k in ipairs(STRINGS) do opts[k] = big end
    local err, ls = config_error(opts, #STRINGS)
    local _
    assert.is_true(#err.message < 4096, "the message is " .. #err.message .. " bytes")
    for i = 2, #ls do assert.matches(": is too long %(1048576 bytes, at most 4096%)$", ls[i]) end
    -- numbers as huge strings are too long too, not parsed
    _, ls = config_error({ host = "h", database = "d", user = "u", password = "p", max = big, port = big }, 2)
    assert.matches("^PGPORT %(port%): ", ls[2])
    assert.matches("^max: ", ls[3])
  end)

  it("non-UTF-8 values: named by byte and offset, secrets by neither, the message is valid UTF-8", function()
    local opts = {}
    for _, k in ipairs(STRINGS) do opts[k] = "ok\255\254" end
    local err, ls = config_error(opts, #STRINGS)
    assert.is_true(valid_utf8(err.message))
    for i, k in ipairs(STRINGS) do
      if SECRETS[k] then
        assert.matches(": is set but is not valid UTF%-8$", ls[i + 1])
      else
        assert.matches(": is not valid UTF%-8 %(byte 0xFF at offset 2%)$", ls[i + 1])
      end
    end
    -- a truncated multi-byte sequence and an overlong encoding are refused as well
    for _, bad in ipairs({ "caf\195", "\192\128", "\237\160\128" }) do
      local _, l2 = config_error({ host = "h", database = bad, user = "u", password = "p" }, 1)
      assert.matches("^PGDATABASE %(database%): is not valid UTF%-8", l2[2])
    end
  end)
end)

---------------------------------------------------------------------------------------------
describe("bad Databricks config files", function()
  -- The environment cannot change inside busted: a child interpreter reads it.
  local CHILD = [[
local s, e = require("lakebase").config({ host = "h", database = "d", user = "u",
  endpoint = "projects/p/branches/b/endpoints/e", databricks_host = "https://ws.example.com" })
io.write(s and "OK" or ("ERR\n" .. e.message))
]]

  local function config_with_file(path)
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write(CHILD)
    f:close()
    local interp = os.getenv("LAKEBASE_TEST_INTERP") or "lua5.4"
    local keep = {}
    for _, k in ipairs({ "LD_PRELOAD", "ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS" }) do
      if os.getenv(k) then keep[#keep + 1] = k .. "=" .. h.shell_quote(os.getenv(k)) end
    end
    local out, _, code = h.run("timeout 20 env -i PATH=" .. h.shell_quote(os.getenv("PATH") or "/usr/bin:/bin")
      .. " LUA_PATH=" .. h.shell_quote(package.path) .. " LUA_CPATH=" .. h.shell_quote(package.cpath)
      .. " HOME=/nonexistent DATABRICKS_CONFIG_PROFILE=p DATABRICKS_CONFIG_FILE=" .. h.shell_quote(path)
      .. " " .. table.concat(keep, " ") .. " " .. interp .. " " .. h.shell_quote(script) .. " 2>&1")
    os.remove(script)
    assert.equal(0, code, "the child failed or hung: " .. out:sub(1, 300))
    assert.equal("ERR\n", out:sub(1, 4), out:sub(1, 300))
    return out:sub(5)
  end

  it("an endless or oversized file is refused after 1 MiB", function()
    assert.matches("cannot read the Databricks config file /dev/zero: larger than 1 MiB",
      config_with_file("/dev/zero"), 1, true)
    local big = os.tmpname()
    local f = assert(io.open(big, "wb"))
    f:write(string.rep("[p]\nhost = https://ws.example.com\n", 60000)) -- ~2 MB
    f:close()
    local msg = config_with_file(big)
    os.remove(big)
    assert.matches("larger than 1 MiB", msg, 1, true)
  end)

  it("binary content, a directory and an empty file are reported, not crashed on", function()
    local bin = os.tmpname()
    local f = assert(io.open(bin, "wb"))
    local bytes = {}
    for i = 0, 4095 do bytes[#bytes + 1] = string.char((i * 131 + 7) % 256) end
    f:write(table.concat(bytes))
    f:close()
    local msg = config_with_file(bin)
    os.remove(bin)
    assert.matches("is malformed: line 1:", msg, 1, true)
    assert.is_true(valid_utf8(msg))
    assert.matches("Is a directory", config_with_file("/tmp"), 1, true)
    assert.matches("no profile [p] in /dev/null", config_with_file("/dev/null"), 1, true)
  end)

  -- A FIFO named as the config file is refused at once (opened non-blocking), never waited on.
  it("a FIFO as the config file does not block", function()
    local fifo = os.tmpname()
    os.remove(fifo)
    assert(h.run("mkfifo " .. h.shell_quote(fifo)))
    local ok, msg = pcall(config_with_file, fifo)
    os.remove(fifo)
    assert(ok, msg)
  end)
end)

---------------------------------------------------------------------------------------------
describe("bad workspace answers", function()
  local function pat(overrides)
    local o = h.pat_settings(overrides)
    o.endpoint = (overrides or {}).endpoint or h.endpoint_for(h.unique("bad")) -- a credential cache entry of its own
    o.connect_timeout = o.connect_timeout or 1
    return o
  end

  local function m2m(overrides)
    local o = h.settings(overrides)
    o.endpoint = (overrides or {}).endpoint or h.endpoint_for(h.unique("bad"))
    o.connect_timeout = o.connect_timeout or 1
    return o
  end

  before_each(function() ws.reset() end)
  teardown(function() ws.reset() end)

  -- The fake's "body" and "bomb" fault kinds (any answer / deep nesting) may be missing from an
  -- older fake: those cases are pending then.
  local custom_ok
  local function custom_faults()
    if custom_ok == nil then
      local status = h.http("POST", "/_test/fault", h.json.encode({ path = "/nowhere", kind = "body", count = 0 }))
      custom_ok = status == 200
      ws.reset()
    end
    return custom_ok
  end

  -- The credential call fails; the error is a credential error naming the step; the next call after
  -- the fault is gone gets a credential (nothing cached from the bad answer).
  local function fails_then_recovers(opts, fault, step, pattern)
    ws.fault(fault)
    local t0 = h.clock()
    local tok, err = lakebase.token(opts)
    local secs = h.clock() - t0
    assert.is_nil(tok)
    assert.equal("credential", err.kind)
    assert.matches(step, err.message, 1, true)
    if pattern then assert.matches(pattern, err.message) end
    assert.is_true(secs < opts.connect_timeout + 1.5, "took " .. secs .. " s")
    assert.is_true(#err.message < 1024)
    local calls = ws.counters()[fault.path]
    ws.reset()
    local tok2 = lakebase.token(opts)
    assert.is_string(tok2)
    assert.is_true(#tok2 > 8)
    return err, calls
  end

  for _, c in ipairs({
    { path = CRED, make = pat, step = "lakebase credential:" },
    { path = OAUTH, make = m2m, step = "oauth token:" },
  }) do
    describe(c.path, function()
      it("empty body: not a JSON object, retried, then a retriable error", function()
        local err = fails_then_recovers(c.make(), { path = c.path, kind = "empty" }, c.step, "not a JSON object")
        assert.is_true(err.retriable)
        assert.matches("gave up after %d+ attempts", err.message)
      end)

      it("truncated body", function()
        local err = fails_then_recovers(c.make(), { path = c.path, kind = "truncated" }, c.step)
        assert.is_true(err.retriable)
      end)

      it("malformed JSON and a dropped connection", function()
        fails_then_recovers(c.make(), { path = c.path, kind = "malformed" }, c.step, "not a JSON object")
        fails_then_recovers(c.make(), { path = c.path, kind = "drop" }, c.step)
      end)

      it("a 10 MB answer is refused after 1 MB, at once and without retrying", function()
        local err, calls = fails_then_recovers(c.make(), { path = c.path, kind = "huge" }, c.step,
          "response body larger than 1048576 bytes")
        assert.is_false(err.retriable)
        assert.equal(1, calls)
      end)
    end)
  end

  -- Answers of the right JSON syntax but the wrong shape (the fake's "body" fault).
  local CRED_BODIES = {
    { "token is a number", '{"token": 12345, "expire_time": "2030-01-01T00:00:00Z"}', "token" },
    { "token is empty", '{"token": "", "expire_time": "2030-01-01T00:00:00Z"}', "token" },
    { "token is null", '{"token": null, "expire_time": "2030-01-01T00:00:00Z"}', "token" },
    { "token missing", '{"expire_time": "2030-01-01T00:00:00Z"}', "token" },
    { "expire_time is a number", '{"token": "abcdefghijkl", "expire_time": 1893456000}', "expire_time" },
    { "expire_time missing", '{"token": "abcdefghijkl"}', "expire_time" },
    { "expire_time is not a time", '{"token": "abcdefghijkl", "expire_time": "tomorrow"}', "expire_time" },
    { "a JSON array", '[{"token": "abcdefghijkl"}]', "JSON object" },
    { "a JSON string", '"abcdefghijkl"', "JSON object" },
    { "an HTML page", "<html><body>Bad gateway</body></html>", "JSON" },
  }
  for _, b in ipairs(CRED_BODIES) do
    it("credential answer: " .. b[1], function()
      if not custom_faults() then return pending("the fake workspace has no 'body' fault kind") end
      local err = fails_then_recovers(pat(), { path = CRED, kind = "body", body = b[2] }, "lakebase credential:")
      assert.matches(b[3], err.message, 1, true)
      assert.is_nil(err.message:find("abcdefghijkl", 1, true)) -- a (bad) token is never echoed
    end)
  end

  -- An already-expired expire_time is refused (it would be served nowhere and fetched on every call).
  it("credential answer: expire_time in the past", function()
    local err = fails_then_recovers(pat(), { path = CRED, kind = "body",
      body = '{"token": "abcdefghijkl", "expire_time": "2001-01-01T00:00:00Z"}' }, "lakebase credential:")
    assert.matches("expire", err.message, 1, true)
  end)

  local OAUTH_BODIES = {
    { "access_token is a number", '{"access_token": 5, "token_type": "Bearer", "expires_in": 3600}', "access_token" },
    { "access_token missing", '{"token_type": "Bearer", "expires_in": 3600}', "access_token" },
    { "access_token is an object", '{"access_token": {"a": 1}, "expires_in": 3600}', "access_token" },
  }
  for _, b in ipairs(OAUTH_BODIES) do
    it("oauth answer: " .. b[1], function()
      if not custom_faults() then return pending("the fake workspace has no 'body' fault kind") end
      local err = fails_then_recovers(m2m(), { path = OAUTH, kind = "body", body = b[2] }, "oauth token:")
      assert.matches(b[3], err.message, 1, true)
    end)
  end

  it("an HTTP error with a body that is not the error JSON still names the status", function()
    if not custom_faults() then return pending("the fake workspace has no 'body' fault kind") end
    local err = fails_then_recovers(pat(), { path = CRED, kind = "body", status = 404, body = "<h1>nope</h1>",
      content_type = "text/html" }, "lakebase credential:")
    assert.matches("404", err.message, 1, true)
    assert.is_false(err.retriable)
  end)

  it("a 600 KB error message is cut short; control characters never reach the message", function()
    if not custom_faults() then return pending("the fake workspace has no 'body' fault kind") end
    local body = h.json.encode({ error_code = "BAD_REQUEST", message = string.rep("m", 600000) })
    local err = fails_then_recovers(pat(), { path = CRED, kind = "body", status = 400, body = body },
      "lakebase credential: HTTP 400 BAD_REQUEST")
    assert.is_false(err.retriable)
    body = h.json.encode({ error_code = "BAD\27[31m", message = "evil\27]0;title\7\r\nFAKE LOG LINE" })
    err = fails_then_recovers(pat(), { path = CRED, kind = "body", status = 400, body = body }, "evil")
    assert.is_nil(err.message:find("[%c]"), ("control character in %q"):format(err.message))
  end)

  -- A token with an escaped NUL ("abc\u0000def") is refused, not returned cut short at the NUL.
  it("credential answer: a token with an escaped NUL byte", function()
    fails_then_recovers(pat(), { path = CRED, kind = "body",
      body = '{"token": "abc\\u0000def", "expire_time": "2030-01-01T00:00:00Z"}' }, "lakebase credential:")
  end)

  for _, c in ipairs({ { CRED, pat, "lakebase credential:" }, { OAUTH, m2m, "oauth token:" } }) do
    it("a JSON bomb (100000 levels of nesting) on " .. c[1] .. " is refused without a crash", function()
      if not custom_faults() then return pending("the fake workspace has no 'bomb' fault kind") end
      fails_then_recovers(c[2](), { path = c[1], kind = "bomb", depth = 100000 }, c[3])
    end)
  end

  it("a bad answer reaches db:query as a credential error, and the db recovers", function()
    local db = assert(lakebase.new(pat({ max = 1 })))
    ws.fault({ path = CRED, kind = "malformed" })
    local rows, err = db:query("select 1 as x")
    assert.is_nil(rows)
    assert.equal("credential", err.kind)
    assert.is_true(db:stats().credential_failures >= 1)
    ws.reset()
    rows = assert(db:query("select 1 as x"))
    assert.equal(1, rows[1].x)
    db:close()
  end)
end)

---------------------------------------------------------------------------------------------
describe("bad queries", function()
  local db, tbl

  setup(function()
    db = assert(lakebase.new(h.password_settings()))
    tbl = h.unique("bad")
    assert(db:exec_script("create table " .. tbl .. " (id int primary key, b bytea, t text)"))
  end)

  teardown(function()
    if db then
      db:exec_script("drop table if exists " .. tbl)
      db:close()
    end
  end)

  local function still_works()
    local row = assert(db:one("select 41 + $1::int as x", 1))
    assert.equal(42, row.x)
  end

  it("SQL text with a NUL byte is refused by every entry point; nothing after it runs", function()
    local evil = "select 1 as x\0; drop table " .. tbl
    for _, m in ipairs({ "query", "one", "exec_script" }) do
      assert.matches("SQL text contains a NUL byte", raised(db[m], db, evil), 1, true)
    end
    assert.matches("NUL byte", raised(db.query_params, db, evil, { n = 0 }), 1, true)
    local _, terr = db:transaction(function(tx)
      assert.matches("NUL byte", raised(tx.query, tx, evil), 1, true)
      assert.matches("NUL byte", raised(tx.exec_script, tx, evil), 1, true)
      return true
    end)
    assert.is_nil(terr)
    assert.equal(0, #assert(db:query("select * from " .. tbl))) -- the table is still there
    still_works()
  end)

  it("invalid UTF-8 in the SQL text is a server error (22021); the db keeps working", function()
    for _, sql in ipairs({ "select '\255' as x", "select 1 as \192\128", "select 'caf\195' as x" }) do
      local rows, err = db:query(sql)
      assert.is_nil(rows)
      assert.equal("query", err.kind)
      assert.equal("22021", err.sqlstate)
      local ok, serr = db:exec_script(sql)
      assert.is_nil(ok)
      assert.equal("22021", serr.sqlstate)
    end
    still_works()
  end)

  it("invalid UTF-8 inside lakebase.json and lakebase.array values is an error, not a crash", function()
    local rows, err = db:query("select $1::jsonb as j", lakebase.json({ s = "\255" }))
    assert.is_nil(rows)
    assert.equal("query", err.kind)
    rows, err = db:query("select $1::text[] as a", lakebase.array({ "ok", "\255\254" }))
    assert.is_nil(rows)
    assert.equal("query", err.kind)
    still_works()
  end)

  it("invalid UTF-8 in a transaction rolls it back and loses nothing written before", function()
    assert(db:query("insert into " .. tbl .. " (id, t) values (1, 'kept')"))
    local ok, err = db:transaction(function(tx)
      assert(tx:query("update " .. tbl .. " set t = 'changed' where id = 1"))
      local r, e = tx:query("update " .. tbl .. " set t = $1 where id = 1", "bad\255")
      assert(r == nil and e.sqlstate == "22021")
      return r, e
    end)
    assert.is_nil(ok)
    assert.equal("22021", err.sqlstate)
    assert.equal("kept", assert(db:one("select t from " .. tbl .. " where id = 1")).t)
    assert(db:query("delete from " .. tbl))
  end)

  it("JSON bombs (100 000 levels) as a parameter and as a result: clear errors, no crash", function()
    local t = {}
    local cur = t
    for _ = 1, 100000 do
      local n = {}
      cur[1] = n
      cur = n
    end
    local rows, err = db:query("select $1::jsonb as j", lakebase.json(t))
    assert.is_nil(rows)
    assert.matches("parameter $1: lakebase.json: nested too deeply", err.message, 1, true)
    local bomb = string.rep("[", 100000) .. string.rep("]", 100000)
    rows, err = db:query("select $1::jsonb as j", bomb)
    assert.is_nil(rows)
    assert.equal("54001", err.sqlstate) -- PostgreSQL's own stack depth limit
    -- deeper than the decoder follows, but accepted by the server: the JSON text comes back
    local row = assert(db:one("select (repeat('[', 5000) || repeat(']', 5000))::json as j"))
    assert.equal(10000, #row.j)
    still_works()
  end)

  it("a 50 MB bytea parameter (every byte value) is stored and read back intact", function()
    local all = {}
    for i = 0, 255 do all[#all + 1] = string.char(i) end
    local block = table.concat(all):rep(64) -- 16 KB
    local big = block:rep(50 * 64)
    assert.equal(50 * 1024 * 1024, #big)
    assert(db:query("insert into " .. tbl .. " (id, b) values (2, $1)", lakebase.bytea(big)))
    local row = assert(db:one("select length(b) as n, md5(b) as m from " .. tbl .. " where id = 2"))
    assert.equal(#big, row.n)
    local md5 = assert(db:one("select md5($1::bytea) as m", lakebase.bytea(big))).m
    assert.equal(md5, row.m)
    row = assert(db:one("select b from " .. tbl .. " where id = 2"))
    assert.is_true(row.b == big)
    assert(db:query("delete from " .. tbl))
  end)

  it("a 50 MB parameter with one invalid byte at the end is refused whole; a 50 MB SQL text runs", function()
    local big = string.rep("a", 50 * 1024 * 1024 - 1) .. "\255"
    local rows, err = db:query("insert into " .. tbl .. " (id, t) values (3, $1)", big)
    assert.is_nil(rows)
    assert.equal("22021", err.sqlstate)
    assert.equal(0, assert(db:one("select count(*)::int as n from " .. tbl)).n)
    local sql = "select length('" .. string.rep("b", 50 * 1024 * 1024) .. "') as n"
    assert.equal(50 * 1024 * 1024, assert(db:one(sql)).n)
    full_gc()
    still_works()
  end)

  it("parameter count mismatches are query errors, not retriable, and keep the connection", function()
    still_works()
    local connects = db:stats().connects
    local rows, err = db:query("select $1::int as a")
    assert.is_nil(rows)
    assert.matches("supplies 0 parameters", err.message, 1, true)
    assert.equal("query", err.kind) -- PostgreSQL says 08P01, but the session goes on
    assert.is_false(err.retriable)
    rows, err = db:query("select $2::int as a", 1)
    assert.is_nil(rows)
    assert.matches("requires 2", err.message, 1, true)
    assert.equal("query", err.kind)
    still_works()
    assert.equal(connects, db:stats().connects)
    -- more than PostgreSQL's 65535 parameters
    local many = {}
    for i = 1, 65536 do many[i] = i end
    if not jit and _VERSION ~= "Lua 5.1" then -- Lua 5.1 and LuaJIT cannot pass that many arguments
      rows, err = db:query("select 1", unpack(many))
      assert.is_nil(rows)
      assert.equal("query", err.kind)
      assert.matches("65535", err.message, 1, true)
    end
    many.n = 65536
    assert.has_error(function() db:query_params("select 1", many) end)
    still_works()
  end)

  it("query_params refuses a bad n", function()
    for _, n in ipairs({ -1, 1e12, 70000, 1.5, 0 / 0, math.huge }) do
      -- (LuaJIT reports it as "bad argument #3 to '?'": the check is in the C binding, a tail call)
      assert.matches("bad argument #%d to '.-' %(bad parameter count %(n%)%)",
        raised(db.query_params, db, "select 1", { n = n }))
    end
    -- n beyond the values: trailing NULLs
    local row = assert(db:query_params("select $1::int as a, $2::int as b, $3::int as c", { 1, n = 3 }))[1]
    assert.equal(1, row.a)
    assert.equal(lakebase.null, row.c)
  end)

  it("1 M rows: memory bounded by the result and given back afterwards (no growth over 3 runs)", function()
    local sql = "select g as id, 'row ' || g as name from generate_series(1, 1000000) g"
    full_gc()
    local base_rss, base_lua = rss_kb(), collectgarbage("count")
    local peaks = {}
    for run = 1, 3 do
      local rows = assert(db:query(sql))
      assert.equal(1000000, #rows)
      assert.equal(1000000, rows[1000000].id)
      assert.equal("row 999999", rows[999999].name)
      peaks[run] = rss_kb()
      rows = nil -- luacheck: ignore 311
      full_gc()
    end
    local grown = (peaks[1] - base_rss) / 1024
    -- bounded: the rows as Lua tables plus the PGresult while decoding (measured ~250 MB)
    assert.is_true(grown < (os.getenv("ASAN_OPTIONS") and 2000 or 700), ("1 M rows took %.0f MB"):format(grown))
    -- freed: the Lua heap is back where it was; later runs reuse the memory instead of adding to it
    assert.is_true(collectgarbage("count") - base_lua < 2048,
      ("Lua heap %.0f KB above the baseline"):format(collectgarbage("count") - base_lua))
    -- (not under ASan/valgrind: their quarantine keeps freed memory resident on purpose; they
    -- report leaks themselves)
    local sanitized = os.getenv("ASAN_OPTIONS") or (os.getenv("LD_PRELOAD") or ""):find("asan")
      or (os.getenv("LD_PRELOAD") or ""):find("valgrind")
    if not sanitized then
      local extra = (math.max(peaks[2], peaks[3]) - peaks[1]) / 1024
      assert.is_true(extra < 48, ("RSS grew %.0f MB more over runs 2 and 3: a leak"):format(extra))
    end
    still_works()
  end)
end)

---------------------------------------------------------------------------------------------
describe("wrong Lua types in the public API", function()
  local db

  setup(function() db = assert(lakebase.new(h.password_settings())) end)
  teardown(function() if db then db:close() end end)

  it("lakebase.new, config and token take a table (or nothing)", function()
    for _, f in ipairs({ "new", "config", "token" }) do
      for _, v in ipairs({ 42, "host=x", true, print }) do
        assert.matches("bad argument #1.*table expected, got " .. type(v), raised(lakebase[f], v))
      end
      -- nothing / an empty table: every required setting is missing (nil, err; no raise)
      local r, err = lakebase[f]()
      assert.is_nil(r)
      assert.equal("config", err.kind)
      assert.matches("LAKEBASE_ENDPOINT (endpoint): required", err.message, 1, true)
      r, err = lakebase[f]({})
      assert.is_nil(r)
      assert.equal("config", err.kind)
    end
  end)

  it("query, one, query_params and exec_script check their arguments", function()
    for _, v in ipairs({ 42, {}, true }) do
      for _, m in ipairs({ "query", "one", "query_params", "exec_script" }) do
        assert.matches("bad argument #1 to '" .. m .. "' (string expected, got " .. type(v) .. ")",
          raised(db[m], db, v), 1, true)
      end
    end
    assert.matches("bad argument #1 to 'query' (string expected, got nil)", raised(db.query, db, nil), 1, true)
    assert.matches("bad argument #2 to 'query_params' (table expected, got string)",
      raised(db.query_params, db, "select 1", "x"), 1, true)
    -- a plain table as a parameter: an error that says to wrap it (returned, not raised)
    local rows, err = db:query("select 1", {})
    assert.is_nil(rows)
    assert.matches("parameter $1: a table must be wrapped", err.message, 1, true)
  end)

  it("methods called with a dot instead of a colon raise instead of crashing", function()
    assert.has_error(function() db.query("select 1") end)
    assert.has_error(function() db.query(nil, "select 1") end)
    assert.has_error(function() db.stats() end)
    assert.has_error(function() db.one({}, "select 1") end)
    assert.equal(1, assert(db:one("select 1 as x")).x)
  end)

  it("transaction checks fn and opts; tx methods check theirs", function()
    assert.matches("bad argument #1 to 'transaction' (function expected, got string)",
      raised(db.transaction, db, "x"), 1, true)
    assert.matches("function expected, got nil", raised(db.transaction, db), 1, true)
    assert.matches("bad argument #2 to 'transaction' (table expected, got string)",
      raised(db.transaction, db, function() end, "ro"), 1, true)
    assert.matches("isolation must be one of", raised(db.transaction, db, function() end, { isolation = 5 }), 1, true)
    local ok, err = db:transaction(function(tx)
      assert.matches("bad argument #1 to 'query' (string expected, got nil)", raised(tx.query, tx), 1, true)
      assert.matches("bad argument #1 to 'transaction' (function expected, got number)",
        raised(tx.transaction, tx, 1), 1, true)
      assert.matches("takes no options", raised(tx.transaction, tx, function() end, {}), 1, true)
      return "done"
    end)
    assert.equal("done", ok, tostring(err))
  end)

  it("value wrappers check their argument", function()
    assert.matches("bad argument #1 to 'array' (table expected, got string)", raised(lakebase.array, "x"), 1, true)
    assert.matches("table expected, got nil", raised(lakebase.array), 1, true)
    assert.matches("bad argument #1 to 'bytea' (string expected, got number)", raised(lakebase.bytea, 1), 1, true)
    assert.matches("string expected, got table", raised(lakebase.bytea, {}), 1, true)
    -- a json wrapper of something without a JSON form fails at the query, naming the parameter
    local rows, err = db:query("select $1::jsonb as j", lakebase.json(print))
    assert.is_nil(rows)
    assert.matches("parameter $1: lakebase.json:", err.message, 1, true)
    assert.has_error(function() return lakebase.null.x end)
    assert.has_error(function() lakebase.null() end)
  end)

  it("builder entry points refuse non-tables with a message naming the call", function()
    assert.matches("select: column, table or expression expected, got 42", raised(db.select, db, 42), 1, true)
    assert.matches("insert: table from s.table expected, got t", raised(db.insert, db, "t"), 1, true)
    assert.matches("update: table from s.table expected, got nil", raised(db.update, db), 1, true)
    assert.matches("delete: table from s.table expected, got 1", raised(db.delete, db, 1), 1, true)
  end)

  it("a closed db refuses further use with a clear error", function()
    local d = assert(lakebase.new(h.password_settings({ application_name = h.unique("closed") })))
    assert(d:query("select 1"))
    assert.is_true(d:close())
    assert.is_true(d:close()) -- twice is fine
    for _, m in ipairs({ "query", "one", "exec_script", "stats" }) do
      assert.matches("attempt to use a closed lakebase db", raised(d[m], d, "select 1"), 1, true)
    end
    assert.matches("closed", raised(d.transaction, d, function() end), 1, true)
  end)
end)
