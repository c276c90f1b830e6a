/* Lua binding of the settings: lb_bind_check_settings (reads an options table for every binding
 * that takes one), core.config(opts) → validated settings table (secrets redacted) or nil, err,
 * and core.options (the settings table of lb_config.c). */
#include "bind.h"
#include "bind_number.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Registry key of the metatable of settings tables. */
static const char settings_mt_key = 0;

static int ignored(const char *name, const char *const *ignore)
{
    if (!ignore)
        return 0;
    for (; *ignore; ignore++)
        if (strcmp(*ignore, name) == 0)
            return 1;
    return 0;
}

/* Options collected from a table: lb_option entries plus the text buffers they point to. Values
 * that are Lua strings point into the table (alive while it is on the stack). */
typedef struct collected {
    lb_option *opts;
    char **owned; /* one per option, NULL when the value is borrowed */
    size_t n, cap;
} collected;

static void collected_free(collected *c)
{
    size_t i;

    for (i = 0; i < c->n; i++) {
        if (c->owned[i]) {
            explicit_bzero(c->owned[i], strlen(c->owned[i]));
            free(c->owned[i]);
        }
    }
    free(c->opts);
    free(c->owned);
}

static int collected_add(collected *c, const char *name, const char *value, const char *bad_type,
                         char *owned)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 32;
        lb_option *o = realloc(c->opts, cap * sizeof *o);
        char **w;
        if (!o)
            return -1;
        c->opts = o;
        if (!(w = realloc(c->owned, cap * sizeof *w)))
            return -1;
        c->owned = w;
        c->cap = cap;
    }
    c->opts[c->n].name = name;
    c->opts[c->n].value = value;
    c->opts[c->n].bad_type = bad_type;
    c->owned[c->n] = owned;
    c->n++;
    return 0;
}

static char *dup_text(const char *s)
{
    char *d = strdup(s);
    return d;
}

lb_settings *lb_bind_check_settings(lua_State *L, int idx, const char *const *ignore, lb_error *err)
{
    collected c = {0};
    lb_settings *s;
    int bad_keys = 0, oom = 0;
    const char *bad_key_type = NULL;

    if (idx < 0 && idx > LUA_REGISTRYINDEX)
        idx = lua_gettop(L) + idx + 1;
    if (lua_isnoneornil(L, idx)) {
        return lb_settings_load(NULL, 0, err);
    }
    if (lua_type(L, idx) != LUA_TTABLE) {
        lb_error_set(err, LB_ERR_CONFIG, 0, "options: expected a table, got %s",
                     luaL_typename(L, idx));
        return NULL;
    }
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        /* Key at -2, value at -1. Never convert the key in place: lua_next needs it intact. */
        const char *name, *value = NULL, *bad_type = NULL;
        char *owned = NULL;

        if (lua_type(L, -2) != LUA_TSTRING) {
            bad_keys++;
            bad_key_type = luaL_typename(L, -2);
            lua_pop(L, 1);
            continue;
        }
        name = lua_tostring(L, -2);
        if (ignored(name, ignore)) {
            lua_pop(L, 1);
            continue;
        }
        switch (lua_type(L, -1)) {
        case LUA_TSTRING: {
            size_t len;
            value = lua_tolstring(L, -1, &len);
            if (strlen(value) != len)
                value = NULL, bad_type = "a string containing a NUL byte";
            break;
        }
        case LUA_TNUMBER: {
            char buf[64];
            lb_number_text(L, -1, buf, sizeof buf);
            if (!(owned = dup_text(buf)))
                oom = 1;
            value = owned;
            break;
        }
        case LUA_TBOOLEAN:
            /* Only `prepare`, `keepalives`, `prefetch` and `fallback_to_primary` are booleans;
             * elsewhere a boolean is a type error. */
            if (strcmp(name, "prepare") == 0 || strcmp(name, "keepalives") == 0 ||
                strcmp(name, "prefetch") == 0 || strcmp(name, "fallback_to_primary") == 0)
                value = lua_toboolean(L, -1) ? "true" : "false";
            else
                bad_type = "boolean";
            break;
        default:
            bad_type = luaL_typename(L, -1);
            break;
        }
        if (collected_add(&c, name, value, bad_type, owned) != 0) {
            free(owned);
            oom = 1;
        }
        lua_pop(L, 1);
    }
    if (oom) {
        collected_free(&c);
        lb_error_set(err, LB_ERR_CONFIG, 0, "out of memory reading the options");
        return NULL;
    }
    s = lb_settings_load(c.opts, c.n, err);
    collected_free(&c);
    if (bad_keys) {
        /* Prepend to whatever the settings reported, so every problem is still listed at once. */
        char *prev = err->message;
        lb_settings_free(s);
        if (prev) {
            err->message = NULL;
            lb_error_set(err, LB_ERR_CONFIG, 0, "%s\noptions: %d key%s of type %s (option names are strings)",
                         prev, bad_keys, bad_keys == 1 ? "" : "s", bad_key_type);
            free(prev);
        } else {
            lb_error_set(err, LB_ERR_CONFIG, 0,
                         "invalid settings (1 problem):\noptions: %d key%s of type %s (option names are strings)",
                         bad_keys, bad_keys == 1 ? "" : "s", bad_key_type);
        }
        return NULL;
    }
    return s;
}

