--- lakebase.db: the db object (`lakebase.new`) and the transaction object (`db:transaction`).
--
-- Every method is a thin wrapper over one `lakebase.core` call, so other front ends (the
-- OpenResty bridge) can run the same calls elsewhere:
--   db  → core pool handle:  pool:query(sql, ...), pool:query_params(sql, params),
--                            pool:exec_script(sql), pool:begin() → conn, pool:stats(), pool:close()
--   tx  → core conn handle (a pinned connection, bind_pin.c):
--                            conn:query / query_params / exec_script, conn:defer(sql) (sent
--                            with the next statement), conn:exec_script(sql, true) (COMMIT and
--                            the like: the deferred statements go with it), conn:release()
--
-- Transactions: `db:transaction(fn, opts)` runs `fn(tx)` inside BEGIN ... COMMIT on one pinned
-- connection and returns what `fn` returned. When `fn` raises an error, or returns `false`
-- (optionally followed by a reason), the transaction is rolled back and `transaction` returns
-- `nil, err` (the raised value, the reason, or the error of the statement that failed first when
-- fn carried on after it). The OpenResty bridge runs the same rules (run_transaction). A failed COMMIT
-- returns `nil, err` too. `tx:transaction(fn)` nests with a SAVEPOINT: only the inner work is
-- rolled back. The connection always goes back to the pool clean (rolled back if needed), also
-- when the tx object is garbage-collected or closed (`<close>`) without finishing.
local core = require("lakebase.core")
local errors = require("lakebase.errors")
local log = require("lakebase.log")

local _M = {}

local db_methods = {}
local tx_methods = {}
_M.db_methods = db_methods
_M.tx_methods = tx_methods

local db_mt = { __index = db_methods, __name = "lakebase.db" }
local tx_mt = { __index = tx_methods, __name = "lakebase.tx" }
_M.db_mt = db_mt
_M.tx_mt = tx_mt

local unpack = table.unpack or unpack

local function pack(...)
  return { n = select("#", ...), ... }
end

local make_error = errors.new
_M.make_error = make_error

-- What the core queued during a call (events for the logger and hooks) is delivered when it
-- returns; `log.active` is false while no logger or hook is set, so the query path pays one test.
local function delivered(...)
  log.deliver()
  return ...
end

local function check_sql(sql, fname)
  if type(sql) ~= "string" then
    error("bad argument #1 to '" .. fname .. "' (string expected, got " .. type(sql) .. ")", 3)
  end
  if sql:find("\0", 1, true) then -- libpq would silently run only the text before it
    error("bad argument #1 to '" .. fname .. "' (SQL text contains a NUL byte)", 3)
  end
end

local function check_params(params, fname)
  if params ~= nil and type(params) ~= "table" then
    error("bad argument #2 to '" .. fname .. "' (table expected, got " .. type(params) .. ")", 3)
  end
end

---------------------------------------------------------------------------------------------
-- db
---------------------------------------------------------------------------------------------

--- Wraps a core pool handle. `opts` is kept for `tostring` only through the handle.
function _M.wrap(pool)
  return setmetatable({ _pool = pool }, db_mt)
end

