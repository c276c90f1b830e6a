-- SQL injection through every builder entry point: data round-trips exactly, or a clear error comes
-- back; a canary table is untouched at the end.
local h = require("spec.support.helpers")
local lakebase = require("lakebase")
local s = require("lakebase.schema")

-- kind: "ok" must round-trip; "nul" is refused by the builder (text cannot hold NUL);
-- "utf8" is refused by the server (invalid encoding) as nil, err.
local PAYLOADS = {
  { "single quote", "'", "ok" },
  { "doubled quotes", "''", "ok" },
  { "tautology", "' OR '1'='1", "ok" },
  { "stacked statement", "x'; DROP TABLE canary; --", "ok" },
  { "identifier break", 'x"; DROP TABLE canary; --', "ok" },
  { "line comment", "-- comment", "ok" },
  { "block comment", "/* c */ */ /*", "ok" },
  { "placeholder", "$1", "ok" },
  { "placeholders", "$1 $2 $$ $tag$ x $tag$", "ok" },
  { "backslashes", "\\ \\' \\\\ \\x41 \\0", "ok" },
  { "escape string", "E'\\x27'", "ok" },
  { "semicolons", ";;;", "ok" },
  { "like wildcards", "100% _sure_", "ok" },
  { "control characters", "a\tb\nc\rd\27e", "ok" },
  { "unicode", "Grüße € 😀 עברית \u{200B}", "ok" },
  { "array syntax", '{"a","b"}', "ok" },
  { "json syntax", '{"k": [1, null]}', "ok" },
  { "NULL word", "NULL", "ok" },
  { "empty", "", "ok" },
  { "very long", string.rep("x'\"--;$1\\", 50000), "ok" },
  { "NUL byte", "a\0b", "nul" },
  { "invalid UTF-8", "a\255\254b", "utf8" },
}

