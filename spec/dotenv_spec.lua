-- lakebase.dotenv: .env parsing for the CLI, and the overlay rule (the real environment wins).
-- luacheck: max line length 200
local dotenv = require("lakebase.dotenv")
local errors = require("lakebase.errors")

local function write(path, text)
  local f = assert(io.open(path, "wb")); f:write(text); f:close()
end

describe("lakebase.dotenv.parse", function()
  it("reads plain, exported, quoted and commented values", function()
    local vars, order = assert(dotenv.parse(table.concat({
      "# a comment",
      "",
      "PGHOST=db.example.com",
      "export PGPORT = 5433   # trailing comment",
      "PGUSER='me@example.com # not a comment'",
      [[DATABRICKS_TOKEN="dapi\"abc\\def\$x"]],
      "EMPTY=",
      "HASH=abc#def",
      "  SPACED  =  value with spaces  ",
      "MULTI=\"line1\\nline2",
      "line3\"",
      "SINGLE='a\\nb'",
    }, "\n")))
    assert.equal("db.example.com", vars.PGHOST)
    assert.equal("5433", vars.PGPORT)
    assert.equal("me@example.com # not a comment", vars.PGUSER)
    assert.equal('dapi"abc\\def$x', vars.DATABRICKS_TOKEN)
    assert.equal("", vars.EMPTY)
    assert.equal("abc#def", vars.HASH)
    assert.equal("value with spaces", vars.SPACED)
    assert.equal("line1\nline2\nline3", vars.MULTI)
    assert.equal("a\\nb", vars.SINGLE)
    assert.same({ "PGHOST", "PGPORT", "PGUSER", "DATABRICKS_TOKEN", "EMPTY", "HASH", "SPACED", "MULTI", "SINGLE" }, order)
  end)

  it("handles CRLF files and a byte order mark", function()
    local vars = assert(dotenv.parse("\239\187\191A=1\r\nB=\"2\"\r\n"))
    assert.equal("1", vars.A)
    assert.equal("2", vars.B)
  end)

  it("names the file and line of a bad line, never the value", function()
    local vars, err = dotenv.parse("A=1\nthis is not valid s3cret\n", "x.env")
    assert.is_nil(vars)
    assert.is_true(errors.is(err))
    assert.same({ "config", "x.env:2: expected KEY=value", "x.env", 2 }, { err.kind, err.message, err.file, err.line })
    assert.equal("config: x.env:2: expected KEY=value", tostring(err))
    vars, err = dotenv.parse("A=1\nTOKEN=\"s3cret\n", "x.env")
    assert.is_nil(vars)
    assert.same({ "x.env:2: TOKEN: missing closing double quote", "TOKEN" }, { err.message, err.key })
    assert.not_matches("s3cret", err)
    vars, err = dotenv.parse("TOKEN='s3cret' junk", "x.env")
    assert.is_nil(vars)
    assert.not_matches("s3cret", err)
  end)
end)

describe("lakebase.dotenv.overlay", function()
  local dir
  before_each(function()
    dir = os.tmpname(); os.remove(dir); os.execute("mkdir -p '" .. dir .. "'")
  end)
  after_each(function() os.execute("rm -rf '" .. dir .. "'") end)

  it("never overrides the real environment; the first file wins", function()
    write(dir .. "/a.env", "A=from_a\nB=from_a\n")
    write(dir .. "/b.env", "B=from_b\nC=from_b\nD=from_b\n")
    local env = { C = "real", D = "" }
    local ov, loaded = assert(dotenv.overlay({ dir .. "/a.env", dir .. "/b.env" }, function(k) return env[k] end))
    assert.same({ A = "from_a", B = "from_a" }, ov)
    assert.same({ dir .. "/a.env", dir .. "/b.env" }, loaded)
  end)

  it("skips a missing optional file and fails on a missing required one", function()
    local ov, loaded = assert(dotenv.overlay({ { path = dir .. "/nope", optional = true } }))
    assert.same({}, ov)
    assert.same({}, loaded)
    local none, err = dotenv.overlay({ dir .. "/nope" })
    assert.is_nil(none)
    assert.is_true(errors.is(err))
    assert.same({ "config", dir .. "/nope" }, { err.kind, err.file })
    assert.matches("env file not found: .*/nope", "failed: " .. err)
  end)
end)