--- Creates (or joins, for identical settings) the process-wide pool. Returns db or nil, err.
function _M.new(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #1 to 'new' (table expected, got " .. type(opts) .. ")", 2)
  end
  local pool, err = core.pool_new(opts)
  if not pool then
    return nil, err
  end
  -- Warm start (min_idle, prefetch): here, unless inside nginx's event loop, where lakebase.ngx
  -- warms in init_worker (never in the master, whose connections every worker would share).
  local ngx = rawget(_G, "ngx")
  if not (ngx and ngx.get_phase) then
    local ok
    ok, err = pool:warm()
    if not ok then
      pool:close()
      return nil, err
    end
  end
  local db = _M.wrap(pool)
  if opts then -- db:reader() builds its settings from these (a copy: later edits do not leak in)
    local copy = {}
    for k, v in pairs(opts) do copy[k] = v end
    db._opts = copy
  end
  return db
end

local function pool_of(self)
  local pool = self._pool
  if pool:closed() then
    error("attempt to use a closed lakebase db", 3)
  end
  return pool
end

--- Rows (array of tables keyed by column name, `affected_rows` when reported) or nil, err.
-- Every argument after `sql` is a parameter ($1, $2, ...); nil arguments are SQL NULL.
function db_methods:query(sql, ...)
  check_sql(sql, "query")
  if log.active then return delivered(pool_of(self):query(sql, ...)) end
  return pool_of(self):query(sql, ...)
end

--- The first row, or nil when there is none; nil, err on failure.
function db_methods:one(sql, ...)
  check_sql(sql, "one")
  local rows, err = pool_of(self):query(sql, ...)
  if log.active then log.deliver() end
  if not rows then
    return nil, err
  end
  return rows[1]
end

local function check_opts(opts, fname)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #3 to '" .. fname .. "' (table expected, got " .. type(opts) .. ")", 3)
  end
end

--- Like query, with the parameters in an array (`params.n` counts trailing NULLs).
-- `opts.idempotent = true`: the statement may run twice without harm, so it is retried also when
-- the connection died after it was sent (otherwise that fails, retriable, "may or may not have run").
function db_methods:query_params(sql, params, opts)
  check_sql(sql, "query_params")
  check_params(params, "query_params")
  check_opts(opts, "query_params")
  if log.active then return delivered(pool_of(self):query_params(sql, params, opts)) end
  return pool_of(self):query_params(sql, params, opts)
end

--- Several statements, no parameters (simple protocol): true or nil, err.
function db_methods:exec_script(sql)
  check_sql(sql, "exec_script")
  return delivered(pool_of(self):exec_script(sql))
end

--- The pool's counters; `reader` holds the read side's once db:reader() made one.
function db_methods:stats()
  log.deliver()
  local st = pool_of(self):stats()
  local r = self._reader
  if r and r ~= self and not r._pool:closed() then
    st.reader = r._pool:stats()
  end
  return st
end

--- This db's series set of lakebase.metrics (the counters and histograms of its endpoint,
-- host, port and database, shared with other pools of those; gauges summed over them), with
-- `credential` = its credential's set (nil with password auth). A reader's: reader:metrics().
function _M.metrics_of(settings)
  local own, cred
  for _, set in ipairs(core.metrics()) do
    if set.kind == "pool" and set.host == settings.host and set.port == settings.port
      and set.database == settings.database and set.endpoint == (settings.endpoint or "") then
      own = set
    elseif set.kind == "credential" and settings.endpoint and set.endpoint == settings.endpoint then
      cred = set
    end
  end
  if own then own.credential = cred end
  return own
end

function db_methods:metrics()
  log.deliver()
  return _M.metrics_of(pool_of(self):settings())
end

---------------------------------------------------------------------------------------------
-- The read side
---------------------------------------------------------------------------------------------

-- With fallback_to_primary, the reader's pool handle is this proxy: every call goes to the
-- read endpoint, and runs on the primary instead when the read side cannot be reached (no
-- connection, no credential). A statement the read endpoint refused (25006 for a write, ...)
-- is not retried anywhere: its error is the caller's.
local fallback_methods = {}
local fallback_mt = { __index = fallback_methods, __name = "lakebase.pool" }

--- True for an error that says the server could not be reached (no connection, no credential).
function _M.unreachable(err)
  return type(err) == "table" and (err.kind == "connect" or err.kind == "credential")
end

local function fallback_call(self, name, ...)
  local res = pack(self.reader[name](self.reader, ...))
  if res[1] == nil and _M.unreachable(res[2]) then
    self.fallbacks = self.fallbacks + 1
    return self.primary[name](self.primary, ...)
  end
  return unpack(res, 1, res.n)
end

for _, name in ipairs({ "query", "query_params", "exec_script", "begin" }) do
  fallback_methods[name] = function(self, ...) return fallback_call(self, name, ...) end
end