describe("injection", function()
  local db, t, canary, weird

  local function ok(v, err)
    assert(v ~= nil, tostring(err))
    return v
  end

  local function canary_intact()
    local rows = ok(db:select(canary):all())
    assert.are.equal(1, #rows)
    assert.are.equal("still here", rows[1].note)
  end

  setup(function()
    db = assert(lakebase.new(h.password_settings()))
    t = s.table(h.unique("b_inj"), {
      id = s.serial():primary_key(),
      name = s.text(),
      doc = s.jsonb(),
      tags = s.text():array(),
      code = s.text():unique(),
    })
    canary = s.table(h.unique("b_canary"), { note = s.text() })
    weird = s.table(h.unique('b_w"; DROP TABLE x; --'):sub(1, 63), {
      ['co"l'] = s.text(),
      ["--; drop"] = s.text(),
      ["$1"] = s.integer(),
      ["sélect"] = s.text(),
    })
    ok(db:exec_script(s.create_table_sql(t) .. s.create_table_sql(canary) .. s.create_table_sql(weird)))
    ok(db:insert(canary):values({ note = "still here" }):exec())
  end)

  teardown(function()
    if db then
      for _, x in ipairs({ t, canary, weird }) do db:exec_script(s.drop_table_sql(x, { if_exists = true })) end
      db:close()
    end
  end)

  before_each(function()
    ok(db:delete(t):all_rows():exec())
  end)

  -- Runs fn(payload); checks the outcome the payload's kind calls for. fn returns the value read back.
  local function expect(p, fn)
    local payload, kind = p[2], p[3]
    if kind == "nul" then
      local okc, e = pcall(fn, payload)
      assert.is_false(okc)
      assert.matches("NUL", tostring(e))
      return
    end
    local okc, got, err = pcall(fn, payload)
    assert(okc, tostring(got))
    if kind == "utf8" then
      assert.is_nil(got)
      assert.are.equal("22021", err and err.sqlstate, tostring(err))
      return
    end
    assert(got ~= nil, tostring(err))
    assert.are.equal(payload, got)
  end

  for _, p in ipairs(PAYLOADS) do
    describe(p[1], function()
      it("as an inserted value and in where eq", function()
        expect(p, function(v)
          local row, err = db:insert(t):values({ name = v }):returning(t.id):one()
          if not row then return nil, err end
          local back = ok(db:select(t.name):where(t.name:eq(v)):one())
          return back.name
        end)
      end)

      it("in a table-form where and an update set", function()
        expect(p, function(v)
          local id = ok(db:insert(t):values({ name = "x" }):returning(t.id):one()).id
          local n, err = db:update(t):set({ name = v }):where({ id = id }):exec()
          if not n then return nil, err end
          assert.are.equal(1, n)
          return ok(db:select(t.name):where({ name = v, id = id }):one()).name
        end)
      end)

      it("as a LIKE pattern, escaped and unescaped", function()
        expect(p, function(v)
          local id, err = db:insert(t):values({ name = v }):returning(t.id):one()
          if not id then return nil, err end
          local rows = ok(db:select(t.name):where(t.name:like(s.escape_like(v))):all())
          assert.are.equal(1, #rows)
          ok(db:select(t.id):where(t.name:ilike(v)):all()) -- runs; matches what it matches
          return rows[1].name
        end)
      end)

      it("in an in_ list, not_in list and between", function()
        expect(p, function(v)
          local row, err = db:insert(t):values({ name = v }):returning(t.id):one()
          if not row then return nil, err end
          local rows = ok(db:select(t.name):where(t.name:in_({ "zz", v })):all())
          assert.are.equal(1, #rows)
          assert.are.equal(0, #ok(db:select(t.id):where(t.name:not_in({ v })):all()))
          assert.are.equal(1, #ok(db:select(t.id):where(t.name:between(v, v)):all()))
          return rows[1].name
        end)
      end)

      it("inside json and array values", function()
        expect(p, function(v)
          local row, err = db:insert(t):values({ doc = { k = v, list = { v } }, tags = { v, "b" } })
            :returning(t.doc, t.tags):one()
          if not row then return nil, err end
          assert.are.same({ v, "b" }, row.tags)
          assert.are.equal(v, row.doc.list[1])
          local found = ok(db:select(t.id):where(t.tags:eq({ v, "b" })):all())
          assert.are.equal(1, #found)
          return row.doc.k
        end)
      end)

      it("as raw fragment arguments and on_conflict values", function()
        expect(p, function(v)
          local row, err = db:insert(t):values({ name = "a", code = "c" }):returning(t.id):one()
          if not row then return nil, err end
          local up
          up, err = db:insert(t):values({ name = "b", code = "c" }):on_conflict(t.code)
            :do_update({ name = s.raw("$1 || ''", v) }):returning(t.name):one()
          if not up then return nil, err end
          local r2 = ok(db:select(s.raw("$1::text AS v", v)):one())
          assert.are.equal(v, r2.v)
          return up.name
        end)
      end)

      it("as a table-form key: refused", function()
        local okc, e = pcall(function() return db:select(t):where({ [p[2]] = 1 }) end)
        assert.is_false(okc)
        assert.matches("no column", tostring(e))
      end)
    end)
  end

  it("quotes table and column names that contain quotes, comments and placeholders", function()
    local row = ok(db:insert(weird):values({ ['co"l'] = "q", ["--; drop"] = "c", ["$1"] = 7, ["sélect"] = "é" })
      :returning():one())
    assert.are.same({ ['co"l'] = "q", ["--; drop"] = "c", ["$1"] = 7, ["sélect"] = "é" }, row)
    local rows = ok(db:select(weird[ 'co"l' ], weird["$1"]):where(s.and_(weird["--; drop"]:eq("c"), weird["$1"]:eq(7)))
      :order_by(weird["sélect"]):all())
    assert.are.same({ ['co"l'] = "q", ["$1"] = 7 }, rows[1])
    assert.are.equal(1, ok(db:update(weird):set({ ["$1"] = 8 }):where({ ['co"l'] = "q" }):exec()))
    assert.are.equal(1, ok(db:delete(weird):where(weird["$1"]:eq(8)):exec()))
  end)

  it("refuses non-values where values go", function()
    for _, f in ipairs({
      function() return db:select(t):limit("1; DROP TABLE x") end,
      function() return db:select(t):offset("0 --") end,
      function() return db:select(t):order_by("id; DROP TABLE x") end,
      function() return db:select("* FROM pg_user --") end,
      function() return db:select(t):where("1 = 1") end,
      function() return t.name:eq({ "not", "text" }) end,
      function() return s.raw("$1", { "plain table" }) end,
    }) do
      assert.is_false((pcall(f)))
    end
  end)

  it("left the canary table untouched", function()
    canary_intact()
    local n = ok(db:query("SELECT count(*) AS n FROM pg_tables WHERE tablename = $1", s.meta(canary).name))
    assert.are.equal(1, n[1].n)
  end)
end)
