-- lakebase.builder: the exact SQL and parameters of every construct (no database needed).
local s = require("lakebase.schema")
local builder = require("lakebase.builder")
local value = require("lakebase.value")
local null = value.null

local db = builder.install({}) -- a method table without query_params: to_sql only

local items = s.table("items", {
  id = s.serial():primary_key(),
  name = s.text():not_null(),
  price = s.numeric(10, 2),
  tags = s.jsonb(),
  nums = s.integer():array(),
  labels = s.text():array(),
  active = s.boolean(),
  blob = s.bytea(),
  created_at = s.timestamptz():not_null():default_now(),
})
local orders = s.table("orders", {
  id = s.bigserial():primary_key(),
  item_id = s.integer():not_null():references(items.id),
  qty = s.integer(),
}, { schema = "shop" })

local ALL = '"items"."id", "items"."name", "items"."price", "items"."tags", "items"."nums", "items"."labels", '
  .. '"items"."active", "items"."blob", "items"."created_at"'

local function check(q, sql, params)
  local got_sql, got_params = q:to_sql()
  assert.are.equal(sql, got_sql)
  params = params or {}
  assert.are.equal(params.n or #params, got_params.n)
  for i = 1, got_params.n do
    assert.are.same(params[i], got_params[i], "parameter $" .. i)
  end
end

local function errmsg(f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok, "expected an error")
  return tostring(e)
end

describe("builder select", function()
  it("selects a whole table", function()
    check(db:select(items), "SELECT " .. ALL .. ' FROM "items"')
  end)

  it("selects by id", function()
    check(db:select(items):where(items.id:eq(42)), "SELECT " .. ALL .. ' FROM "items" WHERE "items"."id" = $1', { 42 })
  end)

  it("selects columns with from, and_, like, gt, order_by desc and limit", function()
    check(db:select(items.id, items.name):from(items)
      :where(s.and_(items.name:like("a%"), items.price:gt(10))):order_by(items.id:desc()):limit(20),
      'SELECT "items"."id", "items"."name" FROM "items" WHERE ("items"."name" LIKE $1 AND "items"."price" > $2)'
      .. ' ORDER BY "items"."id" DESC LIMIT $3', { "a%", 10, 20 })
  end)

  it("infers FROM from the first column, selects * with from() alone", function()
    check(db:select(items.name), 'SELECT "items"."name" FROM "items"')
    check(db:select(items.name:as("n")), 'SELECT "items"."name" AS "n" FROM "items"')
    check(db:select():from(orders), 'SELECT * FROM "shop"."orders"')
  end)

  it("renders aggregates and orders by an alias", function()
    local total = s.sum(orders.qty):as("total")
    check(db:select(orders.item_id, total, s.avg(orders.qty), s.min(orders.qty), s.max(orders.id))
      :group_by(orders.item_id):having(s.sum(orders.qty):gt(3)):order_by(total:desc()),
      'SELECT "shop"."orders"."item_id", sum("shop"."orders"."qty") AS "total", avg("shop"."orders"."qty"),'
      .. ' min("shop"."orders"."qty"), max("shop"."orders"."id") FROM "shop"."orders"'
      .. ' GROUP BY "shop"."orders"."item_id" HAVING sum("shop"."orders"."qty") > $1 ORDER BY "total" DESC', { 3 })
  end)

  it("renders every comparison", function()
    check(db:select(items.id):where(s.and_(items.id:eq(1), items.id:ne(2), items.id:lt(3), items.id:le(4),
      items.id:gt(5), items.id:ge(6))),
      'SELECT "items"."id" FROM "items" WHERE ("items"."id" = $1 AND "items"."id" <> $2 AND "items"."id" < $3'
      .. ' AND "items"."id" <= $4 AND "items"."id" > $5 AND "items"."id" >= $6)', { 1, 2, 3, 4, 5, 6 })
  end)

  it("renders like, ilike, not_like, in_, not_in, between, is_null, is_not_null", function()
    check(db:select(items.id):where(s.or_(items.name:like("a%"), items.name:ilike("%B"), items.name:not_like("x"),
      items.name:not_ilike("y"), items.id:in_({ 1, 2, 3 }), items.id:not_in({ 4 }), items.price:between("1", 9.5),
      items.tags:is_null(), items.active:is_not_null())),
      'SELECT "items"."id" FROM "items" WHERE ("items"."name" LIKE $1 OR "items"."name" ILIKE $2'
      .. ' OR "items"."name" NOT LIKE $3 OR "items"."name" NOT ILIKE $4 OR "items"."id" IN ($5, $6, $7)'
      .. ' OR "items"."id" NOT IN ($8) OR "items"."price" BETWEEN $9 AND $10 OR "items"."tags" IS NULL'
      .. ' OR "items"."active" IS NOT NULL)', { "a%", "%B", "x", "y", 1, 2, 3, 4, "1", 9.5 })
  end)

  it("turns empty in_ and not_in into constants", function()
    check(db:select(items.id):where(items.id:in_({})), 'SELECT "items"."id" FROM "items" WHERE false')
    check(db:select(items.id):where(items.id:not_in({})), 'SELECT "items"."id" FROM "items" WHERE true')
  end)

  it("compares with NULL through IS NULL", function()
    check(db:select(items.id):where(s.and_(items.tags:eq(null), items.price:ne(null))),
      'SELECT "items"."id" FROM "items" WHERE ("items"."tags" IS NULL AND "items"."price" IS NOT NULL)')
  end)

  it("nests and_, or_ and not_, skipping nil and false", function()
    local want_name = os.getenv("LAKEBASE_NO_SUCH_VARIABLE")
    check(db:select(items.id):where(s.or_(s.and_(items.id:gt(1), want_name and items.name:eq("x"), false),
      s.not_(items.active:eq(true)))),
      'SELECT "items"."id" FROM "items" WHERE ("items"."id" > $1 OR NOT ("items"."active" = $2))', { 1, true })
    check(db:select(items.id):where(s.or_()), 'SELECT "items"."id" FROM "items" WHERE false')
    check(db:select(items.id):where(s.and_()), 'SELECT "items"."id" FROM "items"')
  end)

  it("adds up where calls with AND", function()
    check(db:select(items.id):where(items.id:gt(1)):where({ name = "n" }),
      'SELECT "items"."id" FROM "items" WHERE "items"."id" > $1 AND "items"."name" = $2', { 1, "n" })
  end)

  it("takes a table-form where in declaration order, NULL as IS NULL", function()
    check(db:select(items.id):where({ price = "2.50", name = "a", tags = null, id = 7 }),
      'SELECT "items"."id" FROM "items" WHERE ("items"."id" = $1 AND "items"."name" = $2'
      .. ' AND "items"."price" = $3 AND "items"."tags" IS NULL)', { 7, "a", "2.50" })
    check(db:select(items.id):where(s.or_({ id = 1 }, { id = 2, name = "b" })),
      'SELECT "items"."id" FROM "items" WHERE ("items"."id" = $1 OR ("items"."id" = $2 AND "items"."name" = $3))',
      { 1, 2, "b" })
  end)

  it("compares columns with columns", function()
    check(db:select(items.id):where(items.id:eq(items.price)),
      'SELECT "items"."id" FROM "items" WHERE "items"."id" = "items"."price"')
  end)

  it("joins with on conditions", function()
    check(db:select(items.name, orders.qty):from(items):inner_join(orders, orders.item_id:eq(items.id))
      :left_join(s.table("notes", { item = s.integer() }), s.raw('"notes"."item" = "items"."id"')),
      'SELECT "items"."name", "shop"."orders"."qty" FROM "items" INNER JOIN "shop"."orders"'
      .. ' ON "shop"."orders"."item_id" = "items"."id" LEFT JOIN "notes" ON ("notes"."item" = "items"."id")')
    check(db:select(items.id):from(items):right_join(orders, orders.item_id:eq(items.id)):full_join(orders,
      orders.id:eq(1)):cross_join(orders),
      'SELECT "items"."id" FROM "items" RIGHT JOIN "shop"."orders" ON "shop"."orders"."item_id" = "items"."id"'
      .. ' FULL JOIN "shop"."orders" ON "shop"."orders"."id" = $1 CROSS JOIN "shop"."orders"', { 1 })
  end)

  it("groups, counts, aliases and filters groups with having", function()
    check(db:select(items.name, s.count():as("n"), s.count(orders.qty, { distinct = true }))
      :from(items):left_join(orders, orders.item_id:eq(items.id))
      :group_by(items.name):having(s.count():gt(2)):order_by(s.count():desc(), items.name),
      'SELECT "items"."name", count(*) AS "n", count(DISTINCT "shop"."orders"."qty") FROM "items"'
      .. ' LEFT JOIN "shop"."orders" ON "shop"."orders"."item_id" = "items"."id" GROUP BY "items"."name"'
      .. ' HAVING count(*) > $1 ORDER BY count(*) DESC, "items"."name"', { 2 })
  end)

  it("orders with asc/desc and nulls first/last, limit and offset as parameters", function()
    check(db:select(items.id):order_by(items.price:asc():nulls_first(), items.name:desc():nulls_last())
      :order_by(s.raw("random()")):limit(10):offset(20),
      'SELECT "items"."id" FROM "items" ORDER BY "items"."price" ASC NULLS FIRST,'
      .. ' "items"."name" DESC NULLS LAST, (random()) LIMIT $1 OFFSET $2', { 10, 20 })
  end)

  it("renders distinct, aliases and locks", function()
    check(db:select(items.name:as("title")):distinct():for_update({ skip_locked = true }),
      'SELECT DISTINCT "items"."name" AS "title" FROM "items" FOR UPDATE SKIP LOCKED')
    check(db:select(items.id):lock("share", { nowait = true }), 'SELECT "items"."id" FROM "items" FOR SHARE NOWAIT')
  end)

  it("builds count queries", function()
    check(db:select(items):where(items.price:gt(1)):order_by(items.id):as_count(),
      'SELECT count(*) AS "count" FROM "items" WHERE "items"."price" > $1', { 1 })
    check(db:select(items.name):group_by(items.name):limit(5):as_count(),
      'SELECT count(*) AS "count" FROM (SELECT "items"."name" FROM "items" GROUP BY "items"."name" LIMIT $1)'
      .. ' AS "counted"', { 5 })
  end)

  it("uses subqueries in in_ and exists, numbering parameters in order", function()
    local sub = db:select(orders.item_id):where(orders.qty:gt(5))
    check(db:select(items.id):where(s.and_(items.name:eq("a"), items.id:in_(sub))),
      'SELECT "items"."id" FROM "items" WHERE ("items"."name" = $1 AND "items"."id" IN'
      .. ' (SELECT "shop"."orders"."item_id" FROM "shop"."orders" WHERE "shop"."orders"."qty" > $2))', { "a", 5 })
    check(db:select(items.id):where(s.exists(db:select(orders.id):where(orders.item_id:eq(items.id)))),
      'SELECT "items"."id" FROM "items" WHERE EXISTS (SELECT "shop"."orders"."id" FROM "shop"."orders"'
      .. ' WHERE "shop"."orders"."item_id" = "items"."id")')
  end)

  it("renumbers raw fragments and reuses a repeated placeholder", function()
    check(db:select(items.id):where(items.id:gt(1)):where(s.raw("$2 = $1 OR $1 = '$1'", "a", "b"))
      :where(items.name:eq(s.raw("upper($1)", "c"))),
      'SELECT "items"."id" FROM "items" WHERE "items"."id" > $1 AND ($2 = $3 OR $3 = \'$1\')'
      .. ' AND "items"."name" = (upper($4))', { 1, "b", "a", "c" })
    check(db:select(s.raw("1 AS one")), "SELECT 1 AS one")
    check(db:select(s.raw("$1::int AS x", null)), "SELECT $1::int AS x", { n = 1, null })
  end)

  it("encodes values by column type", function()
    local _, p = db:select(items.id):where(s.and_(items.tags:eq({ a = 1 }), items.nums:eq({ 1, 2 }),
      items.blob:eq("\0\1"), items.labels:eq({ "x" }))):to_sql()
    assert.are.equal("json", value.kind(p[1]))
    assert.are.same({ a = 1 }, p[1].value)
    assert.are.equal("array", value.kind(p[2]))
    assert.are.same({ 1, 2 }, p[2].value)
    assert.are.equal("bytea", value.kind(p[3]))
    assert.are.equal("\0\1", p[3].value)
    assert.are.equal("array", value.kind(p[4]))
  end)

  it("one() adds LIMIT 1 only when there is no limit", function()
    -- one() needs a database; its SQL is the select with LIMIT 1, seen through a recording db.
    local seen = {}
    local rec = builder.install({ query_params = function(_, sql, params)
      seen[#seen + 1] = { sql, params }
      return { { id = 1 } }
    end })
    assert.are.same({ id = 1 }, rec:select(items.id):one())
    assert.are.equal('SELECT "items"."id" FROM "items" LIMIT $1', seen[1][1])
    assert.are.equal(1, seen[1][2][1])
    rec:select(items.id):limit(5):one()
    assert.are.equal('SELECT "items"."id" FROM "items" LIMIT $1', seen[2][1])
    assert.are.equal(5, seen[2][2][1])
  end)
end)

describe("builder insert", function()
  it("inserts rows with returning", function()
    check(db:insert(items):values({ name = "a" }, { name = "b" }):returning(items.id),
      'INSERT INTO "items" ("name") VALUES ($1), ($2) RETURNING "items"."id"', { "a", "b" })
  end)

  it("fills missing keys with DEFAULT, from the union of keys, in declaration order", function()
    check(db:insert(items):values({ { price = "1.00", name = "a" }, { name = "b", active = true }, {} }),
      'INSERT INTO "items" ("name", "price", "active") VALUES ($1, $2, DEFAULT), ($3, DEFAULT, $4),'
      .. ' (DEFAULT, DEFAULT, DEFAULT)', { "a", "1.00", "b", true })
  end)

  it("uses DEFAULT VALUES for one empty row and DEFAULT per row for several", function()
    check(db:insert(items):default_values(), 'INSERT INTO "items" DEFAULT VALUES')
    check(db:insert(items):values({}, {}), 'INSERT INTO "items" ("id") VALUES (DEFAULT), (DEFAULT)')
    check(db:insert(items):default_values():default_values(), 'INSERT INTO "items" ("id") VALUES (DEFAULT), (DEFAULT)')
    assert.matches("empty table %(no rows%)", errmsg(function() return db:insert(items):values({}) end))
  end)

  it("sends NULL, explicit DEFAULT, raw expressions, json and arrays", function()
    check(db:insert(items):values({ name = s.raw("upper($1)", "x"), price = null, created_at = s.DEFAULT,
      tags = { 1, 2 }, labels = {} }),
      'INSERT INTO "items" ("name", "price", "tags", "labels", "created_at") VALUES ((upper($1)), $2, $3, $4, DEFAULT)',
      { n = 4, "x", null, value.json({ 1, 2 }), value.array({}) })
  end)

  it("returns everything with returning()", function()
    check(db:insert(orders):values({ item_id = 1 }):returning(),
      'INSERT INTO "shop"."orders" ("item_id") VALUES ($1) RETURNING "shop"."orders"."id",'
      .. ' "shop"."orders"."item_id", "shop"."orders"."qty"', { 1 })
  end)

  it("renders on_conflict do_nothing, with and without target", function()
    check(db:insert(items):values({ id = 1, name = "a" }):on_conflict(items.id):do_nothing(),
      'INSERT INTO "items" ("id", "name") VALUES ($1, $2) ON CONFLICT ("id") DO NOTHING', { 1, "a" })
    check(db:insert(items):values({ name = "a" }):on_conflict():do_nothing(),
      'INSERT INTO "items" ("name") VALUES ($1) ON CONFLICT DO NOTHING', { "a" })
  end)

  it("renders on_conflict do_update with values, EXCLUDED and the current row", function()
    check(db:insert(items):values({ id = 1, name = "a" }):on_conflict(items.id):do_update({ name = "a" }),
      'INSERT INTO "items" ("id", "name") VALUES ($1, $2) ON CONFLICT ("id") DO UPDATE SET "name" = $3',
      { 1, "a", "a" })
    check(db:insert(items):values({ id = 1, name = "a", price = 3 }):on_conflict("id")
      :do_update({ name = s.excluded(items.name), price = s.raw('"items"."price" + $1', 1) },
        items.active:eq(true)):returning(items.id, items.price),
      'INSERT INTO "items" ("id", "name", "price") VALUES ($1, $2, $3) ON CONFLICT ("id") DO UPDATE SET'
      .. ' "name" = EXCLUDED."name", "price" = ("items"."price" + $4) WHERE "items"."active" = $5'
      .. ' RETURNING "items"."id", "items"."price"', { 1, "a", 3, 1, true })
  end)

  it("do_update() without a table updates every inserted column but the target", function()
    check(db:insert(items):values({ id = 1, name = "a", price = 2 }):on_conflict(items.id):do_update(),
      'INSERT INTO "items" ("id", "name", "price") VALUES ($1, $2, $3) ON CONFLICT ("id") DO UPDATE SET'
      .. ' "name" = EXCLUDED."name", "price" = EXCLUDED."price"', { 1, "a", 2 })
  end)
end)

describe("builder update and delete", function()
  it("updates with set, where and returning", function()
    check(db:update(items):set({ name = "z" }):where(items.id:eq(1)),
      'UPDATE "items" SET "name" = $1 WHERE "items"."id" = $2', { "z", 1 })
    check(db:update(items):set({ price = null, name = s.raw("upper(name)") }):set({ active = false })
      :where({ id = 2 }):returning(items.id),
      'UPDATE "items" SET "name" = (upper(name)), "price" = $1, "active" = $2 WHERE "items"."id" = $3'
      .. ' RETURNING "items"."id"', { n = 3, null, false, 2 })
    check(db:update(items):set({ price = items.id }):all_rows(), 'UPDATE "items" SET "price" = "items"."id"')
  end)

  it("deletes with where, table form, returning, and all_rows", function()
    check(db:delete(items):where({ id = 1 }), 'DELETE FROM "items" WHERE "items"."id" = $1', { 1 })
    check(db:delete(orders):where(orders.qty:lt(1)):returning(orders.id),
      'DELETE FROM "shop"."orders" WHERE "shop"."orders"."qty" < $1 RETURNING "shop"."orders"."id"', { 1 })
    check(db:delete(items):all_rows(), 'DELETE FROM "items"')
  end)

  it("refuses to touch every row without where or all_rows", function()
    assert.matches("refusing to delete every row of items", errmsg(function() return db:delete(items):to_sql() end))
    assert.matches("refusing to update every row of items",
      errmsg(function() return db:update(items):set({ name = "x" }):to_sql() end))
    -- An empty filter is no filter.
    assert.matches("refusing to delete", errmsg(function() return db:delete(items):where({}):to_sql() end))
    assert.matches("refusing to delete", errmsg(function()
      return db:delete(items):where(s.and_(nil, nil)):to_sql() end))
    assert.matches("refusing to delete", errmsg(function()
      return db:delete(items):where(s.and_(s.and_(), {})):to_sql() end))
    assert.matches("refusing to delete", errmsg(function()
      return db:delete(items):where(s.or_(items.id:eq(1), {})):to_sql() end))
    check(db:delete(items):where(s.not_({})), 'DELETE FROM "items" WHERE false')
    check(db:delete(items):where(s.and_({}, items.id:eq(3))), 'DELETE FROM "items" WHERE "items"."id" = $1', { 3 })
  end)
end)

-- Issue 19 item 2: a raw fragment is one operand wherever it is placed.
describe("builder raw fragments", function()
  local a_or_b = function() return s.raw("status = $1 or status = $2", "a", "b") end
  local acct = s.table("acct", { id = s.integer(), tenant = s.integer(), status = s.text() })

  it("groups a raw fragment inside and_, or_ and not_", function()
    check(db:select(acct.id):where(s.and_(acct.tenant:eq(1), a_or_b())),
      'SELECT "acct"."id" FROM "acct" WHERE ("acct"."tenant" = $1 AND (status = $2 or status = $3))', { 1, "a", "b" })
    check(db:select(acct.id):where(s.or_(s.raw("tenant = $1 and id = $2", 1, 2), acct.id:eq(3))),
      'SELECT "acct"."id" FROM "acct" WHERE ((tenant = $1 and id = $2) OR "acct"."id" = $3)', { 1, 2, 3 })
    check(db:select(acct.id):where(s.not_(a_or_b())),
      'SELECT "acct"."id" FROM "acct" WHERE NOT ((status = $1 or status = $2))', { "a", "b" })
    -- a lone raw, one of several where() calls, and a raw in a one-item and_
    check(db:delete(acct):where(acct.tenant:eq(1)):where(a_or_b()),
      'DELETE FROM "acct" WHERE "acct"."tenant" = $1 AND (status = $2 or status = $3)', { 1, "a", "b" })
    check(db:delete(acct):where(s.and_(nil, a_or_b())),
      'DELETE FROM "acct" WHERE (status = $1 or status = $2)', { "a", "b" })
  end)

  it("groups a raw fragment in having, join on, group by, order by and do_update where", function()
    check(db:select(acct.tenant, s.count()):group_by(s.raw("tenant % $1", 10))
      :having(s.raw("count(*) > $1 or true", 1)):having(s.count():lt(9)),
      'SELECT "acct"."tenant", count(*) FROM "acct" GROUP BY (tenant % $1) HAVING (count(*) > $2 or true)'
      .. ' AND count(*) < $3', { 10, 1, 9 })
    check(db:select(acct.id):from(acct):inner_join(items, s.raw('"items"."id" = "acct"."id" or $1', true))
      :where({ tenant = 1 }),
      'SELECT "acct"."id" FROM "acct" INNER JOIN "items" ON ("items"."id" = "acct"."id" or $1)'
      .. ' WHERE "acct"."tenant" = $2', { true, 1 })
    check(db:select(acct.id):order_by(s.raw("status = $1", "a"):desc():nulls_last(), s.raw("id"):asc()),
      'SELECT "acct"."id" FROM "acct" ORDER BY (status = $1) DESC NULLS LAST, (id) ASC', { "a" })
    check(db:insert(acct):values({ id = 1 }):on_conflict(acct.id):do_update({ status = "x" }, a_or_b()),
      'INSERT INTO "acct" ("id") VALUES ($1) ON CONFLICT ("id") DO UPDATE SET "status" = $2'
      .. ' WHERE (status = $3 or status = $4)', { 1, "x", "a", "b" })
  end)

  it("groups a raw fragment as an operand of comparisons, between, like, in and aggregates", function()
    check(db:select(acct.id):where(s.and_(acct.id:eq(s.raw("$1 + 1 or true", 1)),
      acct.id:between(s.raw("1 and 2"), 3), acct.status:like(s.raw("'a' || 'b'")),
      acct.id:in_({ 1, s.raw("2 or true") }), acct.tenant:in_(s.raw("select 1")))),
      'SELECT "acct"."id" FROM "acct" WHERE ("acct"."id" = ($1 + 1 or true) AND "acct"."id" BETWEEN (1 and 2) AND $2'
      .. ' AND "acct"."status" LIKE (\'a\' || \'b\') AND "acct"."id" IN ($3, (2 or true))'
      .. ' AND "acct"."tenant" IN (select 1))', { 1, 3, 1 })
    check(db:select(s.sum(s.raw("id * 2")):as("s")), 'SELECT sum((id * 2)) AS "s"')
  end)

  it("groups a raw value in set, values and do_update, so a comma cannot add a column", function()
    check(db:update(acct):set({ status = s.raw("'x', tenant = 2") }):where({ id = 1 }),
      'UPDATE "acct" SET "status" = (\'x\', tenant = 2) WHERE "acct"."id" = $1', { 1 })
    check(db:insert(acct):values({ id = s.raw("1, 2") }), 'INSERT INTO "acct" ("id") VALUES ((1, 2))')
  end)

  it("keeps a raw select or returning item bare (it may carry its alias) and aliases a raw with :as()", function()
    check(db:select(s.raw("1 AS one"), s.raw("$1::int", 2):as("two")), 'SELECT 1 AS one, ($1::int) AS "two"', { 2 })
    check(db:delete(acct):where({ id = 1 }):returning(s.raw("id AS gone")),
      'DELETE FROM "acct" WHERE "acct"."id" = $1 RETURNING id AS gone', { 1 })
  end)

  it("ends a trailing -- comment with a newline so it cannot swallow the rest of the statement", function()
    check(db:select(acct.id):where(s.raw("tenant = $1 -- tenant one", 1)):order_by(acct.id):limit(1),
      'SELECT "acct"."id" FROM "acct" WHERE (tenant = $1 -- tenant one\n) ORDER BY "acct"."id" LIMIT $2', { 1, 1 })
    check(db:select(s.raw("id --"), acct.status):where({ tenant = 1 }),
      'SELECT id --\n, "acct"."status" FROM "acct" WHERE "acct"."tenant" = $1', { 1 })
    check(db:delete(acct):where(s.raw("id = $1 --", 3)):returning(acct.id),
      'DELETE FROM "acct" WHERE (id = $1 --\n) RETURNING "acct"."id"', { 3 })
    -- not a comment at the end: in a string, in a block comment, or a comment ended by a newline
    assert.are.equal("x = '--'", s.raw("x = '--'").sql)
    assert.are.equal("x /* -- */", s.raw("x /* -- */").sql)
    assert.are.equal("x -- c\n  and y", s.raw("x -- c\n  and y").sql)
    assert.are.equal("now() -- c\n", s.raw("now() -- c").sql)
    assert.are.same({ "a -- $1" }, s.split_placeholders("a -- $1", 0))
    assert.is_true(select(2, s.split_placeholders("a -- $1", 0)))
    assert.is_false(select(2, s.split_placeholders("a -- $1\n", 0)))
    -- the same in DDL: the comma after a column's DEFAULT survives
    local t = s.table("t", { a = s.timestamptz():default(s.raw("now() -- c")), b = s.integer() })
    assert.matches('DEFAULT now%(%) %-%- c\n,\n  "b" integer', s.create_table_sql(t))
  end)
end)

describe("builder misuse", function()
  it("names the column on a wrong Lua type", function()
    assert.matches("column items.id expects an integer, got string \"abc\"", errmsg(items.id.eq, items.id, "abc"))
    assert.matches("column items.id expects an integer, got number 1.5", errmsg(items.id.eq, items.id, 1.5))
    assert.matches("column items.name expects a string, got a number", errmsg(function()
      return db:insert(items):values({ name = 5 }) end))
    assert.matches("column items.active expects a boolean", errmsg(function()
      return db:update(items):set({ active = "yes" }) end))
    assert.matches("column items.nums element 2 expects an integer", errmsg(items.nums.eq, items.nums, { 1, "x" }))
    assert.matches("column items.nums is an array", errmsg(items.nums.eq, items.nums, 5))
    assert.matches("nil", errmsg(items.id.eq, items.id, nil))
  end)

  it("accepts strings for numeric and integer columns", function()
    check(db:select(items.id):where(s.and_(items.id:eq("12"), items.price:eq("1.25"))),
      'SELECT "items"."id" FROM "items" WHERE ("items"."id" = $1 AND "items"."price" = $2)', { "12", "1.25" })
  end)

  it("refuses unknown keys in table forms, rows and set", function()
    assert.matches("where: table items has no column 'nmae'", errmsg(function()
      return db:select(items):where({ nmae = 1 }) end))
    assert.matches("values %(row 2%): table items has no column 'x'", errmsg(function()
      return db:insert(items):values({ name = "a" }, { x = 1 }) end))
    assert.matches("set: table items has no column 'x'", errmsg(function()
      return db:update(items):set({ x = 1 }) end))
    assert.matches("keys must be column names", errmsg(function()
      return db:select(items):where({ [1] = 2 }) end))
  end)

  it("refuses misplaced arguments with clear messages", function()
    assert.matches("got the string 'name'", errmsg(function() return db:select("name") end))
    assert.matches("order_by: got the string", errmsg(function() return db:select(items):order_by("id") end))
    assert.matches("limit: non%-negative integer", errmsg(function() return db:select(items):limit(-1) end))
    assert.matches("limit: non%-negative integer", errmsg(function() return db:select(items):limit("5") end))
    assert.matches("insert: table from s.table expected", errmsg(function() return db:insert("items") end))
    assert.matches("call values", errmsg(function() return db:insert(items):to_sql() end))
    assert.matches("call set", errmsg(function() return db:update(items):where({ id = 1 }):to_sql() end))
    assert.matches("cannot take an expression", errmsg(function()
      return db:insert(items):values({ name = s.excluded(items.name) }) end))
    assert.matches("cannot take an expression", errmsg(function()
      return db:update(items):set({ name = items.name:eq("x") }) end))
    assert.matches("do_nothing: call on_conflict", errmsg(function() return db:insert(items):do_nothing() end))
    assert.matches("needs target columns", errmsg(function()
      return db:insert(items):values({ name = "a" }):on_conflict():do_update({ name = "b" }) end))
    assert.matches("finish with do_nothing", errmsg(function()
      return db:insert(items):values({ name = "a" }):on_conflict(items.id):to_sql() end))
    assert.matches("select query has no method 'set'", errmsg(function() return db:select(items):set({}) end))
    assert.matches("on must be a condition", errmsg(function()
      return db:select(items):inner_join(orders, { id = 1 }) end))
    assert.matches("an on condition is needed", errmsg(function() return db:select(items):left_join(orders) end))
    assert.matches("NULL, which never matches", errmsg(items.id.in_, items.id, { 1, null }))
    assert.matches("a sequence expected", errmsg(items.id.in_, items.id, { a = 1 }))
    assert.matches("pattern string expected", errmsg(items.name.like, items.name, 5))
    assert.matches("no database", errmsg(function() return db:select(items):all() end))
  end)

  it("reports misuse at the caller's line", function()
    local ok, e = pcall(function()
      local q = db:delete(items)
      q:to_sql() -- line under test
      return q
    end)
    assert.is_false(ok)
    assert.matches("builder_spec.lua:%d+: refusing", e)
  end)

  it("escapes LIKE patterns", function()
    assert.are.equal("50\\% off\\_now\\\\", s.escape_like("50% off_now\\"))
  end)

  it("refuses more parameters than PostgreSQL takes", function()
    local rows = {}
    for i = 1, 33000 do rows[i] = { id = i, name = "n" } end
    assert.matches("more than 65535 parameters", errmsg(function() return db:insert(items):values(rows):to_sql() end))
  end)
end)
