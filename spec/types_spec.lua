-- Types in both directions against the real test PostgreSQL (SPEC §4): every parameter kind
-- reaches the server as the value it is, and every result type comes back as the Lua value
-- SPEC §4 names, on Lua 5.4 and LuaJIT.
local h = require("spec.support.helpers")
local lakebase = require("lakebase")

local null = lakebase.null
local HAS_INT64 = math.type ~= nil -- Lua 5.4: 64-bit integers; LuaJIT: doubles only

local function is_integer(v)
  if HAS_INT64 then
    return math.type(v) == "integer"
  end
  return type(v) == "number" and v == math.floor(v)
end

describe("types", function()
  local db

  setup(function()
    db = assert(lakebase.new(h.password_settings()))
  end)

  teardown(function()
    if db then
      db:close()
    end
  end)

  local function one(sql, ...)
    local rows, err = db:query(sql, ...)
    assert(rows, err and tostring(err))
    return rows[1]
  end

  local function fails(sql, ...)
    local rows, err = db:query(sql, ...)
    assert.is_nil(rows)
    assert.is_table(err)
    return err
  end

  ---------------------------------------------------------------------------------------------
  describe("results", function()
    it("bool, int2, int4, oid come back as booleans and integers", function()
      local r = one("select true as t, false as f, (-32768)::int2 as i2, 2147483647::int4 as i4,"
        .. " (-2147483648)::int4 as n4, 4294967295::oid as o")
      assert.is_true(r.t)
      assert.is_false(r.f)
      assert.are.equal(-32768, r.i2)
      assert.are.equal(2147483647, r.i4)
      assert.are.equal(-2147483648, r.n4)
      assert.are.equal(4294967295, r.o)
      for _, k in ipairs({ "i2", "i4", "n4", "o" }) do
        assert.is_true(is_integer(r[k]), k)
      end
    end)

    it("int8 at +-(2^63-1): integers on 5.4, the exact text on LuaJIT", function()
      local r = one("select 9223372036854775807::int8 as max, (-9223372036854775807)::int8 as min,"
        .. " (-9223372036854775808)::int8 as lowest, 9007199254740992::int8 as p53, 42::int8 as small")
      if HAS_INT64 then
        assert.are.equal(math.maxinteger, r.max)
        assert.are.equal(-math.maxinteger, r.min)
        assert.are.equal(math.mininteger, r.lowest)
        assert.are.equal("integer", math.type(r.max))
      else
        assert.are.equal("9223372036854775807", r.max)
        assert.are.equal("-9223372036854775807", r.min)
        assert.are.equal("-9223372036854775808", r.lowest)
      end
      assert.are.equal(9007199254740992, r.p53) -- 2^53 is exact in a double: a number on both
      assert.are.equal("number", type(r.p53))
      assert.are.equal(42, r.small)
      assert.is_true(is_integer(r.small))
    end)

    it("int8 just beyond 2^53 keeps its exact value", function()
      local r = one("select 9007199254740993::int8 as v")
      if HAS_INT64 then
        assert.are.equal(9007199254740993, r.v)
      else
        assert.are.equal("9007199254740993", r.v)
      end
    end)

    it("float4 and float8 come back as numbers, with NaN and +-Infinity", function()
      local r = one("select 1.5::float4 as f4, 0.1::float8 as f8, 'NaN'::float8 as nan,"
        .. " 'Infinity'::float8 as inf, '-Infinity'::float4 as ninf, 1e308::float8 as big,"
        .. " 5e-324::float8 as tiny, '-0'::float8 as nzero")
      assert.are.equal(1.5, r.f4)
      assert.are.equal(0.1, r.f8)
      assert.is_true(r.nan ~= r.nan)
      assert.are.equal(math.huge, r.inf)
      assert.are.equal(-math.huge, r.ninf)
      assert.are.equal(1e308, r.big)
      assert.are.equal(5e-324, r.tiny)
      assert.are.equal(-math.huge, 1 / r.nzero)
    end)

    it("numeric comes back as its exact text", function()
      local r = one("select 12345678901234567890.123456789012345678::numeric as big, 1.10::numeric as scale,"
        .. " 'NaN'::numeric as nan, 0.1::numeric(10,2) as typed")
      assert.are.equal("12345678901234567890.123456789012345678", r.big)
      assert.are.equal("1.10", r.scale)
      assert.are.equal("NaN", r.nan)
      assert.are.equal("0.10", r.typed)
    end)

    it("json and jsonb come back as Lua values, JSON null as lakebase.null", function()
      local r = one([==[select '{"a":[1,2.5,null,"x"],"b":{"c":{"d":[[]]}},"e":null,"t":true,"f":false}'::jsonb as jb,
        '[1, {"k": "v"}, null]'::json as j, 'null'::jsonb as jnull, '"str"'::json as s, '12'::jsonb as n,
        '{}'::json as eo, '[]'::jsonb as ea]==])
      assert.are.same({ 1, 2.5, null, "x" }, r.jb.a)
      assert.are.equal(null, r.jb.a[3])
      assert.are.same({ c = { d = { {} } } }, r.jb.b)
      assert.are.equal(null, r.jb.e)
      assert.is_true(r.jb.t)
      assert.is_false(r.jb.f)
      assert.are.same({ 1, { k = "v" }, null }, r.j)
      assert.are.equal(null, r.jnull)
      assert.are.equal("str", r.s)
      assert.are.equal(12, r.n)
      assert.is_true(is_integer(r.n))
      assert.are.same({}, r.eo)
      assert.are.same({}, r.ea)
    end)

    it("json strings decode escapes, \\u sequences and surrogate pairs", function()
      local r = one([[select '{"s":"q\"b\\s\/n\nt\tu\u00e9e\ud83d\ude00"}'::json as j,
        '"\u00e9\ud83d\ude00\u0041"'::jsonb as jb]])
      assert.are.equal("q\"b\\s/n\nt\tu\195\169e\240\159\152\128", r.j.s)
      assert.are.equal("\195\169\240\159\152\128A", r.jb)
    end)

    it("json numbers: integers, fractions, exponents, integers beyond int64", function()
      local r = one("select '[0, -7, 9223372036854775807, 1.5e3, -2.5E-3,"
        .. " 123456789012345678901234567890]'::json as j")
      assert.are.equal(0, r.j[1])
      assert.are.equal(-7, r.j[2])
      if HAS_INT64 then
        assert.are.equal(math.maxinteger, r.j[3])
      else
        assert.are.equal(2 ^ 63, r.j[3])
      end
      assert.are.equal(1500, r.j[4])
      assert.are.equal(-0.0025, r.j[5])
      assert.are.equal(1.2345678901234568e29, r.j[6])
    end)

    it("bytea comes back as raw bytes, NUL bytes included", function()
      local all = {}
      for i = 0, 255 do
        all[#all + 1] = string.char(i)
      end
      all = table.concat(all)
      local r = one("select '\\x00ff0041'::bytea as b, ''::bytea as e, decode($1, 'hex') as all256",
        (all:gsub(".", function(c) return string.format("%02x", c:byte()) end)))
      assert.are.equal("\0\255\0A", r.b)
      assert.are.equal("", r.e)
      assert.are.equal(all, r.all256)
    end)

    it("bytea in the escape output format decodes too", function()
      local got
      assert(db:transaction(function(tx)
        assert(tx:query("set local bytea_output = 'escape'"))
        local rows = assert(tx:query("select '\\x00ff5c41'::bytea as b, array['\\x0001'::bytea] as a,"
          .. " current_setting('bytea_output') as mode"))
        got = rows[1]
        return true
      end))
      assert.are.equal("escape", got.mode)
      assert.are.equal("\0\255\\A", got.b)
      assert.are.same({ "\0\1" }, got.a)
    end)

    it("one-dimension arrays come back as Lua arrays, NULL elements as lakebase.null", function()
      local r = one([[select array[1, null, 3]::int4[] as i4, array[1, 2]::int2[] as i2,
        array[9223372036854775807, null]::int8[] as i8, array[true, false, null] as b,
        array[1.5, 'NaN', '-Infinity']::float8[] as f8, array[0.25]::float4[] as f4,
        array[1.10, null]::numeric[] as num, '{}'::int[] as empty, array[null]::text[] as only_null]])
      assert.are.same({ 1, null, 3 }, r.i4)
      assert.are.same({ 1, 2 }, r.i2)
      if HAS_INT64 then
        assert.are.same({ math.maxinteger, null }, r.i8)
      else
        assert.are.same({ "9223372036854775807", null }, r.i8)
      end
      assert.are.same({ true, false, null }, r.b)
      assert.are.equal(1.5, r.f8[1])
      assert.is_true(r.f8[2] ~= r.f8[2])
      assert.are.equal(-math.huge, r.f8[3])
      assert.are.same({ 0.25 }, r.f4)
      assert.are.same({ "1.10", null }, r.num)
      assert.are.same({}, r.empty)
      assert.are.same({ null }, r.only_null)
    end)

    it("text arrays keep quoted elements: commas, quotes, backslashes, braces, spaces, 'NULL'", function()
      local r = one([[select array['a,b', 'q"uote', 'back\slash', '{brace}', ' spaced ', 'NULL', '', null,
        E'tab\there', 'é']::text[] as t, array['x', 'y']::varchar[] as v]])
      assert.are.same({ "a,b", 'q"uote', "back\\slash", "{brace}", " spaced ", "NULL", "", null,
        "tab\there", "é" }, r.t)
      assert.are.equal("NULL", r.t[6])
      assert.are.equal(null, r.t[8])
      assert.are.same({ "x", "y" }, r.v)
    end)

    it("json, jsonb, bytea, uuid and timestamp arrays decode their elements", function()
      local r = one([[select array['{"k":[1,null]}'::jsonb, null, '"s,}"'] as jb, array['[1]'::json] as j,
        array['\x0001ff'::bytea, ''::bytea, null] as by,
        array['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid] as u,
        array['2026-01-02'::date] as d]])
      assert.are.same({ { k = { 1, null } }, null, "s,}" }, r.jb)
      assert.are.same({ { 1 } }, r.j)
      assert.are.same({ "\0\1\255", "", null }, r.by)
      assert.are.same({ "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11" }, r.u)
      assert.are.same({ "2026-01-02" }, r.d)
    end)

    it("multi-dimension arrays come back as their text; a lower bound other than 1 still decodes", function()
      local r = one("select array[[1,2],[3,4]] as md, '[0:2]={7,8,9}'::int[] as lb")
      assert.are.equal("{{1,2},{3,4}}", r.md)
      assert.are.same({ 7, 8, 9 }, r.lb)
    end)

    it("other types come back as their text form", function()
      local r = one([[select 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid as u,
        '2026-01-02 03:04:05.678+00'::timestamptz as tz, '2026-01-02 03:04:05'::timestamp as ts,
        '2026-01-02'::date as d, '1 day 02:03:04'::interval as iv, 'x'::char(3) as c,
        '192.168.0.1/24'::inet as ip, point(1, 2) as p]])
      assert.are.equal("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", r.u)
      assert.matches("^2026%-01%-0%d %d%d:04:05%.678[%+%-]%d%d", r.tz)
      assert.are.equal("2026-01-02 03:04:05", r.ts)
      assert.are.equal("2026-01-02", r.d)
      assert.are.equal("1 day 02:03:04", r.iv)
      assert.are.equal("x  ", r.c)
      assert.are.equal("192.168.0.1/24", r.ip)
      assert.are.equal("(1,2)", r.p)
    end)

    it("SQL NULL of every type is lakebase.null", function()
      local r = one([[select null::bool as b, null::int4 as i, null::int8 as l, null::float8 as f,
        null::numeric as n, null::jsonb as j, null::bytea as by, null::int[] as a, null::text as t,
        null::uuid as u]])
      for _, k in ipairs({ "b", "i", "l", "f", "n", "j", "by", "a", "t", "u" }) do
        assert.are.equal(null, r[k], k)
      end
    end)

    it("an empty result is an empty array; SELECT reports its row count", function()
      local rows = assert(db:query("select 1 as x where false"))
      assert.are.same(0, #rows)
      assert.are.equal(0, rows.affected_rows)
      rows = assert(db:query("select generate_series(1, 3) as x"))
      assert.are.equal(3, #rows)
      assert.are.equal(3, rows.affected_rows)
      assert.are.same({ x = 2 }, rows[2])
    end)

    it("duplicate column names: the later column wins", function()
      local r = one("select 1 as a, 2 as a")
      assert.are.equal(2, r.a)
    end)

    it("many rows and columns decode with the right names on every row", function()
      local rows = assert(db:query("select g as id, g::text as name, g % 2 = 0 as even, null::int as n,"
        .. " array[g, g + 1] as pair from generate_series(1, 2000) g"))
      assert.are.equal(2000, #rows)
      for i = 1, 2000, 97 do
        local r = rows[i]
        assert.are.same({ id = i, name = tostring(i), even = i % 2 == 0, n = null, pair = { i, i + 1 } }, r)
      end
    end)

    it("decoding a large result leaves the collector as it found it", function()
      if _VERSION == "Lua 5.1" and not jit then -- PUC Lua 5.1 cannot tell (the decoder leaves it alone)
        assert.are.equal(3000, #assert(db:query("select g from generate_series(1, 3000) g")))
        return
      end
      assert.is_true(collectgarbage("isrunning"))
      assert.are.equal(3000, #assert(db:query("select g from generate_series(1, 3000) g")))
      assert.is_true(collectgarbage("isrunning"))
      collectgarbage("stop")
      local ok, rows = pcall(db.query, db, "select g from generate_series(1, 3000) g")
      local running = collectgarbage("isrunning")
      collectgarbage("restart")
      assert.is_true(ok)
      assert.are.equal(3000, #rows)
      assert.is_false(running)
    end)

    it("results with more than 64 columns decode", function()
      local cols = {}
      for i = 1, 100 do
        cols[#cols + 1] = i .. " as c" .. i
      end
      local r = one("select " .. table.concat(cols, ", "))
      for i = 1, 100 do
        assert.are.equal(i, r["c" .. i])
      end
    end)
  end)

  ---------------------------------------------------------------------------------------------
  describe("parameters", function()
    it("nil and lakebase.null are SQL NULL, also at the end of the argument list", function()
      local r = one("select $1::int as a, $2::text is null as b, $3::text is null as c, $4::int is null as d",
        1, nil, null, nil)
      assert.are.equal(1, r.a)
      assert.is_true(r.b)
      assert.is_true(r.c)
      assert.is_true(r.d)
      r = one("select $1::text is null as a, $2::int as b", nil, 7)
      assert.is_true(r.a)
      assert.are.equal(7, r.b)
    end)

    it("an empty string is not NULL", function()
      local r = one("select $1::text = '' as empty, $1::text is null as isnull, length($1::text) as len", "")
      assert.is_true(r.empty)
      assert.is_false(r.isnull)
      assert.are.equal(0, r.len)
    end)

    it("sends booleans, integers, floats and strings with their types", function()
      local r = one("select pg_typeof($1)::text as b, pg_typeof($2)::text as i, pg_typeof($3)::text as f,"
        .. " pg_typeof($4)::text as by", true, 42, 0.5, lakebase.bytea("x"))
      assert.are.same({ b = "boolean", i = "bigint", f = "double precision", by = "bytea" }, r)
      -- strings go untyped: the server gives them the type the context needs
      r = one("select $1 + 1 as n, $2 = date '2026-01-02' as d, $3 = 1.5::numeric as eq", "41", "2026-01-02", "1.50")
      assert.are.equal(42, r.n)
      assert.is_true(r.d)
      assert.is_true(r.eq)
      r = one("select $1::bool as t, $2::bool as f, not $1 as nt", true, false)
      assert.are.same({ t = true, f = false, nt = false }, r)
    end)

    it("integers at full precision (int8 +-(2^63-1) on 5.4; 2^53 on LuaJIT)", function()
      if HAS_INT64 then
        local r = one("select $1::int8 = 9223372036854775807 as max, $2::int8 = -9223372036854775808 as min,"
          .. " $1::int8 as back", math.maxinteger, math.mininteger)
        assert.is_true(r.max)
        assert.is_true(r.min)
        assert.are.equal(math.maxinteger, r.back)
      else
        local r = one("select $1::int8 = 9007199254740992 as p53, pg_typeof($1)::text as t,"
          .. " $2::text as beyond, pg_typeof($2)::text as t2", 2 ^ 53, 2 ^ 53 * 4)
        assert.is_true(r.p53)
        assert.are.equal("bigint", r.t)
        assert.are.equal("double precision", r.t2) -- beyond 2^53 a double is not exact: float8
        assert.are.equal("3.602879701896397e+16", r.beyond)
        -- the int8 extremes travel as strings and come back as strings
        r = one("select $1::int8 as max", "9223372036854775807")
        assert.are.equal("9223372036854775807", r.max)
      end
      local r = one("select $1::int8 as neg, $2::int4 as zero", -123456789, 0)
      assert.are.equal(-123456789, r.neg)
      assert.are.equal(0, r.zero)
    end)

    it("floats at full precision, NaN and +-Infinity", function()
      local third = 1 / 3
      local r = one("select $1::float8 = 0.1::float8 as tenth, $2::float8 as third,"
        .. " $2::float8 = 1::float8 / 3 as exact,"
        .. " $3::float8 = 'NaN' as nan, $4::float8 = 'Infinity' as inf, $5::float8 = '-Infinity' as ninf,"
        .. " $6::float8 as tiny, $7::float8 as big",
        0.1, third, 0 / 0, math.huge, -math.huge, 5e-324, 1.7976931348623157e308)
      assert.is_true(r.tenth)
      assert.are.equal(third, r.third)
      assert.is_true(r.exact)
      assert.is_true(r.nan)
      assert.is_true(r.inf)
      assert.is_true(r.ninf)
      assert.are.equal(5e-324, r.tiny)
      assert.are.equal(1.7976931348623157e308, r.big)
    end)

    it("numeric parameters are exact when sent as strings", function()
      local r = one("select $1::numeric + 1 as n", "12345678901234567890.000000000000000001")
      assert.are.equal("12345678901234567891.000000000000000001", r.n)
    end)

    it("strings round-trip byte for byte (UTF-8, quotes, backslashes, newlines)", function()
      local s = "it's \"quoted\" \\ back\nnew é 😀 $1 --"
      local r = one("select $1::text as s, length($1::text) as n", s)
      assert.are.equal(s, r.s)
      local chars = select(2, s:gsub("[^\128-\191]", "")) -- UTF-8 lead bytes
      assert.are.equal(chars, r.n)
    end)

    it("a string with a NUL byte is an error that says to use lakebase.bytea", function()
      local err = fails("select $1::text", "a\0b")
      assert.are.equal("query", err.kind)
      assert.matches("$1", err.message, 1, true)
      assert.matches("lakebase.bytea", err.message, 1, true)
      err = fails("select $1::text, $2::text", "ok", "\0")
      assert.matches("$2", err.message, 1, true)
    end)

    it("a plain table is an error that says to wrap it", function()
      local err = fails("select $1::text, $2::text", "x", { 1, 2 })
      assert.are.equal("query", err.kind)
      assert.matches("parameter $2: a table must be wrapped with lakebase.json(), lakebase.array() or lakebase.bytea()",
        err.message, 1, true)
    end)

    it("functions, coroutines and userdata are errors naming the parameter and type", function()
      local err = fails("select $1::text", print)
      assert.matches("parameter $1: unsupported type function", err.message, 1, true)
      err = fails("select $1::text, $2::text", 1, coroutine.create(function() end))
      assert.matches("parameter $2: unsupported type thread", err.message, 1, true)
      err = fails("select $1::text", io.stdout)
      assert.matches("parameter $1: unsupported type userdata", err.message, 1, true)
    end)

    it("bytea parameters are binary-safe", function()
      local all = {}
      for i = 0, 255 do
        all[#all + 1] = string.char(i)
      end
      all = table.concat(all) .. "\0\0"
      local r = one("select $1::bytea as b, octet_length($1::bytea) as n, encode($2::bytea, 'hex') as hex,"
        .. " $3::bytea as e", lakebase.bytea(all), lakebase.bytea("\0A\0"), lakebase.bytea(""))
      assert.are.equal(all, r.b)
      assert.are.equal(258, r.n)
      assert.are.equal("004100", r.hex)
      assert.are.equal("", r.e)
    end)

    it("lakebase.json sends nested values that jsonb and json columns accept", function()
      local v = { name = "x", tags = { "a", "b" }, nested = { deep = { 1, 2.5, true, false } },
        none = null, empty = {}, list = lakebase.array({}), text = "q\"\\\n\t\1é" }
      local r = one("select $1::jsonb as jb, $1::json as j, $1::jsonb = $2::jsonb as same",
        lakebase.json(v),
        [[{"name":"x","tags":["a","b"],"nested":{"deep":[1,2.5,true,false]},"none":null,"empty":{},]]
          .. [["list":[],"text":"q\"\\\n\t\u0001é"}]])
      assert.is_true(r.same)
      assert.are.same({ name = "x", tags = { "a", "b" }, nested = { deep = { 1, 2.5, true, false } },
        none = null, empty = {}, list = {}, text = "q\"\\\n\t\1é" }, r.jb)
      assert.are.same(r.jb, r.j)
    end)

    it("lakebase.json of scalars, arrays with null, numbers keys, big integers", function()
      local r = one("select $1::jsonb as a, $2::jsonb as b, $3::jsonb as c, $4::jsonb as d, $5::jsonb::text as e",
        lakebase.json({ 1, null, "x" }), lakebase.json("str"), lakebase.json(null),
        lakebase.json({ [1] = "a", [3] = "c" }), lakebase.json(HAS_INT64 and math.maxinteger or 2 ^ 53))
      assert.are.same({ 1, null, "x" }, r.a)
      assert.are.equal("str", r.b)
      assert.are.equal(null, r.c)
      assert.are.same({ ["1"] = "a", ["3"] = "c" }, r.d) -- not 1..n: an object with text keys
      assert.are.equal(HAS_INT64 and "9223372036854775807" or "9007199254740992", r.e)
    end)

    it("lakebase.array inside lakebase.json forces a JSON array (empty, or with nil holes via n)", function()
      local r = one("select $1::jsonb::text as t",
        lakebase.json({ e = lakebase.array({}), h = lakebase.array({ 1, nil, 3, n = 4 }) }))
      assert.are.equal('{"e": [], "h": [1, null, 3, null]}', r.t)
      r = one("select $1::jsonb::text as t", lakebase.json(lakebase.array({})))
      assert.are.equal("[]", r.t)
      r = one("select $1::jsonb::text as t", lakebase.json({}))
      assert.are.equal("{}", r.t) -- an empty plain table is an object
    end)

    it("deeply nested JSON: 500 levels decode, beyond 1000 the text comes back", function()
      local r = one("select (repeat('[', 500) || repeat(']', 500))::json as ok,"
        .. " (repeat('[', 1200) || repeat(']', 1200))::json as deep")
      local v, depth = r.ok, 0
      while type(v) == "table" do
        depth = depth + 1
        v = v[1]
      end
      assert.are.equal(500, depth)
      assert.are.equal(string.rep("[", 1200) .. string.rep("]", 1200), r.deep)
      local nested = {}
      for _ = 1, 300 do
        nested = { nested }
      end
      r = one("select jsonb_array_length($1::jsonb) as n", lakebase.json(nested))
      assert.are.equal(1, r.n)
    end)

    it("lakebase.json refuses NaN, functions, cycles and bad keys", function()
      local err = fails("select $1::jsonb", lakebase.json({ x = 0 / 0 }))
      assert.matches("parameter $1: lakebase.json: NaN", err.message, 1, true)
      err = fails("select $1::jsonb", lakebase.json({ f = print }))
      assert.matches("function", err.message, 1, true)
      local cyc = {}
      cyc.self = cyc
      err = fails("select $1::jsonb", lakebase.json(cyc))
      assert.matches("nested too deeply", err.message, 1, true)
      err = fails("select $1::jsonb", lakebase.json({ [true] = 1 }))
      assert.matches("key", err.message, 1, true)
      err = fails("select $1::jsonb", lakebase.json({ b = lakebase.bytea("x") }))
      assert.matches("bytea", err.message, 1, true)
    end)

    it("lakebase.array sends quoted elements and NULLs that read back the same", function()
      local t = { "a,b", 'q"uote', "back\\slash", "{brace}", " spaced ", "NULL", "", null, "é" }
      local r = one("select $1::text[] as t, array_length($1::text[], 1) as n, ($1::text[])[6] is null as six,"
        .. " ($1::text[])[8] is null as eight", lakebase.array(t))
      assert.are.same(t, r.t)
      assert.are.equal(9, r.n)
      assert.is_false(r.six) -- the string "NULL" is not NULL
      assert.is_true(r.eight)
    end)

    it("lakebase.array of numbers, booleans, trailing nils (t.n), empty", function()
      local r = one("select $1::int8[] as i, $2::float8[] as f, $3::bool[] as b, $4::int[] as n,"
        .. " $5::int[] as e, 2 = any($1::int8[]) as has2",
        lakebase.array({ 1, 2, -3 }), lakebase.array({ 0.1, 1 / 0 }), lakebase.array({ true, false }),
        lakebase.array({ 1, nil, nil, n = 3 }), lakebase.array({}))
      assert.are.same({ 1, 2, -3 }, r.i)
      assert.are.same({ 0.1, math.huge }, r.f)
      assert.are.same({ true, false }, r.b)
      assert.are.same({ 1, null, null }, r.n)
      assert.are.same({}, r.e)
      assert.is_true(r.has2)
      r = one("select $1::text[] as j", lakebase.array({ '{"k": 1}' }))
      assert.are.same({ '{"k": 1}' }, r.j)
    end)

    it("lakebase.array refuses nested tables and NUL bytes", function()
      local err = fails("select $1::int[]", lakebase.array({ { 1, 2 }, { 3, 4 } }))
      assert.matches("parameter $1: lakebase.array: element [1] is a table", err.message, 1, true)
      err = fails("select $1::jsonb[]", lakebase.array({ lakebase.array({ 1 }) }, "jsonb"))
      assert.matches("element [1] is a table", err.message, 1, true)
      assert.has_error(function() lakebase.array({}, "int") end)
      err = fails("select $1::text[]", lakebase.array({ "ok", "a\0b" }))
      assert.matches("element [2] contains a NUL byte", err.message, 1, true)
    end)

    it("bytea[] and jsonb[] results go back through lakebase.array", function()
      local r = one("select array['\\x00ff'::bytea, '\\x5c27'::bytea, null] as b,"
        .. " array['{\"a\": [1, {}]}'::jsonb, '[]'::jsonb, null] as j")
      assert.are.equal("\0\255", r.b[1])
      local back = one("select $1::bytea[] = $2::bytea[] as same_b, $3::jsonb[] = $4::jsonb[] as same_j,"
        .. " $1::bytea[] as b, $3::jsonb[] as j",
        lakebase.array(r.b, "bytea"), lakebase.array({ "\0\255", "\\'", null }, "bytea"),
        lakebase.array(r.j, "jsonb"),
        lakebase.array({ { a = { 1, lakebase.json.decode("{}") } }, lakebase.json.array(), null }, "jsonb"))
      assert.is_true(back.same_b)
      assert.is_true(back.same_j)
      assert.are.same(r.b, back.b)
      assert.are.equal("[]", lakebase.json.encode(back.j[2]))
      -- lakebase.bytea elements in any array, without naming the type
      local w = one("select $1::bytea[] as b", lakebase.array({ lakebase.bytea("a\0b") }))
      assert.are.equal("a\0b", w.b[1])
    end)

    it("a 50 MB string parameter round-trips", function()
      local big = string.rep("0123456789abcdef", 50 * 1024 * 1024 / 16)
      local r = one("select length($1::text) as n, md5($1::text) as m, $1::text as s", big)
      assert.are.equal(#big, r.n)
      assert.are.equal(big, r.s)
      local r2 = one("select md5($1::text) as m", big)
      assert.are.equal(r.m, r2.m)
    end)

    it("invalid UTF-8 in a text parameter is a server error object, and the db keeps working", function()
      local err = fails("select $1::text", "bad \255\254 utf8")
      assert.are.equal("query", err.kind)
      assert.are.equal("22021", err.sqlstate)
      assert.is_string(tostring(err))
      assert.are.equal(1, one("select 1 as x").x)
    end)

    it("a bad parameter leaves the db usable", function()
      fails("select $1::text", { 1 })
      fails("select $1::jsonb", lakebase.json({ x = 0 / 0 }))
      assert.are.equal(2, one("select $1::int as x", 2).x)
    end)
  end)

  ---------------------------------------------------------------------------------------------
  describe("writes", function()
    local tbl

    setup(function()
      tbl = h.unique("types")
      assert(db:query("create table " .. tbl .. " (id int primary key, t text, j jsonb, b bytea,"
        .. " a text[], n numeric, ts timestamptz)"))
    end)

    teardown(function()
      if tbl then
        db:query("drop table if exists " .. tbl)
      end
    end)

    it("reports affected_rows for INSERT, UPDATE and DELETE", function()
      local rows = assert(db:query("insert into " .. tbl .. " (id, t) values ($1, $2), ($3, $4)", 1, "a", 2, nil))
      assert.are.equal(2, rows.affected_rows)
      assert.are.equal(0, #rows)
      rows = assert(db:query("update " .. tbl .. " set t = $1 where id > $2", "z", 0))
      assert.are.equal(2, rows.affected_rows)
      rows = assert(db:query("delete from " .. tbl .. " where id = $1", 99))
      assert.are.equal(0, rows.affected_rows)
      rows = assert(db:query("delete from " .. tbl))
      assert.are.equal(2, rows.affected_rows)
    end)

    it("wrapped values store into and load from typed columns", function()
      local rows = assert(db:query("insert into " .. tbl
        .. " (id, t, j, b, a, n, ts) values ($1, $2, $3, $4, $5, $6, $7)"
        .. " returning id, t, j, b, a, n, ts", 10, "", lakebase.json({ k = { 1, null } }),
        lakebase.bytea("\0\1\2"), lakebase.array({ "x,y", null }), "3.14159265358979323846", "2026-01-02T03:04:05Z"))
      assert.are.equal(1, rows.affected_rows)
      local r = rows[1]
      assert.are.equal("", r.t)
      assert.are.same({ k = { 1, null } }, r.j)
      assert.are.equal("\0\1\2", r.b)
      assert.are.same({ "x,y", null }, r.a)
      assert.are.equal("3.14159265358979323846", r.n)
      assert.matches("^2026%-01%-0%d %d%d:04:05", r.ts)
      r = one("select * from " .. tbl .. " where id = $1", 10)
      assert.are.equal("\0\1\2", r.b)
      assert.are.same({ k = { 1, null } }, r.j)
    end)
  end)
end)