/* ------------------------------------------------------------------------------------------
 * core.config(opts)
 * ---------------------------------------------------------------------------------------- */

static int settings_tostring(lua_State *L)
{
    /* Rebuilt from the table's (already redacted) fields, so a copied table prints the same.
     * Pieces are pushed and concatenated once (no luaL_Buffer: the stack use is unbalanced). */
    static const char *const fields[] = {
        "host", "port", "database", "user", "sslmode", "sslrootcert", "endpoint", "instance",
        "databricks_host", "auth", "profile", "token", "client_id", "client_secret", "password", "max",
        "process_max_connections", "idle_timeout", "connect_timeout", "acquire_timeout", "max_lifetime", "statement_timeout",
        "application_name", "prepare", "keepalives", "keepalives_idle", "keepalives_interval",
        "keepalives_count", "tcp_user_timeout", "min_idle", "prefetch",
        "read_endpoint", "read_host", "read_port", "fallback_to_primary", NULL};
    int i, n = 1;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_checkstack(L, 4 * (int)(sizeof fields / sizeof fields[0]) + 4, "settings tostring");
    lua_pushliteral(L, "lakebase.settings{");
    for (i = 0; fields[i]; i++) {
        char tmp[96];
        int t;

        lua_getfield(L, 1, fields[i]);
        t = lua_type(L, -1);
        if (t == LUA_TNIL) {
            lua_pop(L, 1);
            continue;
        }
        if (t == LUA_TBOOLEAN) {
            int v = lua_toboolean(L, -1);
            lua_pop(L, 1);
            lua_pushstring(L, v ? "true" : "false");
        } else if (t == LUA_TNUMBER) {
            lb_number_text(L, -1, tmp, sizeof tmp);
            lua_pop(L, 1);
            lua_pushstring(L, tmp);
        } else if (t != LUA_TSTRING) {
            lua_pop(L, 1);
            lua_pushstring(L, lua_typename(L, t));
        }
        lua_pushfstring(L, "%s%s=", n > 1 ? ", " : "", fields[i]);
        lua_insert(L, -2);
        n += 2;
    }
    lua_pushliteral(L, "}");
    lua_concat(L, n + 1);
    return 1;
}

static void set_str(lua_State *L, const char *field, const char *value)
{
    if (value) {
        lua_pushstring(L, value);
        lua_setfield(L, -2, field);
    }
}

static void set_num(lua_State *L, const char *field, double value)
{
    if (value == (double)(long long)value)
        lua_pushinteger(L, (lua_Integer)value);
    else
        lua_pushnumber(L, value);
    lua_setfield(L, -2, field);
}

