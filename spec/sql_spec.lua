-- luacheck: max line length 140
-- lakebase.sql: the one lexer for SQL text (placeholders for s.raw, statements for migrations).
local sql = require("lakebase.sql")

local function kinds(text)
  local out = {}
  for kind, first, last in sql.tokens(text) do
    out[#out + 1] = kind .. ":" .. text:sub(first, last)
  end
  return table.concat(out, " | ")
end

describe("lakebase.sql", function()
  it("tells strings, identifiers, dollar quotes, comments and placeholders apart", function()
    assert.equal("code:select  | param:$1 | code:, e | string:'a\\'b' | code:,  | ident:\"x\"\"y\" | code:  | comment:-- c",
      kinds("select $1, e'a\\'b', \"x\"\"y\" -- c"))
    assert.equal("block:/* a /* b */ */ | code:  | dollar:$q$ ; $1 $q$ | semicolon:;",
      kinds("/* a /* b */ */ $q$ ; $1 $q$;"))
    -- a $ inside a name is part of it; name'...' is not an E-string
    assert.equal("code:x | code:$1 , name | string:'\\' | code:)", kinds("x$1 , name'\\')"))
    assert.equal("unterminated:'abc", kinds("'abc"))
  end)

  it("quotes identifiers and refuses what PostgreSQL would truncate", function()
    assert.equal('"a""b"', sql.quote_ident('a"b'))
    assert.equal('"a", "b"', sql.ident_list({ "a", "b" }))
    assert.has_error(function() sql.quote_ident(("x"):rep(64)) end)
    assert.has_error(function() sql.quote_ident("") end)
  end)

  it("splits placeholders and says when the text ends in a -- comment", function()
    local pieces, comment = sql.split_placeholders("a = $2 or '$1' = $1 -- $3", 2)
    assert.same({ "a = ", 2, " or '$1' = ", 1, " -- $3" }, pieces)
    assert.is_true(comment)
    assert.same({ nil, "placeholder $3 but 2 argument(s)" }, { sql.split_placeholders("$3", 2) })
    assert.same({ nil, "argument 2 is not used as $2" }, { sql.split_placeholders("$1", 2) })
    assert.same({ nil, "unterminated dollar-quoted string" }, { sql.split_placeholders("$$x", 0) })
  end)

  it("splits a script at semicolons with each statement's line", function()
    local st = sql.split_statements("\n-- head\ncreate table t (a text default ';');\n/* ; */\ninsert into t values ($$;$$);")
    assert.equal(2, #st)
    assert.same({ 3, "create table t (a text default ';')" }, { st[1].line, st[1].summary })
    assert.same({ 5, "insert into t values ($$;$$)" }, { st[2].line, st[2].summary })
  end)
end)