function fallback_methods:stats()
  local st = self.reader:stats()
  st.fallbacks = self.fallbacks
  return st
end

function fallback_methods:settings() return self.reader:settings() end
function fallback_methods:closed() return self.reader:closed() or self.primary:closed() end
function fallback_methods:close() return self.reader:close() end
function fallback_methods:sweep() return self.reader:sweep() end
fallback_mt.__tostring = function(self) return tostring(self.reader) end

--- The options of the read side of `pool` (the primary's handle, made from `opts`): the same
-- options with the read endpoint's host, port and endpoint; nil when no read endpoint is set;
-- nil, nil, err when its host cannot be read. Also returns whether fallback_to_primary is on.
function _M.reader_options(pool, opts)
  local s = pool:settings()
  if not s.read_host and not s.read_endpoint then
    return nil
  end
  local ro = {}
  for k, v in pairs(opts or {}) do ro[k] = v end
  ro.port = s.read_port
  -- Credentials are per endpoint: the read endpoint's own one when it is named.
  if s.read_endpoint then
    ro.endpoint, ro.instance = s.read_endpoint, nil
  end
  if s.read_host then
    ro.host = s.read_host
  else
    -- Like the primary's: read from the endpoint, once per process (the read pool's credential
    -- entry keeps the answer, so the pool made from these options finds it there).
    local d, err = core.discover(ro)
    if not d then
      return nil, nil, err
    end
    ro.host = d.host
  end
  return ro, s.fallback_to_primary
end

--- The read-side pool handle of `pool`, or nil when no read endpoint is set; nil, err when its
-- settings are refused or its host cannot be read. With fallback_to_primary, a proxy that falls back to `pool`.
function _M.reader_pool(pool, opts)
  local ro, fallback, derr = _M.reader_options(pool, opts)
  if not ro then
    return nil, derr
  end
  local rpool, err = core.pool_new(ro)
  if not rpool then
    return nil, err
  end
  if fallback then
    return setmetatable({ reader = rpool, primary = pool, fallbacks = 0 }, fallback_mt)
  end
  return rpool
end

--- A db for reads with the same API: bound to the read-only endpoint (`read_host`,
-- `read_endpoint`; its own pool and credential) when one is set, otherwise this db itself, so
-- code written for replicas runs unchanged on one compute. Writes through it fail with the
-- server's read-only error (SQLSTATE 25006). Made once; nil, err when its settings are refused.
function db_methods:reader()
  if self._reader then
    return self._reader
  end
  local rpool, err = _M.reader_pool(pool_of(self), self._opts)
  if err then
    return nil, err
  end
  if not rpool then
    self._reader = self
    return self
  end
  local r = _M.wrap(rpool)
  r._reader = r
  self._reader = r
  return r
end

--- Runs fn(conn) on one connection of the pool, outside any transaction, and gives it back
-- afterwards (rolled back if fn left a transaction open): for session-level work, such as the
-- advisory lock lakebase.migrate holds on one connection while others run the migrations.
-- conn has query, query_params and exec_script. Returns what fn returned; re-raises its error.
function db_methods:with_connection(fn)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'with_connection' (function expected, got " .. type(fn) .. ")", 2)
  end
  local conn, err = pool_of(self):begin()
  if not conn then
    return nil, err
  end
  local res = pack(pcall(fn, conn))
  conn:release()
  if not res[1] then
    error(res[2], 0)
  end
  return unpack(res, 2, res.n)
end

--- Lets go of this db's share of the pool (connections close when no db uses it any more).
function db_methods:close()
  local r = self._reader
  if r and r ~= self then
    r._pool:close()
  end
  self._pool:close()
  return true
end

db_mt.__tostring = function(self)
  return (tostring(self._pool):gsub("^lakebase%.pool", "lakebase.db"))
end

---------------------------------------------------------------------------------------------
-- Transactions
---------------------------------------------------------------------------------------------

local ISOLATION = {
  ["read committed"] = "READ COMMITTED",
  ["repeatable read"] = "REPEATABLE READ",
  ["serializable"] = "SERIALIZABLE",
  ["read uncommitted"] = "READ UNCOMMITTED",
}