/* The settings as a Lua table, one field per row of the option table (lb_options): secrets as
 * "(set)", auth_type as the auth method the settings chose ("auth"), unset text left out. */
void lb_bind_push_settings(lua_State *L, const lb_settings *s)
{
    int n, i;
    const lb_option_info *rows = lb_options(&n);

    lua_createtable(L, 0, n + 2);
    for (i = 0; i < n; i++) {
        const lb_option_info *row = &rows[i];
        const char *at = (const char *)s + row->field;
        switch (row->kind) {
        case LB_OPT_NONE:
            set_str(L, "auth", lb_auth_name(s->auth));
            break;
        case LB_OPT_TEXT: {
            const char *v = *(char *const *)(const void *)at;
            if (row->secret)
                v = v ? "(set)" : NULL;
            else if (!v && at == (const char *)&s->application_name)
                v = LB_DEFAULT_APPLICATION_NAME; /* what the server is told when none is set */
            set_str(L, row->name, v);
            break;
        }
        case LB_OPT_INT:
            if (at == (const char *)&s->read_port) { /* a read side only: default the primary's */
                if (s->read_host || s->read_endpoint)
                    set_num(L, row->name, s->read_port ? s->read_port : s->port);
                break;
            }
            set_num(L, row->name, *(const int *)(const void *)at);
            break;
        case LB_OPT_NUMBER:
            set_num(L, row->name, *(const double *)(const void *)at);
            break;
        case LB_OPT_BOOL:
            lua_pushboolean(L, *(const int *)(const void *)at);
            lua_setfield(L, -2, row->name);
            break;
        case LB_OPT_SSLMODE:
            set_str(L, row->name, lb_sslmode_name(*(const lb_sslmode *)(const void *)at));
            break;
        }
    }
    set_str(L, "cap_key", s->cap_key); /* which pools share process_max_connections (no secret) */

    lua_pushlightuserdata(L, (void *)&settings_mt_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, -2);
}

static int l_config(lua_State *L)
{
    lb_error err = LB_ERROR_INIT;
    lb_settings *s;

    if (!lua_isnoneornil(L, 1) && lua_type(L, 1) != LUA_TTABLE)
        return luaL_error(L, "bad argument #1 to 'config' (table expected, got %s)",
                          luaL_typename(L, 1));
    s = lb_bind_check_settings(L, 1, NULL, &err);
    if (!s)
        return lb_bind_fail(L, &err);
    lb_bind_push_settings(L, s);
    lb_settings_free(s);
    return 1;
}

static void set_text(lua_State *L, const char *field, const char *v)
{
    if (!v)
        return;
    lua_pushstring(L, v);
    lua_setfield(L, -2, field);
}

/* core.options: the settings table as a Lua array of { name, env, secret, expect, example, doc }
 * (env and example absent when the setting has none). */
static void push_options(lua_State *L)
{
    int i, n;
    const lb_option_info *info = lb_options(&n);
    lua_createtable(L, n, 0);
    for (i = 0; i < n; i++) {
        lua_createtable(L, 0, 6);
        set_text(L, "name", info[i].name);
        set_text(L, "env", info[i].env);
        lua_pushboolean(L, info[i].secret);
        lua_setfield(L, -2, "secret");
        set_text(L, "expect", info[i].expect);
        set_text(L, "example", info[i].example);
        set_text(L, "doc", info[i].doc);
        lua_rawseti(L, -2, i + 1);
    }
}

void lb_bind_config(lua_State *L)
{
    lua_pushlightuserdata(L, (void *)&settings_mt_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_createtable(L, 0, 2);
        lua_pushcfunction(L, settings_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushliteral(L, "lakebase.settings");
        lua_setfield(L, -2, "__name");
        lua_pushlightuserdata(L, (void *)&settings_mt_key);
        lua_pushvalue(L, -2);
        lua_rawset(L, LUA_REGISTRYINDEX);
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, l_config);
    lua_setfield(L, -2, "config");
    push_options(L);
    lua_setfield(L, -2, "options");
}
