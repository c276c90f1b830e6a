-- lakebase.json: the small JSON codec used for journals, snapshots and CLI output.
-- luacheck: max line length 200
local json = require("lakebase.json")

describe("lakebase.json", function()
  it("decodes a drizzle journal with large integers exactly", function()
    local v = assert(json.decode('{"version":"7","entries":[{"idx":0,"when":1795617646418,"tag":"0000_x","breakpoints":true}]}'))
    assert.equal("7", v.version)
    assert.equal(1795617646418, v.entries[1].when)
    assert.equal("1795617646418", json.encode(v.entries[1].when))
    assert.is_true(v.entries[1].breakpoints)
  end)

  it("decodes strings with escapes and unicode, null as json.null", function()
    local v = assert(json.decode('["a\\"b\\\\c\\n", "\\u00e9\\ud83d\\ude00", null, -1.5e2, false]'))
    assert.equal('a"b\\c\n', v[1])
    assert.equal("\195\169\240\159\152\128", v[2])
    assert.equal(json.null, v[3])
    assert.equal(-150, v[4])
    assert.is_false(v[5])
  end)

  it("reports invalid input with a position instead of raising", function()
    local v, err = json.decode('{"a": [1, 2}')
    assert.is_nil(v)
    assert.matches("invalid JSON at line 1", err)
    v, err = json.decode('{"a": 1} x')
    assert.is_nil(v)
    assert.matches("trailing", err)
    assert.is_nil((json.decode('"abc')))
  end)

  it("encodes with sorted keys, arrays, and round-trips", function()
    local t = { b = 1, a = { 1, 2, "x" }, c = json.array(), d = {}, e = "q\"\n" }
    local s = json.encode(t)
    assert.equal('{"a":[1,2,"x"],"b":1,"c":[],"d":{},"e":"q\\"\\n"}', s)
    local back = assert(json.decode(json.encode(t, { indent = "  " })))
    assert.same({ 1, 2, "x" }, { back.a[1], back.a[2], back.a[3] })
    assert.equal('q"\n', back.e)
  end)

  it("refuses what JSON cannot hold", function()
    assert.has_error(function() json.encode({ [1] = 1, x = 2 }) end)
    assert.has_error(function() json.encode(0 / 0) end)
    local cyc = {}; cyc.self = cyc
    assert.has_error(function() json.encode(cyc) end)
  end)
end)