--- The BEGIN statement for opts (isolation, read_only); raises on a bad option.
function _M.begin_sql(opts, level)
  local sql = "BEGIN"
  if opts == nil then
    return sql
  end
  if type(opts) ~= "table" then
    error("bad argument #2 to 'transaction' (table expected, got " .. type(opts) .. ")", level)
  end
  if opts.isolation ~= nil then
    local iso = type(opts.isolation) == "string"
      and ISOLATION[opts.isolation:lower():gsub("[_-]", " ")]
    if not iso then
      error("bad argument #2 to 'transaction' (isolation must be one of 'read committed', "
        .. "'repeatable read', 'serializable')", level)
    end
    sql = sql .. " ISOLATION LEVEL " .. iso
  end
  if opts.read_only ~= nil then
    sql = sql .. (opts.read_only and " READ ONLY" or " READ WRITE")
  end
  return sql
end

-- The error a failed transaction reports: the statement that failed first (its SQLSTATE, message,
-- detail), naming how many statements failed after it in the aborted transaction.
local function first_failure(tx)
  local err = tx._first_error
  if not err then
    return make_error("query", "transaction rolled back: an earlier statement in it failed")
  end
  if tx._later_errors > 0 and type(err) == "table" and not err.later_errors then
    err.later_errors = tx._later_errors
    err.message = err.message .. " (" .. tx._later_errors .. " later statement"
      .. (tx._later_errors > 1 and "s" or "") .. " in the aborted transaction failed too)"
  end
  return err
end

-- Finishes fn's outcome (a packed pcall result): commit (or release the savepoint) on success,
-- roll back otherwise; returns what `transaction` returns. `release` (savepoints): the RELEASE
-- is deferred, it travels with the next statement (or the COMMIT) instead of a round trip.
local function settle(res, conn, commit_sql, rollback_sql, tx, release)
  -- exec_script(sql, true): our own statement, the deferred ones (BEGIN, RELEASE) go with it
  if res[1] and res[2] ~= false then
    if conn:status() == "failed" then
      -- A statement failed and fn went on: COMMIT would quietly roll back; say so instead.
      conn:exec_script(rollback_sql, true)
      return nil, first_failure(tx)
    end
    local ok, err
    if release then
      ok, err = conn:defer(commit_sql)
    else
      ok, err = conn:exec_script(commit_sql, true)
    end
    if not ok then
      conn:exec_script(rollback_sql, true)
      return nil, err
    end
    return unpack(res, 2, res.n)
  end
  conn:exec_script(rollback_sql, true)
  if not res[1] then
    return nil, res[2]
  end
  return nil, res[3] or make_error("query", "transaction rolled back: the function returned false")
end

local function new_tx(conn, db, depth)
  return setmetatable({ _conn = conn, _db = db, _depth = depth or 0, _done = false,
    _later_errors = 0 }, tx_mt)
end

--- Runs fn(tx) on `conn`, already inside BEGIN, and commits or rolls back by the outcome rules;
-- returns what `transaction` returns. The caller releases conn. Any front end (the blocking db,
-- the OpenResty bridge) brings a conn with query / query_params / exec_script / status
-- ("failed" once a statement failed), so every path keeps one set of transaction rules.
-- `reopen(old)` (optional): a fresh connection with the BEGIN deferred, or nil, err; the first
-- statement uses it when it finds the connection dead (see `call`).
function _M.run_transaction(conn, db, fn, reopen)
  local tx = new_tx(conn, db)
  tx._reopen = reopen
  local res = pack(pcall(fn, tx))
  tx._done = true
  local out = pack(settle(res, tx._conn, "COMMIT", "ROLLBACK", tx))
  if tx._conn ~= conn then
    tx._conn:release()
  end
  return unpack(out, 1, out.n)
end

