--- Quick start: validate settings, get a Lakebase credential, write and read rows.
-- Settings come from the environment (PGHOST, PGDATABASE, LAKEBASE_ENDPOINT, DATABRICKS_HOST,
-- DATABRICKS_TOKEN or DATABRICKS_CLIENT_ID/SECRET, ...). The schema is applied beforehand by
-- `lakebase migrate --dir examples/migrations` (make demo does both).
local lakebase = require("lakebase")
local schema = require("examples.schema")
local items = schema.items

local settings, err = lakebase.config()
if not settings then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
print("settings: " .. tostring(settings))

local db
db, err = lakebase.new()
if not db then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end

local function check(v, e)
  if v == nil and e ~= nil then
    io.stderr:write("quickstart failed: ", tostring(e), "\n")
    os.exit(1)
  end
  return v
end

-- Write two rows and read them back, all through parameters.
local inserted = check(db:insert(items)
  :values({ name = "espresso", price = "2.50", tags = { "hot", "small" } },
          { name = "iced latte", price = "4.20", tags = { cold = true } })
  :returning(items.id)
  :all())
local ids = {}
for i, row in ipairs(inserted) do ids[i] = row.id end

local rows = check(db:select(items.id, items.name, items.price, items.tags, items.created_at)
  :from(items):where(items.id:in_(ids)):order_by(items.id:asc()):all())

print(string.format("read %d rows back:", #rows))
for _, row in ipairs(rows) do
  local tags = {}
  if type(row.tags) == "table" then
    for k, v in pairs(row.tags) do
      tags[#tags + 1] = type(k) == "number" and tostring(v) or (k .. "=" .. tostring(v))
    end
    table.sort(tags)
  end
  print(string.format("  #%d %-12s %6s  tags: %s  created %s", row.id, row.name, row.price,
    table.concat(tags, ","), row.created_at))
end

local stats = db:stats()
if stats.credential_expires_at and stats.credential_expires_at > 0 then
  print(string.format("credential valid until %s (%d s from now); %d refresh(es)",
    os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(stats.credential_expires_at)),
    math.floor(stats.credential_expires_at - os.time()), stats.credential_refreshes))
else
  print("native Postgres password in use (no Lakebase credential)")
end
print(string.format("pool: %d open, %d idle, %d max", stats.total, stats.idle, stats.max))
db:close()
