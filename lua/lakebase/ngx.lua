--- lakebase.ngx: the OpenResty bridge.
--
-- libpq and libcurl block, and a blocked nginx worker stalls every request it holds. Inside nginx
-- this module runs every blocking call (queries, scripts, BEGIN/COMMIT, the credential refresh
-- that a connect may trigger) in an nginx thread pool through `ngx.run_worker_thread`, so the
-- event loop keeps serving other requests. Each worker thread has its own Lua state; the pools and
-- the credential cache are the C core's process-wide ones, so every thread shares them.
--
-- How a call runs, by nginx phase:
--   rewrite, server_rewrite, access, content, timer, ssl_cert, ssl_session_fetch, ssl_client_hello:
--     in the thread pool (`opts.thread_pool`, default "lakebase"; nginx.conf needs
--     `thread_pool lakebase threads=16;` at the top level);
--   init_worker: directly, blocking this worker's start-up only (no request is in flight yet);
--   init (the master process), set, header_filter, body_filter, log, balancer, exit_worker, ...:
--     refused with an error that says why (they cannot yield; blocking there stalls requests, and
--     connections opened in the master would be shared by every forked worker). Creating the db
--     in init_by_lua is fine: the pool opens connections lazily, in the workers;
--   `opts.blocking = true`: always directly (the caller accepts blocking the worker).
--
-- Values crossing threads are copied by ngx.run_worker_thread: strings, numbers, booleans, nil,
-- light userdata (so `lakebase.null` stays itself) and tables of these. Metatables do not cross:
-- error objects get `core.error_mt` back here.
--
-- Transactions: one connection is pinned (lb_pin.c) under an integer id that every thread can use.
-- The transaction rules and the tx object are lakebase.db's (dbmod.run_transaction), driving the
-- pin through a small conn adapter whose calls run in the thread pool. The pin is rolled back
-- and returned when the function ends or raises, when the client aborts (via ngx.on_abort where
-- `lua_check_client_abort on`), by the per-worker reaper once idle longer than `opts.lease`
-- seconds (default 60; e.g. the request was ended with ngx.exit inside the transaction) and,
-- last, by the server's idle_in_transaction_session_timeout (set to the lease).
--
-- Connections are rationed per nginx worker on the event loop (ngx.semaphore with the pool's
-- `max` permits, up to `acquire_timeout`): a thread-pool thread never waits inside the C pool for a
-- connection that only a queued call of an open transaction could give back.
-- luacheck: globals ngx (nginx provides it; ngx.run_worker_thread is newer than luacheck's ngx_lua std)
local core = require("lakebase.core")
local dbmod = require("lakebase.db")
local lblog = require("lakebase.log")
local json = require("lakebase.json")
local metrics = require("lakebase.metrics")

local _M = { _VERSION = core._VERSION }

local DEFAULT_POOL = "lakebase"
local DEFAULT_LEASE = 60
local REAP_INTERVAL = 1 -- seconds between reaper runs in each worker (a mutex and a list walk)
local MODULE = "lakebase.ngx" -- what the worker-thread Lua states require

-- Options read by this module; removed before the settings reach the C core.
local OWN_OPTIONS = { thread_pool = true, lease = true, blocking = true }

local YIELDABLE = {
  rewrite = true, server_rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true,
}
local DIRECT = { init_worker = true }
local ABORTABLE = { rewrite = true, access = true, content = true } -- where ngx.on_abort works


local function pack(...)
  return { n = select("#", ...), ... }
end
local unpack = table.unpack or unpack

local function log(level, ...)
  if ngx and ngx.log then
    ngx.log(ngx[level], "lakebase: ", ...)
  end
end

local make_error = dbmod.make_error

-- An error table copied from another Lua state lost its metatable.
local function restore_error(err)
  if type(err) == "table" and getmetatable(err) == nil and err.kind and err.message then
    setmetatable(err, core.error_mt)
  end
  return err
end

---------------------------------------------------------------------------------------------
-- Worker-thread side. These functions run in whichever Lua state executes them: a thread-pool
-- state (no `ngx` there), or the nginx Lua state itself for direct/blocking calls. They take and
-- return only copyable values; a raised error comes back as `false, message`.
---------------------------------------------------------------------------------------------

-- Per Lua state: settings key -> plain (blocking) db. The C pool behind it is process-wide; the
-- cache only saves re-reading settings on every call.
local thread_dbs = {}

local function opts_key(opts)
  local keys = {}
  for k in pairs(opts) do
    keys[#keys + 1] = k
  end
  table.sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do
    parts[i] = k .. "=" .. type(opts[k]) .. ":" .. tostring(opts[k])
  end
  return table.concat(parts, "\0")
end

local function thread_db(opts)
  local key = opts_key(opts)
  local db = thread_dbs[key]
  if db then
    return db
  end
  local err
  db, err = _M.plain_new(opts)
  if not db then
    return nil, err
  end
  thread_dbs[key] = db
  return db
end

local function protect(fn, ...)
  local res = pack(pcall(fn, ...))
  if not res[1] then
    return false, tostring(res[2])
  end
  return true, unpack(res, 2, res.n)
end

local function do_query(opts, sql, params, qopts)
  local db, err = thread_db(opts)
  if not db then
    return nil, err
  end
  return db:query_params(sql, params, qopts)
end

local function do_pipeline(opts, stmts)
  local db, err = thread_db(opts)
  if not db then
    return nil, err
  end
  return db._pool:pipeline(stmts)
end

local function do_exec_script(opts, sql)
  local db, err = thread_db(opts)
  if not db then
    return nil, err
  end
  return db:exec_script(sql)
end

local IDLE_SQL = "select set_config('idle_in_transaction_session_timeout', '%d', true)"

local function do_begin(opts, lease, begin_sql)
  local id, err = core.pin_new(opts, lease)
  if not id then
    return nil, err
  end
  -- Both travel with the first statement (no round trip here). Last backstop: the server ends a
  -- session left idle in this transaction past the lease.
  local ok
  ok, err = core.pin_defer(id, begin_sql)
  if ok then
    ok, err = core.pin_defer(id, IDLE_SQL:format(math.floor(lease * 1000)))
  end
  if not ok then
    core.pin_release(id)
    return nil, err
  end
  return id
end

local function do_pin_query(id, sql, params)
  return core.pin_query(id, sql, params)
end

local function do_pin_script(id, sql, control)
  return core.pin_exec_script(id, sql, control)
end

local function do_pin_defer(id, sql)
  return core.pin_defer(id, sql)
end

local function do_pin_pipeline(id, stmts)
  return core.pin_pipeline(id, stmts)
end

-- The pinned connection's transaction status in lakebase.db's words ("failed" once a statement
-- in it failed): what the shared transaction rules ask before COMMIT.
local function do_pin_status(id)
  local status, err = core.pin_status(id)
  if status == "inerror" then
    return "failed"
  end
  return status, err
end

local function do_release(id)
  core.pin_release(id)
  return true
end

function _M.t_query(...) return protect(do_query, ...) end
function _M.t_exec_script(...) return protect(do_exec_script, ...) end
function _M.t_begin(...) return protect(do_begin, ...) end
function _M.t_pin_query(...) return protect(do_pin_query, ...) end
function _M.t_pin_script(...) return protect(do_pin_script, ...) end
function _M.t_pin_defer(...) return protect(do_pin_defer, ...) end
function _M.t_pipeline(...) return protect(do_pipeline, ...) end
function _M.t_pin_pipeline(...) return protect(do_pin_pipeline, ...) end
function _M.t_pin_status(...) return protect(do_pin_status, ...) end
function _M.t_release(...) return protect(do_release, ...) end
function _M.t_reap() return protect(core.pin_reap) end

---------------------------------------------------------------------------------------------
-- Calling side.
---------------------------------------------------------------------------------------------

local function phase()
  if ngx and ngx.get_phase then
    return ngx.get_phase()
  end
  return nil
end

local NO_VM = "no available Lua vm"

-- Every Lua state of the worker-thread pool is busy (at most lua_worker_thread_vm_pool_size, 100 by
-- default, calls in flight per nginx worker): wait like a pool checkout would, up to
-- acquire_timeout, instead of failing the request at once.
local function wait_for_vm(self, fname, ...)
  local deadline = ngx.now() + self.acquire_timeout
  local delay = 0.001
  local res
  repeat
    ngx.sleep(delay)
    delay = math.min(delay * 2, 0.05)
    res = pack(ngx.run_worker_thread(self.thread_pool, MODULE, fname, ...))
    if res[1] or res[2] ~= NO_VM then
      return res
    end
    ngx.update_time()
  until ngx.now() >= deadline
  return { n = 2, false, "every Lua state of the worker-thread pool stayed busy for "
    .. self.acquire_timeout .. " s (raise lua_worker_thread_vm_pool_size)" }
end

---------------------------------------------------------------------------------------------
-- Connection gate, per nginx worker and pool: at most `max` thread calls hold or wait for a
-- connection at once. Without it, thread-pool threads block in the C pool's checkout waiting for
-- a connection that only a queued call (an open transaction's next statement or COMMIT) could
-- free, and everything stalls for acquire_timeout. Waiting happens here instead, on the event
-- loop (ngx.semaphore), up to acquire_timeout. A transaction keeps its permit until it ends.
-- With process_max_connections, a call also takes a permit of its cap, shared by this worker's
-- pools of the same settings (the primary and its reader...): the C pool's cap, waited for here.
---------------------------------------------------------------------------------------------

local gates = {} -- settings key -> { sem, max, open = { [pin id] = true }, cap }; this worker's pools
local caps = {} -- cap_key -> { sem, max }: process_max_connections across this worker's pools

local function gate_for(settings, db)
  local key = opts_key(settings)
  local gate = gates[key]
  if gate then
    return gate
  end
  local ok, semaphore = pcall(require, "ngx.semaphore")
  local stats = db:stats()
  local max = type(stats) == "table" and tonumber(stats.max)
  if not ok or not max or max < 1 then
    return nil -- no lua-resty-core: the C pool's own wait applies (in a thread)
  end
  gate = { sem = semaphore.new(max), max = max, open = {} }
  local s = db._pool:settings()
  local cap = tonumber(s.process_max_connections)
  if cap and cap > 0 and s.cap_key then
    caps[s.cap_key] = caps[s.cap_key] or { sem = semaphore.new(cap), max = cap }
    gate.cap = caps[s.cap_key]
  end
  gates[key] = gate
  return gate
end

-- Gives back n permits of the gate (and of its cap).
local function gate_post(gate, n)
  gate.sem:post(n)
  if gate.cap then
    gate.cap.sem:post(n)
  end
end

local function gate_wait(self)
  local gate = self.gate
  local started = ngx.now()
  local ok, err = gate.sem:wait(self.acquire_timeout)
  local what = "all " .. gate.max .. " in use by this nginx worker"
  if ok and gate.cap then
    ngx.update_time()
    ok, err = gate.cap.sem:wait(math.max(0, self.acquire_timeout - (ngx.now() - started)))
    if not ok then
      gate.sem:post(1)
      what = "process_max_connections = " .. gate.cap.max .. " in use by this nginx worker across the pools "
        .. "of these settings"
    end
  end
  if ok then
    return true
  end
  if err == "timeout" then
    local e = make_error("pool", "no free connection within acquire_timeout (" .. self.acquire_timeout .. "s): "
      .. what)
    e.retriable = true
    return nil, e
  end
  return nil, make_error("pool", "waiting for a connection failed: " .. tostring(err))
end

-- Gives back the permit a transaction held (once, whoever notices first).
local function gate_done(gate, id)
  if gate and gate.open[id] then
    gate.open[id] = nil
    gate_post(gate, 1)
  end
end

local request_state -- below: per-request bookkeeping (pins, permits of calls in flight)

local start_reaper -- defined with the reaper below

-- The per-worker parts (connection gate, reaper timer) start in the worker process on first use:
-- a db created in init_by_lua (the master) is copied into every forked worker before that.
local function worker_state(self, ph)
  if self.worker_ready or not ph or ph == "init" then
    return
  end
  self.worker_ready = true
  if not self.blocking and ngx.run_worker_thread then
    self.gate = gate_for(self.settings, self.db)
  end
  start_reaper(self)
end

-- Runs _M[fname](...) in the thread pool, or directly where the phase calls for it.
-- Returns the function's own results (rows | nil, err); re-raises an error it raised.
-- gated: nil (the call brings its own connection: a pinned statement), "call" (needs a
-- connection for the call), "hold" (t_begin: the permit stays with the new pin).
local function call(self, fname, gated, ...)
  if self.closed then
    error("attempt to use a closed lakebase db", 3)
  end
  local res
  local ph = phase()
  if self.blocking or ph == nil or DIRECT[ph] then
    res = pack(_M[fname](...))
    if lblog.active then lblog.deliver() end -- what the call reported, before anything later
  elseif YIELDABLE[ph] then
    worker_state(self, ph)
    local gate = gated and self.gate
    local inflight
    if gate then
      local ok, err = gate_wait(self)
      if not ok then
        return nil, err
      end
      -- When the client goes away, nginx ends this request's Lua thread while the call still runs
      -- in the pool: the abort handler gives the permit back, or it would be lost for good.
      local state = ABORTABLE[ph] and request_state(self)
      if state then
        inflight = state.inflight
        inflight[gate] = (inflight[gate] or 0) + 1
      end
    end
    res = pack(ngx.run_worker_thread(self.thread_pool, MODULE, fname, ...))
    if not res[1] and res[2] == NO_VM then
      res = wait_for_vm(self, fname, ...)
    end
    if inflight then
      local n = inflight[gate] or 0
      if n > 0 then
        inflight[gate] = n - 1
      else
        gate = nil -- the abort handler already gave this permit back
      end
    end
    if gate then
      if gated == "hold" and res[1] and res[2] and res[3] ~= nil then
        gate.open[res[3]] = true
      else
        gate_post(gate, 1)
      end
    end
    if not res[1] then
      local msg = tostring(res[2])
      if msg:match("^thread[ _]pool.* not found$") then
        -- "thread_pool not found" / "thread pool <name> not found", by module version
        return nil, make_error("config", "nginx thread pool '" .. self.thread_pool
          .. "' not found: add `thread_pool " .. self.thread_pool
          .. " threads=16;` at the top level of nginx.conf (or set opts.thread_pool)")
      elseif msg == "unsupported argument type" then
        return nil, make_error("query", "a parameter cannot be passed to the worker thread"
          .. " (functions, userdata and coroutines cannot cross Lua states)")
      end
      log("ERR", "worker thread call ", fname, " failed: ", msg)
      return nil, make_error("pool", "nginx worker thread call failed: " .. msg)
    end
    res = pack(unpack(res, 2, res.n))
    if lblog.active then lblog.deliver() end -- what the thread's call queued, in this state
  elseif ph == "init" then
    error("lakebase: no queries in init_by_lua (the master process): connections opened there"
      .. " would be shared by every forked worker; query from init_worker_by_lua or later", 3)
  else
    error("lakebase: no queries in the '" .. ph .. "' phase: it cannot yield, and a blocking"
      .. " query there would stall every request of this worker (query from rewrite/access/"
      .. "content or a timer: ngx.timer.at; or pass blocking = true to accept blocking)", 3)
  end
  if not res[1] then
    error(res[2], 3)
  end
  if res[2] == nil then
    return nil, restore_error(res[3])
  end
  return unpack(res, 2, res.n)
end

-- The settings part of the user's options, copyable: only strings, numbers and booleans.
local function settings_of(opts)
  local out = {}
  for k, v in pairs(opts) do
    local t = type(v)
    if type(k) == "string" and not OWN_OPTIONS[k] and (t == "string" or t == "number" or t == "boolean") then
      out[k] = v
    end
  end
  return out
end

---------------------------------------------------------------------------------------------
-- Per-request transaction bookkeeping (ngx.ctx; nothing per request at module level).
---------------------------------------------------------------------------------------------

local CTX_KEY = "__lakebase_pins"

local function release_all(pins, pool_name, gate)
  for id in pairs(pins) do
    pins[id] = nil
    local ok, err = ngx.run_worker_thread(pool_name, MODULE, "t_release", id)
    if ok then
      gate_done(gate, id) -- the pin is gone (or goes when its running statement ends)
    else
      log("WARN", "could not release transaction ", id, " after client abort: ", err)
    end
  end
end

-- This request's state (created once per request, in an abortable phase): its open pins and
-- the gate permits of its calls in flight. Asks nginx to release both when the client goes away
-- (the request's Lua thread then ends without coming back from the thread-pool call).
-- Gives back what the request holds: the permits of its calls in flight, its open transactions.
local function cleanup(state)
  if next(state.pins) then
    local n = 0
    for _ in pairs(state.pins) do n = n + 1 end
    lblog.emit("warn", "transaction_rolled_back", { reason = "client_abort", count = n })
  end
  for g, n in pairs(state.inflight) do
    state.inflight[g] = nil
    if n > 0 then
      gate_post(g, n)
    end
  end
  release_all(state.pins, state.pool_name, state.gate)
end

function request_state(self)
  local ctx = ngx.ctx
  local state = ctx[CTX_KEY]
  if not state then
    state = { pins = {}, inflight = {}, pool_name = self.thread_pool, gate = self.gate }
    ctx[CTX_KEY] = state
    local ok, err = ngx.on_abort(function()
      cleanup(state)
      ngx.exit(499)
    end)
    state.abort_err = not ok and err
  end
  return state
end

--- For an application that registers its own ngx.on_abort handler (nginx allows one per request,
-- so lakebase's cannot be installed after it): call this from that handler before ending the
-- request, to roll back the request's open transactions and give back its connection permits.
function _M.abort_request()
  local state = ngx and ngx.ctx and ngx.ctx[CTX_KEY]
  if state then
    cleanup(state)
  end
end

-- Remembers an open pin for this request, released when the client goes away.
local function track(self, id)
  if self.blocking or not ABORTABLE[phase()] then
    return nil
  end
  local state = request_state(self)
  if state.abort_err and not state.logged then
    -- lua_check_client_abort off, or the application registered its own handler: the lease
    -- reaper reclaims the connection instead.
    state.logged = true
    log("INFO", "no abort handler (", state.abort_err, "): transactions rely on the lease reaper")
  end
  state.pins[id] = true
  return state.pins
end

-- A timer per worker that runs the pin reaper in the thread pool.
local reaper_started = false

function start_reaper(self)
  if reaper_started or not (ngx and ngx.timer and ngx.timer.every) then
    return
  end
  local ph = phase()
  if ph == "init" or ph == nil then
    return
  end
  local interval = REAP_INTERVAL
  local pool_name = self.thread_pool
  local ok, err = ngx.timer.every(interval, function(premature)
    if premature then
      return
    end
    if lblog.active then lblog.deliver() end -- a quiet worker still hears of background refreshes
    if core.pin_count() > 0 then -- a mutex read: no thread call while nothing is pinned
      local tok, ok2, n = ngx.run_worker_thread(pool_name, MODULE, "t_reap")
      if tok and ok2 and n and n > 0 then
        lblog.emit("warn", "transaction_rolled_back", { reason = "lease_expired", count = n })
      elseif not tok then
        log("ERR", "pin reaper: ", ok2)
      end
    end
    -- Permits of transactions whose request never came back (reaped, or released elsewhere).
    for _, gate in pairs(gates) do
      for id in pairs(gate.open) do
        if not core.pin_exists(id) then
          gate_done(gate, id)
        end
      end
    end
  end)
  if ok then
    reaper_started = true
  else
    log("ERR", "cannot start the pin reaper timer: ", err)
  end
end

---------------------------------------------------------------------------------------------
-- db and tx objects
---------------------------------------------------------------------------------------------

local db_methods = {}
local db_mt = { __index = db_methods }

db_mt.__tostring = function(self)
  return "lakebase.ngx(" .. tostring(self.db) .. ")"
end

local function params_of(...)
  return { n = select("#", ...), ... }
end

local function check_sql(sql, level)
  if type(sql) ~= "string" then
    error("bad argument #1 to 'query' (string expected, got " .. type(sql) .. ")", level + 1)
  end
  if sql:find("\0", 1, true) then -- libpq would silently run only the text before it
    error("bad argument #1 to 'query' (SQL text contains a NUL byte)", level + 1)
  end
end

-- A call that needs a connection of this db's pool. A reader with fallback_to_primary runs it on
-- the primary when the read endpoint cannot be reached (lakebase.db's rule, on the event loop).
local function pool_call(self, fname, ...)
  local res = pack(call(self, fname, "call", self.settings, ...))
  local primary = self.fallback
  if res[1] == nil and primary and dbmod.unreachable(res[2]) then
    self.fallbacks = self.fallbacks + 1
    return call(primary, fname, "call", primary.settings, ...)
  end
  return unpack(res, 1, res.n)
end

function db_methods:query_params(sql, params, opts)
  check_sql(sql, 2)
  local qopts = type(opts) == "table" and opts.idempotent and { idempotent = true } or nil
  return pool_call(self, "t_query", sql, params or { n = 0 }, qopts)
end

function db_methods:query(sql, ...)
  check_sql(sql, 2)
  return pool_call(self, "t_query", sql, params_of(...))
end

function db_methods:one(sql, ...)
  check_sql(sql, 2)
  local rows, err = pool_call(self, "t_query", sql, params_of(...))
  if not rows then
    return nil, err
  end
  return rows[1]
end

function db_methods:exec_script(sql)
  check_sql(sql, 2)
  return pool_call(self, "t_exec_script", sql)
end

-- The pipeline's statements run in the thread pool, in one flight; dbmod.run_pipeline is the one
-- implementation of queuing and results (see lakebase.db).
local pipe_target_mt = { __index = {
  pipeline = function(t, stmts)
    return call(t.owner, "t_pipeline", "call", t.owner.settings, stmts)
  end,
} }

function db_methods:pipeline(fn)
  return dbmod.run_pipeline(setmetatable({ owner = self }, pipe_target_mt), fn)
end

function db_methods:stats()
  local s = self.db:stats()
  if type(s) == "table" then
    s.pinned = core.pin_count()
    if self.fallback then
      s.fallbacks = self.fallbacks
    end
  end
  return s
end

--- The reader (lakebase.db's db:reader()): a db of this module bound to the read endpoint, its
-- calls in the thread pool like this one's (its own pool, gate and credential); this db itself
-- when no read endpoint is set. nil, err when the read settings are refused.
function db_methods:reader()
  if self._reader then
    return self._reader
  end
  local rdb, err = self.db:reader() -- the event loop's handle on the read pool: stats, gate size
  if not rdb then
    return nil, err
  end
  if rdb == self.db then
    self._reader = self
    return self
  end
  local ro, fallback, rerr = dbmod.reader_options(self.db._pool, self.settings)
  if not ro then -- the read host was read once already (cached): only a closed pool gets here
    return nil, rerr
  end
  ro.thread_pool, ro.lease, ro.blocking = self.thread_pool, self.lease, self.blocking
  local r = _M.wrap(rdb, ro)
  r._reader = r
  if fallback then
    r.fallback, r.fallbacks = self, 0
  end
  self._reader = r
  return r
end

--- Lets go of this db (the worker threads' handles on the same pool stay until the process ends).
function db_methods:close()
  self.closed = true
  return self.db:close()
end

-- A pinned connection seen from the event loop: the conn that lakebase.db's transaction rules
-- (dbmod.run_transaction, the tx object, savepoints) drive, each call run in the thread pool.
local pin_conn_methods = {}
local pin_conn_mt = { __index = pin_conn_methods }

function pin_conn_methods:query(sql, ...)
  return call(self.owner, "t_pin_query", nil, self.id, sql, params_of(...))
end

function pin_conn_methods:query_params(sql, params)
  return call(self.owner, "t_pin_query", nil, self.id, sql, params or { n = 0 })
end

function pin_conn_methods:exec_script(sql, control)
  return call(self.owner, "t_pin_script", nil, self.id, sql, control)
end

function pin_conn_methods:pipeline(stmts)
  return call(self.owner, "t_pin_pipeline", nil, self.id, stmts)
end

function pin_conn_methods:defer(sql)
  return call(self.owner, "t_pin_defer", nil, self.id, sql)
end

function pin_conn_methods:status()
  return call(self.owner, "t_pin_status", nil, self.id)
end

--- Runs fn(tx) inside BEGIN ... COMMIT on one pinned connection, with lakebase.db's rules (the
-- same code: dbmod.run_transaction): returns what fn returned; when fn raises, or returns false
-- (optionally followed by a reason), or ignored a failed statement, the transaction is rolled
-- back and this returns nil, err. opts: isolation, read_only.
function db_methods:transaction(fn, opts)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'transaction' (function expected, got " .. type(fn) .. ")", 2)
  end
  local sql = dbmod.begin_sql(opts, 3)
  local id, err = call(self, "t_begin", "hold", self.settings, self.lease, sql)
  if not id then
    if self.fallback and dbmod.unreachable(err) then
      self.fallbacks = self.fallbacks + 1
      return self.fallback:transaction(fn, opts)
    end
    return nil, err
  end
  local pins = track(self, id)
  local conn = setmetatable({ owner = self, id = id }, pin_conn_mt)
  local out = pack(dbmod.run_transaction(conn, self, fn))
  call(self, "t_release", nil, id) -- rolls back whatever COMMIT/ROLLBACK could not finish
  if pins then
    pins[id] = nil
  end
  gate_done(self.gate, id)
  return unpack(out, 1, out.n)
end

-- The builder's select/insert/update/delete go through query_params, hence through the pool.
-- Installed on first wrap, not at load: the worker-thread states load this module on the event
-- loop (ngx.run_worker_thread requires it there) and never need the builder on these objects.
local builder_installed = false

local function install_builder()
  if builder_installed then
    return
  end
  builder_installed = true
  dbmod.install_builder() -- the tx objects are lakebase.db's
  local ok, builder = pcall(require, "lakebase.builder")
  if ok and type(builder) == "table" and builder.install then
    builder.install(db_methods)
  end
end

---------------------------------------------------------------------------------------------
-- Constructors
---------------------------------------------------------------------------------------------

--- A plain (blocking) db for these options, never wrapped: what the worker threads use.
function _M.plain_new(opts)
  local o = {}
  for k, v in pairs(opts or {}) do
    o[k] = v
  end
  o.blocking = true
  o.thread_pool, o.lease = nil, nil
  dbmod.install_builder()
  return dbmod.new(o)
end

--- Wraps an existing plain db (from lakebase.new) so its calls go through the thread pool.
function _M.wrap(db, opts)
  opts = opts or {}
  if opts.thread_pool ~= nil and type(opts.thread_pool) ~= "string" then
    error("bad argument #2 to 'wrap' (thread_pool: string expected)", 2)
  end
  if opts.lease ~= nil and (type(opts.lease) ~= "number" or opts.lease <= 0) then
    error("bad argument #2 to 'wrap' (lease: positive number of seconds expected)", 2)
  end
  local self = setmetatable({
    db = db,
    settings = settings_of(opts),
    thread_pool = opts.thread_pool or DEFAULT_POOL,
    lease = opts.lease or DEFAULT_LEASE,
    blocking = opts.blocking and true or false,
    acquire_timeout = tonumber(opts.acquire_timeout) or 10,
  }, db_mt)
  install_builder()
  worker_state(self, phase())
  return self
end

--- lakebase.new for nginx: a db whose queries never block the event loop. Outside nginx (no
-- ngx.run_worker_thread) it is plain lakebase.new.
-- nginx clears its workers' environment: a setting reported missing although it is set in the
-- shell almost always lacks its `env NAME;` line. Names the lines to add (in a hint).
local function explain_cleared_env(err)
  if type(err) ~= "table" or err.kind ~= "config" or type(err.message) ~= "string" then return err end
  local names, seen = {}, {}
  local function want(name)
    if not seen[name] and os.getenv(name) == nil then
      seen[name] = true
      names[#names + 1] = "env " .. name .. ";"
    end
  end
  for line in err.message:gmatch("[^\n]+") do
    local name = line:match("^([%u_]+) %([%w_]+%): required")
    if name then want(name) end
    if line:match("^Set DATABRICKS_TOKEN or both") then
      for _, n in ipairs({ "DATABRICKS_TOKEN", "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET" }) do want(n) end
    end
  end
  if #names == 0 then return err end
  err.hint = "inside nginx: nginx clears its workers' environment, so a variable set in the shell or "
    .. "the service manager reaches lakebase only through an `env` line in nginx.conf (main context, "
    .. "outside http): " .. table.concat(names, " ")
  return err
end

function _M.new(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #1 to 'new' (table expected, got " .. type(opts) .. ")", 2)
  end
  opts = opts or {}
  local db, err = _M.plain_new(opts)
  if not db then
    if ngx and ngx.config and ngx.config.nginx_version then err = explain_cleared_env(err) end
    return nil, err
  end
  if not (ngx and ngx.run_worker_thread) then
    return db
  end
  lblog.init_nginx() -- the default logger here is ngx.log
  if phase() == "init_worker" then -- warm start (min_idle, prefetch) before any request
    local ok
    ok, err = db._pool:warm()
    if not ok then
      log("WARN", "warm start failed (connections will open on first use): ", tostring(err))
    end
  end
  return _M.wrap(db, opts)
end

--- Open pins in this process (transactions in progress): for health/metrics routes.
function _M.pin_count()
  return core.pin_count()
end

---------------------------------------------------------------------------------------------
-- Metrics of every worker. Each worker is a process with its own pools and counters: it
-- publishes its series sets (core.metrics, as JSON) into a lua_shared_dict under its worker id,
-- every `interval` seconds and before it serves /metrics itself; /metrics renders every worker's
-- sets with a `worker` label. Labelled rather than summed: each series is one process's counter,
-- so it only grows (a worker that restarts is a counter reset Prometheus handles per series, not
-- a dip in a merged total), the hot path never touches the shared dict, and PromQL sums them
-- (`sum without (worker) (...)`). Another worker's figures are at most `interval` seconds old.
---------------------------------------------------------------------------------------------

local function metrics_dict(dict_name)
  local dict = ngx and ngx.shared and ngx.shared[dict_name]
  if not dict then
    return nil, make_error("config", "no lua_shared_dict '" .. tostring(dict_name)
      .. "': add `lua_shared_dict " .. tostring(dict_name) .. " 1m;` at the http level of nginx.conf")
  end
  return dict
end

--- Publishes this worker's series sets into the shared dict: true | nil, err.
function _M.publish_metrics(dict_name)
  local dict, err = metrics_dict(dict_name)
  if not dict then return nil, err end
  local ok, serr = dict:set("worker:" .. ngx.worker.id(), json.encode(core.metrics()))
  if not ok then
    return nil, make_error("config", "lua_shared_dict '" .. dict_name .. "': " .. tostring(serr))
  end
  return true
end

--- From init_worker: publish every `interval` seconds (default 1). true | nil, err.
function _M.start_metrics(dict_name, interval)
  local dict, err = metrics_dict(dict_name)
  if not dict then return nil, err end
  local ok, terr = ngx.timer.every(interval or 1, function(premature)
    if not premature then _M.publish_metrics(dict_name) end
  end)
  if not ok then return nil, make_error("config", "cannot start the metrics timer: " .. tostring(terr)) end
  return _M.publish_metrics(dict_name)
end

--- The Prometheus text of every worker (each series labelled worker="<id>"): text | nil, err.
function _M.prometheus(dict_name)
  local ok, err = _M.publish_metrics(dict_name)
  if not ok then return nil, err end
  local dict = ngx.shared[dict_name]
  local all = {}
  for id = 0, ngx.worker.count() - 1 do
    local text = dict:get("worker:" .. id)
    local sets = text and json.decode(text)
    for _, set in ipairs(sets or {}) do
      set.labels = { worker = tostring(id) }
      all[#all + 1] = set
    end
  end
  return metrics.prometheus(all, ngx.now())
end

return _M
