-- The builder against the real test PostgreSQL: every construct runs and returns what it should.
local h = require("spec.support.helpers")
local lakebase = require("lakebase")
local s = require("lakebase.schema")

local null = lakebase.null

describe("builder against PostgreSQL", function()
  local db, items, orders, sch, tname

  local function ok(v, err)
    assert(v ~= nil, tostring(err))
    return v
  end

  local function ids(rows)
    local out = {}
    for i, r in ipairs(rows) do out[i] = r.id end
    return out
  end

  setup(function()
    db = assert(lakebase.new(h.password_settings()))
    tname = h.unique("b_items")
    sch = h.unique("b_shop")
    items = s.table(tname, {
      id = s.serial():primary_key(),
      name = s.text():not_null(),
      price = s.numeric(10, 2),
      tags = s.jsonb(),
      meta = s.json(),
      nums = s.integer():array(),
      labels = s.text():array(),
      active = s.boolean():not_null():default(true),
      blob = s.bytea(),
      code = s.varchar(8):unique(),
      ratio = s.double(),
      uid = s.uuid(),
      day = s.date(),
      created_at = s.timestamptz():not_null():default_now(),
    }, { indexes = { { "name" } } })
    orders = s.table("orders", {
      id = s.bigserial():primary_key(),
      item_id = s.integer():not_null():references(items.id, { on_delete = "cascade" }),
      qty = s.integer(),
    }, { schema = sch })
    ok(db:exec_script('CREATE SCHEMA "' .. sch .. '"'))
    local ddl = s.create_table_sql(items) .. "\n" .. s.create_table_sql(orders, { if_not_exists = true })
    ok(db:exec_script(ddl))
  end)

  teardown(function()
    if db then
      db:exec_script('DROP SCHEMA IF EXISTS "' .. sch .. '" CASCADE')
      db:exec_script(s.drop_table_sql(items, { if_exists = true, cascade = true }))
      db:close()
    end
  end)

  before_each(function()
    ok(db:exec_script('TRUNCATE ' .. s.meta(items).qname .. ' RESTART IDENTITY CASCADE'))
  end)

  local function seed()
    return ok(db:insert(items):values(
      { name = "alpha", price = "1.50", tags = { "hot" }, nums = { 1, 2 }, code = "A" },
      { name = "Beta", price = 20, active = false, code = "B", ratio = 0.5 },
      { name = "gamma", labels = { "x", "y" }, code = "C" },
      { name = "delta", price = "7.25", tags = { k = "v" }, code = "D" }
    ):returning(items.id):all())
  end

  it("created the tables and the index from the DDL", function()
    local rows = ok(db:query("SELECT indexname FROM pg_indexes WHERE tablename = $1 ORDER BY indexname", tname))
    local names = {}
    for i, r in ipairs(rows) do names[i] = r.indexname end
    assert.are.same({ tname .. "_code_key", tname .. "_name_idx", tname .. "_pkey" }, names)
    local cols = ok(db:query("SELECT column_name, data_type FROM information_schema.columns"
      .. " WHERE table_schema = $1 AND table_name = 'orders' ORDER BY ordinal_position", sch))
    assert.are.same({ "id", "item_id", "qty" }, { cols[1].column_name, cols[2].column_name, cols[3].column_name })
  end)

  it("inserts several rows with differing keys and fills defaults", function()
    local rows = seed()
    assert.are.same({ 1, 2, 3, 4 }, ids(rows))
    local all = ok(db:select(items):order_by(items.id):all())
    assert.are.equal(4, #all)
    assert.are.equal("1.50", all[1].price)
    assert.are.same({ "hot" }, all[1].tags)
    assert.are.same({ 1, 2 }, all[1].nums)
    assert.is_true(all[1].active)
    assert.is_false(all[2].active)
    assert.are.equal(null, all[3].price)
    assert.are.same({ "x", "y" }, all[3].labels)
    assert.are.equal("string", type(all[4].created_at))
  end)

  it("inserts rows made only of defaults", function()
    local t = s.table(h.unique("b_defaults"), { id = s.serial():primary_key(), note = s.text():default("d") })
    ok(db:exec_script((s.create_table_sql(t))))
    local one = db:insert(t):default_values():returning():one()
    local two = db:insert(t):values({}, {}):returning(t.id):all()
    db:exec_script(s.drop_table_sql(t))
    assert.are.same({ id = 1, note = "d" }, one)
    assert.are.same({ 2, 3 }, ids(two))
    -- name is NOT NULL on items: DEFAULT VALUES fails at the server, reported as nil, err.
    local res, err = db:insert(items):default_values():exec()
    assert.is_nil(res)
    assert.are.equal("23502", err.sqlstate)
  end)

  it("filters with every condition", function()
    seed()
    local function where(cond)
      local rows = ok(db:select(items.id):where(cond):order_by(items.id):all())
      return ids(rows)
    end
    assert.are.same({ 2 }, where(items.id:eq(2)))
    assert.are.same({ 1, 3, 4 }, where(items.id:ne(2)))
    assert.are.same({ 1 }, where(items.id:lt(2)))
    assert.are.same({ 1, 2 }, where(items.id:le(2)))
    assert.are.same({ 2, 4 }, where(items.price:gt(7)))
    assert.are.same({ 2, 4 }, where(items.price:ge("7.25")))
    assert.are.same({ 1 }, where(items.name:like("a%")))
    assert.are.same({ 2 }, where(items.name:ilike("b%")))
    assert.are.same({ 2, 3, 4 }, where(items.name:not_like("a%")))
    assert.are.same({ 1, 3, 4 }, where(items.name:not_ilike("B%")))
    assert.are.same({ 1, 4 }, where(items.id:in_({ 4, 1, 99 })))
    assert.are.same({}, where(items.id:in_({})))
    assert.are.same({ 2, 3 }, where(items.id:not_in({ 1, 4 })))
    assert.are.same({ 1, 2, 3, 4 }, where(items.id:not_in({})))
    assert.are.same({ 1, 4 }, where(items.price:between(1, "10")))
    assert.are.same({ 3 }, where(items.price:is_null()))
    assert.are.same({ 1, 2, 4 }, where(items.price:is_not_null()))
    assert.are.same({ 3 }, where(items.price:eq(null)))
    assert.are.same({ 3 }, where({ price = null, active = true }))
    assert.are.same({ 2 }, where({ name = "Beta", code = "B" }))
    assert.are.same({ 1, 2 }, where(s.or_(items.id:eq(1), s.and_(items.active:eq(false), items.ratio:gt(0.1)))))
    assert.are.same({ 3, 4 }, where(s.not_(items.id:le(2))))
    assert.are.same({ 2 }, where(s.raw("lower(name) = $1", "beta")))
    assert.are.same({ 1 }, where(items.tags:eq({ "hot" })))
    assert.are.same({ 1 }, where(items.nums:eq({ 1, 2 })))
    assert.are.same({ 1, 4 }, where(items.id:in_(db:select(items.id):where(items.tags:is_not_null()))))
  end)

  it("orders with nulls first/last, limits and offsets", function()
    seed()
    local rows = ok(db:select(items.id):order_by(items.price:asc():nulls_first()):all())
    assert.are.same({ 3, 1, 4, 2 }, ids(rows))
    rows = ok(db:select(items.id):order_by(items.price:desc():nulls_last()):limit(2):offset(1):all())
    assert.are.same({ 4, 1 }, ids(rows))
    rows = ok(db:select(items.id):order_by(items.id:desc()):limit(0):all())
    assert.are.same({}, ids(rows))
  end)

  it("joins, groups, counts and filters groups", function()
    seed()
    ok(db:insert(orders):values({ item_id = 1, qty = 2 }, { item_id = 1, qty = 3 }, { item_id = 2, qty = 1 }):exec())
    local rows = ok(db:select(items.name, s.count(orders.id):as("n"))
      :from(items):left_join(orders, orders.item_id:eq(items.id))
      :group_by(items.name):having(s.count(orders.id):ge(1)):order_by(items.name):all())
    assert.are.same({ { name = "Beta", n = 1 }, { name = "alpha", n = 2 } }, { rows[1], rows[2] })
    assert.are.equal(2, #rows)
    rows = ok(db:select(items.id:as("item"), orders.qty):from(items):inner_join(orders, orders.item_id:eq(items.id))
      :where(orders.qty:gt(1)):order_by(orders.qty):all())
    assert.are.same({ { item = 1, qty = 2 }, { item = 1, qty = 3 } }, { rows[1], rows[2] })
    local total = s.sum(orders.qty):as("total")
    rows = ok(db:select(orders.item_id, total, s.max(orders.qty):as("most")):group_by(orders.item_id)
      :order_by(total:desc()):all())
    assert.are.same({ { item_id = 1, total = 5, most = 3 }, { item_id = 2, total = 1, most = 1 } },
      { rows[1], rows[2] })
    rows = ok(db:select(items.id):where(s.exists(db:select(orders.id):where(orders.item_id:eq(items.id))))
      :order_by(items.id):all())
    assert.are.same({ 1, 2 }, ids(rows))
  end)

  it("counts with count() and as_count()", function()
    seed()
    assert.are.equal(4, db:select(items):count())
    assert.are.equal(2, db:select(items):where(items.price:gt(5)):count())
    assert.are.equal(2, db:select(items.active):group_by(items.active):count())
    assert.are.equal(4, ok(db:select(items):as_count():one()).count)
  end)

  it("returns one row, or nil when there is none", function()
    seed()
    assert.are.equal("delta", ok(db:select(items):where({ id = 4 }):one()).name)
    local row, err = db:select(items):where({ id = 99 }):one()
    assert.is_nil(row)
    assert.is_nil(err)
  end)

  it("upserts with on_conflict", function()
    seed()
    assert.are.equal(0, ok(db:insert(items):values({ id = 1, name = "dup" }):on_conflict(items.id):do_nothing():exec()))
    assert.are.equal(1, ok(db:insert(items):values({ name = "new", code = "A" }):on_conflict():do_nothing()
      :exec()) + 1)
    local row = ok(db:insert(items):values({ id = 1, name = "again", price = 9 }):on_conflict(items.id)
      :do_update({ name = s.excluded(items.name), price = s.raw(s.meta(items).qname .. '."price" + $1', 1) })
      :returning(items.id, items.name, items.price):one())
    assert.are.same({ id = 1, name = "again", price = "2.50" }, row)
    row = ok(db:insert(items):values({ code = "B", name = "bee", ratio = 2 }):on_conflict(items.code):do_update()
      :returning(items.id, items.name, items.ratio):one())
    assert.are.same({ id = 2, name = "bee", ratio = 2 }, row)
    -- A conditional update that does not apply leaves the row alone.
    local n = ok(db:insert(items):values({ id = 3, name = "no" }):on_conflict(items.id)
      :do_update({ name = "no" }, items.active:eq(false)):exec())
    assert.are.equal(0, n)
  end)

  it("updates and deletes, reporting affected rows", function()
    seed()
    assert.are.equal(2, ok(db:update(items):set({ active = false }):where(items.price:gt(5)):exec()))
    local rows = ok(db:update(items):set({ price = null, name = s.raw("upper(name)") }):where({ id = 1 })
      :returning(items.name, items.price):all())
    assert.are.same({ name = "ALPHA", price = null }, rows[1])
    assert.are.equal(1, rows.affected_rows)
    assert.are.equal(4, ok(db:update(items):set({ ratio = 1 }):all_rows():exec()))
    assert.are.equal(1, ok(db:delete(items):where({ id = 3 }):exec()))
    rows = ok(db:delete(items):where(items.id:in_({ 1, 2 })):returning(items.id):all())
    local deleted = ids(rows)
    table.sort(deleted)
    assert.are.same({ 1, 2 }, deleted)
    assert.are.equal(1, ok(db:delete(items):all_rows():exec()))
    assert.are.equal(0, db:select(items):count())
  end)

  it("round-trips every column type", function()
    local bytes = "\0\1\2\255 binary\r\n"
    local row = ok(db:insert(items):values({
      name = "types", price = "12345678.99", tags = { a = { 1, 2, { b = false } }, s = "x" },
      meta = { n = 1.5 }, nums = { -1, 0, 2147483647 }, labels = { "a,b", 'q"', "", "NULL" },
      active = false, blob = bytes, code = "ü€", ratio = 1 / 3,
      uid = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", day = "2024-02-29",
    }):returning():one())
    assert.are.equal("12345678.99", row.price)
    assert.are.same({ a = { 1, 2, { b = false } }, s = "x" }, row.tags)
    assert.are.same({ n = 1.5 }, row.meta)
    assert.are.same({ -1, 0, 2147483647 }, row.nums)
    assert.are.same({ "a,b", 'q"', "", "NULL" }, row.labels)
    assert.is_false(row.active)
    assert.are.equal(bytes, row.blob)
    assert.are.equal("ü€", row.code)
    assert.are.equal(1 / 3, row.ratio)
    assert.are.equal("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", row.uid)
    assert.are.equal("2024-02-29", row.day)
    local empty = ok(db:insert(items):values({ name = "empty", nums = {}, labels = {}, tags = {} })
      :returning(items.nums, items.labels):one())
    assert.are.same({ nums = {}, labels = {} }, empty)
    local found = ok(db:select(items.id):where(s.and_(items.blob:eq(bytes), items.uid:eq(row.uid),
      items.day:eq("2024-02-29"), items.labels:eq({ "a,b", 'q"', "", "NULL" }))):all())
    assert.are.same({ row.id }, ids(found))
  end)

  it("passes server errors through as nil, err", function()
    seed()
    local res, err = db:insert(items):values({ name = "x", code = "A" }):exec()
    assert.is_nil(res)
    assert.are.equal("23505", err.sqlstate)
    assert.are.equal("query", err.kind)
    res, err = db:insert(items):values({ name = "x", code = "too long code" }):all()
    assert.is_nil(res)
    assert.are.equal("22001", err.sqlstate)
    res, err = db:insert(orders):values({ item_id = 999 }):exec()
    assert.is_nil(res)
    assert.are.equal("23503", err.sqlstate)
    res, err = db:select(items):where(items.id:eq("99999999999")):all()
    assert.is_nil(res)
    assert.are.equal("22003", err.sqlstate)
    -- The pool is still fine afterwards.
    assert.are.equal(4, db:select(items):count())
  end)

  it("works inside a transaction and rolls back with it", function()
    seed()
    local res, err = db:transaction(function(tx)
      ok(tx:insert(items):values({ name = "in tx", code = "T" }):exec())
      assert.are.equal(5, tx:select(items):count())
      local row = ok(tx:select(items):where({ code = "T" }):for_update():one())
      assert.are.equal("in tx", row.name)
      return false
    end)
    assert.is_nil(res)
    assert.is_not_nil(err)
    assert.are.equal(4, db:select(items):count())
    local n = db:transaction(function(tx)
      -- A nested transaction (savepoint) that fails leaves the outer one going.
      local _, inner_err = tx:transaction(function(inner)
        ok(inner:delete(items):all_rows():exec())
        assert.are.equal(0, inner:select(items):count())
        error("undo the delete")
      end)
      assert.matches("undo the delete", tostring(inner_err))
      assert.are.equal(4, tx:select(items):count())
      return tx:update(items):set({ name = "committed" }):where({ id = 1 }):exec()
    end)
    assert.are.equal(1, n)
    assert.are.equal("committed", ok(db:select(items.name):where({ id = 1 }):one()).name)
  end)
end)

-- Issue 19 item 2: a raw fragment is one operand. An OR inside it must not escape the AND around it,
-- and a -- comment at its end must not swallow what follows (ORDER BY, LIMIT, RETURNING).
describe("builder raw fragments against PostgreSQL", function()
  local db, acct

  local function ids(rows)
    local out = {}
    for i, r in ipairs(rows) do out[i] = tonumber(r.id) end
    table.sort(out)
    return out
  end

  setup(function()
    db = assert(lakebase.new(h.password_settings()))
    acct = s.table(h.unique("b_acct"), {
      id = s.integer():primary_key(),
      tenant = s.integer():not_null(),
      status = s.text():not_null(),
    })
    assert(db:exec_script(s.create_table_sql(acct)))
  end)

  teardown(function()
    if db then
      db:exec_script(s.drop_table_sql(acct, { if_exists = true }))
      db:close()
    end
  end)

  before_each(function()
    assert(db:exec_script("TRUNCATE " .. s.meta(acct).qname))
    assert(db:insert(acct):values({ id = 1, tenant = 1, status = "a" }, { id = 2, tenant = 2, status = "b" },
      { id = 3, tenant = 1, status = "c" }, { id = 4, tenant = 1, status = "b" }):exec())
  end)

  local function tenant_one_a_or_b()
    return s.and_(acct.tenant:eq(1), s.raw("status = $1 or status = $2", "a", "b"))
  end

  it("keeps an OR inside s.raw within the tenant filter (select)", function()
    assert.are.same({ 1, 4 }, ids(assert(db:select(acct.id):where(tenant_one_a_or_b()):all())))
    -- the same through two where() calls, and with the raw first
    assert.are.same({ 1, 4 }, ids(assert(db:select(acct.id):where(acct.tenant:eq(1))
      :where(s.raw("status = $1 or status = $2", "a", "b")):all())))
    assert.are.same({ 1, 4 }, ids(assert(db:select(acct.id)
      :where(s.and_(s.raw("status = $1 or status = $2", "a", "b"), { tenant = 1 })):all())))
  end)

  it("keeps an OR inside s.raw within the tenant filter (delete, update)", function()
    assert.are.same({ 1, 4 }, ids(assert(db:delete(acct):where(tenant_one_a_or_b()):returning(acct.id):all())))
    assert.are.same({ 2, 3 }, ids(assert(db:select(acct.id):all())))
    assert.are.equal(0, assert(db:update(acct):set({ status = "x" }):where(tenant_one_a_or_b()):exec()))
    assert.are.equal("b", assert(db:select(acct.status):where({ id = 2 }):one()).status)
  end)

  it("ends a raw fragment's trailing -- comment before ORDER BY, LIMIT and RETURNING", function()
    local rows = assert(db:select(acct.id):where(s.raw("tenant = $1 -- tenant one only", 1))
      :order_by(acct.id:desc()):limit(1):all())
    assert.are.same({ 4 }, ids(rows))
    rows = assert(db:select(acct.id):where(s.raw("status = $1 -- b", "b")):where(acct.tenant:eq(1)):all())
    assert.are.same({ 4 }, ids(rows))
    rows = assert(db:delete(acct):where(s.raw("id = $1 --", 3)):returning(acct.id):all())
    assert.are.same({ 3 }, ids(rows))
  end)
end)
