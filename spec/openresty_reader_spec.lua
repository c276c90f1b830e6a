-- db:reader() under nginx (lakebase.ngx) against the streaming replica: the OpenResty example's
-- read route (GET /read/items) is served by the standby, writes through the reader are refused
-- with 25006, a reader that is down fails (and falls back to the primary when asked to).
-- Starts its own standby (spec/support/standby.sh) and nginx (examples/openresty/run.sh).
-- luacheck: max line length 120
local h = require("spec.support.helpers")
local json = require("dkjson")
local lakebase = require("lakebase")

local root = h.root()
if root:sub(1, 1) ~= "/" then root = (os.getenv("PWD") or ".") .. (root == "." and "" or "/" .. root) end
local q = h.shell_quote
local interp = os.getenv("LAKEBASE_TEST_INTERP") or "lua"
local CURL = "env -u LD_PRELOAD curl"
local base_url

local run_dir = os.getenv("LAKEBASE_RUN_DIR") or "spec/support/run"
if run_dir:sub(1, 1) ~= "/" then run_dir = root .. "/" .. run_dir end
local prefix = run_dir .. "/openresty-reader-" .. interp
local extra_file = prefix .. "-extra.conf"

local EXTRA = [=[
location = /t/reader {
  content_by_lua_block {
    local app = require("app")
    local r = app.reader()
    local out = {}
    local row, err = r:one("select pg_is_in_recovery() as rec")
    out.rec = row and row.rec or tostring(err)
    local _, werr = r:query("create table lakebase_reader_write (id int)")
    out.write_sqlstate = werr and werr.sqlstate
    out.tx_rec = r:transaction(function(tx)
      return tx:one("select pg_is_in_recovery() as rec").rec
    end, { read_only = true })
    local prow = app.db():one("select pg_is_in_recovery() as rec")
    out.primary_rec = prow and prow.rec
    out.has_reader_stats = type(app.db():stats().reader) == "table"
    ngx.say(require("lakebase").json.encode(out))
  }
}
location = /t/reader_fallback {
  content_by_lua_block {
    local db = require("lakebase").new({ application_name = "lakebase-spec-fallback",
      fallback_to_primary = true, connect_timeout = 2 })
    local row, err = db:reader():one("select pg_is_in_recovery() as rec")
    ngx.say(row and tostring(row.rec) or tostring(err))
  }
}
]=]

local function http(method, path, body)
  local cmd = CURL .. " -s -X " .. method .. " -m 15 -w '\\n%{http_code}' "
  if body then
    cmd = cmd .. "-H 'content-type: application/json' --data-binary " .. q(body) .. " "
  end
  local out = h.run(cmd .. q(base_url .. path))
  local text, code = out:match("^(.*)\n(%d+)$")
  return text, tonumber(code)
end

describe("db:reader() under nginx (the example's read route)", function()
  local db, created_items, port

  setup(function()
    local err
    port, err = h.standby("start")
    assert(port, "the standby did not start: " .. tostring(err))
    db = assert(lakebase.new(h.settings({ application_name = "lakebase-spec-reader-ngx" })))
    created_items = h.ensure_example_items(db)
    local f = assert(io.open(extra_file, "w"))
    f:write(EXTRA)
    f:close()
    base_url = h.example_start(prefix, "LAKEBASE_NGINX_EXTRA=" .. q(extra_file) .. " LAKEBASE_NGINX_WORKERS=1"
      .. " LAKEBASE_READ_HOST=" .. q(h.env().PGHOST) .. " LAKEBASE_READ_PORT=" .. port
      -- the standby is the read endpoint: it accepts only a credential issued for that endpoint
      .. " LAKEBASE_READ_ENDPOINT=" .. q(h.env().READ_ENDPOINT))
  end)

  teardown(function()
    h.example_stop(prefix)
    os.remove(extra_file)
    h.release_example_items(db, created_items)
    h.standby("stop")
  end)

  it("reads run on the standby, writes are refused with 25006, the primary stays the primary", function()
    local text, code = http("GET", "/t/reader")
    assert.are.equal(200, code, text)
    local out = json.decode(text)
    assert.are.equal(true, out.rec, text)
    assert.are.equal("25006", out.write_sqlstate)
    assert.are.equal(true, out.tx_rec)
    assert.are.equal(false, out.primary_rec)
    assert.is_true(out.has_reader_stats)
  end)

  it("an item created on the primary shows on GET /read/items once replicated", function()
    local text, code = http("POST", "/items", '{"name":"read me","price":"1.00"}')
    assert.are.equal(201, code, text)
    local id = json.decode(text).id
    local found
    local deadline = h.clock() + 10
    repeat
      local list
      text, code = http("GET", "/read/items?limit=100")
      list = code == 200 and json.decode(text) or {}
      for _, it_ in ipairs(list) do
        if it_.id == id then found = it_ end
      end
      if not found then h.sleep(0.05) end
    until found or h.clock() > deadline
    assert.is_table(found, "the item never reached the read route")
    assert.are.equal("read me", found.name)
    assert.are.equal(405, select(2, http("POST", "/read/items", "{}")))
  end)

  it("with the standby down the read route fails; a fallback_to_primary reader answers from the primary", function()
    assert(h.standby("halt"))
    local ok, res = pcall(function()
      local _, code = http("GET", "/read/items")
      assert.are.equal(500, code)
      local text
      text, code = http("GET", "/t/reader_fallback")
      assert.are.equal(200, code)
      assert.are.equal("false", (text:gsub("%s+$", "")))
    end)
    assert(h.standby("resume"))
    if not ok then error(res, 0) end
  end)
end)