-- What a transaction holds when no fresh connection could replace a dead one: every call returns
-- why, and the transaction reports it.
local function dead_conn(err)
  local function fail() return nil, err end
  return { query = fail, query_params = fail, exec_script = fail, pipeline = fail, defer = fail,
    status = function() return "failed" end, release = function() end }
end

local function open_tx(pool, begin)
  local conn, err = pool:begin()
  if not conn then
    return nil, err
  end
  -- BEGIN travels with the first statement (a transaction of k statements: k + 1 round trips).
  local ok
  ok, err = conn:defer(begin)
  if not ok then
    conn:release()
    return nil, err
  end
  return conn
end

--- Runs fn(tx) in a transaction; see the module comment for the outcome rules.
function db_methods:transaction(fn, opts)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'transaction' (function expected, got " .. type(fn) .. ")", 2)
  end
  local begin = _M.begin_sql(opts, 3)
  local pool = pool_of(self)
  local conn, err = open_tx(pool, begin)
  if not conn then
    return nil, err
  end
  local out = pack(_M.run_transaction(conn, self, fn, function(old)
    old:release() -- broken: the pool discards it, which frees its slot for the fresh one
    local fresh, ferr = open_tx(pool, begin)
    return fresh or dead_conn(ferr)
  end))
  conn:release() -- rolls back anyway if COMMIT/ROLLBACK could not run
  log.deliver()
  return unpack(out, 1, out.n)
end

---------------------------------------------------------------------------------------------
-- tx
---------------------------------------------------------------------------------------------

local function conn_of(self)
  if self._done then
    error("attempt to use a finished lakebase transaction", 3)
  end
  return self._conn
end

-- Remembers the failure that aborted the transaction (the first statement the server refused),
-- which is what a failed transaction reports at the end, and counts the ones after it.
local function note(self, res, err)
  if res == nil and err ~= nil then
    if self._first_error then
      self._later_errors = self._later_errors + 1
    elseif self._conn:status() == "failed" then
      self._first_error = err
    end
  end
  return res, err
end

-- One statement on the transaction's connection. The first one carries the BEGIN: when it finds
-- the connection dead (it died unseen while idle in the pool), the server holds nothing of this
-- transaction, so the statement runs again on a fresh connection, once.
local function call(self, conn, method, ...)
  local res, err = conn[method](conn, ...)
  local reopen = self._reopen
  self._reopen = nil
  if res == nil and reopen and type(err) == "table" and err.kind == "connect" then
    local fresh = reopen(conn)
    self._conn = fresh
    res, err = fresh[method](fresh, ...)
  end
  if log.active then log.deliver() end
  return note(self, res, err)
end

function tx_methods:query(sql, ...)
  check_sql(sql, "query")
  return call(self, conn_of(self), "query", sql, ...)
end

function tx_methods:one(sql, ...)
  check_sql(sql, "one")
  local rows, err = call(self, conn_of(self), "query", sql, ...)
  if not rows then
    return nil, err
  end
  return rows[1]
end

-- opts as for db:query_params; inside a transaction nothing is retried.
function tx_methods:query_params(sql, params, opts)
  check_sql(sql, "query_params")
  check_params(params, "query_params")
  check_opts(opts, "query_params")
  return call(self, conn_of(self), "query_params", sql, params)
end

function tx_methods:exec_script(sql)
  check_sql(sql, "exec_script")
  return call(self, conn_of(self), "exec_script", sql)
end

--- Nested transaction: a SAVEPOINT; rolled back to it on error or `false`.
function tx_methods:transaction(fn, opts)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'transaction' (function expected, got " .. type(fn) .. ")", 2)
  end
  if opts ~= nil then
    error("bad argument #2 to 'transaction' (a nested transaction (savepoint) takes no options)", 2)
  end
  local conn = conn_of(self)
  self._reopen = nil -- the statements of the savepoint carry the BEGIN now: no swapping under it
  local depth = self._depth + 1
  local name = "lakebase_sp_" .. depth
  local ok, err = conn:defer("SAVEPOINT " .. name) -- sent with the next statement
  if not ok then
    return nil, err
  end
  local inner = new_tx(conn, self._db, depth)
  self._done = true -- the outer tx waits while the inner one runs
  local res = pack(pcall(fn, inner))
  inner._done = true
  self._done = false
  return settle(res, conn, "RELEASE SAVEPOINT " .. name,
    "ROLLBACK TO SAVEPOINT " .. name .. "; RELEASE SAVEPOINT " .. name, inner, true)
