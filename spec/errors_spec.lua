-- lakebase.errors: one error object for the C core and every Lua module.
local errors = require("lakebase.errors")
local core = require("lakebase.core")

describe("lakebase.errors", function()
  it("makes error objects with the core's metatable and extra fields", function()
    local e = errors.new("migration", "0002_x.sql failed", { file = "0002_x.sql", line = 3 })
    assert.equal(core.error_mt, getmetatable(e))
    assert.is_true(errors.is(e))
    assert.is_false(errors.is({ kind = "x", message = "y" }))
    assert.same({ "migration", "0002_x.sql failed", "0002_x.sql", 3, false },
      { e.kind, e.message, e.file, e.line, e.retriable })
    assert.equal("migration: 0002_x.sql failed", tostring(e))
  end)

  it("concatenates like tostring, on either side", function()
    local e = errors.new("query", "boom", { sqlstate = "22012" })
    assert.equal("failed: query: boom (SQLSTATE 22012)", "failed: " .. e)
    assert.equal("query: boom (SQLSTATE 22012)!", e .. "!")
  end)

  it("does not repeat the kind the message already starts with", function()
    assert.equal("migration 0001_a.sql failed: x", tostring(errors.new("migration", "migration 0001_a.sql failed: x")))
    assert.equal("credential: credentials refused", tostring(errors.new("credential", "credentials refused")))
  end)
end)