end

function tx_methods:stats()
  return self._db:stats()
end

tx_mt.__tostring = function(self)
  return "lakebase.tx (depth " .. self._depth .. (self._done and ", finished" or "") .. ")"
end

---------------------------------------------------------------------------------------------
-- Pipelines
---------------------------------------------------------------------------------------------

-- `db:pipeline(fn)` / `tx:pipeline(fn)`: fn(p) queues statements with p:query, p:query_params
-- and the builder's terminals (p:insert(...):values(...):exec()); when fn returns they travel in
-- one flight and the results come back in order: results[i] is what the i-th call would have
-- returned on its own (results.n counts them). The first failure stops the rest: nil, err with
-- err.statement = its index. Outside a transaction the pipeline is one implicit transaction (all
-- or nothing); inside one it is part of it. A raise in fn sends nothing.
local pipe_methods = {}
local pipe_mt = { __index = pipe_methods, __name = "lakebase.pipeline" }
_M.pipe_methods = pipe_methods

function pipe_methods:_queue(sql, params, shape)
  if not self._pipeline then
    error("attempt to use a finished lakebase pipeline", 3)
  end
  local stmts = self._stmts
  local i = #stmts + 1
  stmts[i] = { sql, params }
  self._shapes[i] = shape
  return i
end

--- Queues sql with every argument after it as a parameter; returns its index in the results.
function pipe_methods:query(sql, ...)
  check_sql(sql, "query")
  return self:_queue(sql, pack(...))
end

function pipe_methods:query_params(sql, params)
  check_sql(sql, "query_params")
  check_params(params, "query_params")
  return self:_queue(sql, params)
end

pipe_mt.__tostring = function(self)
  return "lakebase.pipeline (" .. #self._stmts .. " statements"
    .. (self._pipeline and "" or ", sent") .. ")"
end

--- Runs fn(p) and sends what it queued through `target` (a core pool, conn or adapter with
-- pipeline(stmts)); returns the results or nil, err. Any front end uses this one function.
function _M.run_pipeline(target, fn)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'pipeline' (function expected, got " .. type(fn) .. ")", 3)
  end
  local p = setmetatable({ _pipeline = true, _stmts = {}, _shapes = {} }, pipe_mt)
  local ok, e = pcall(fn, p)
  p._pipeline = false
  if not ok then
    error(e, 0)
  end
  local results, err = target:pipeline(p._stmts)
  log.deliver()
  if not results then
    return nil, err
  end
  local n = #p._stmts
  for i = 1, n do
    local shape = p._shapes[i]
    if shape then
      results[i] = shape(results[i])
    end
  end
  results.n = n
  return results
end

function db_methods:pipeline(fn)
  return _M.run_pipeline(pool_of(self), fn)
end

function tx_methods:pipeline(fn)
  local conn = conn_of(self)
  self._reopen = nil
  return note(self, _M.run_pipeline(conn, fn))
end

---------------------------------------------------------------------------------------------
-- Query builder methods, when that module is there
---------------------------------------------------------------------------------------------

local builder_installed = false

--- Installs the builder's methods (select/insert/update/delete) on db and tx objects once.
function _M.install_builder()
  if builder_installed then
    return
  end
  builder_installed = true
  local ok, builder = pcall(require, "lakebase.builder")
  if ok then
    if type(builder) == "table" and builder.install then
      builder.install(db_methods)
      builder.install(tx_methods)
      builder.install(pipe_methods)
    end
  elseif not tostring(builder):find("module 'lakebase.builder' not found", 1, true) then
    error(builder, 0) -- a broken builder must not pass silently
  end
end

return _M
