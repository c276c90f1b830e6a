/* lb_error → Lua error object: a table with a shared metatable whose __tostring reads
 * "kind: message (SQLSTATE xxxxx)" plus DETAIL/HINT lines. The metatable is also exported as
 * core.error_mt so Lua code can re-attach it to an error table copied from another Lua state. */
#include "bind.h"

#include <string.h>

/* Registry key of the error metatable: the address of this variable. */
static const char error_mt_key = 0;

/* Appends `prefix .. t[field] .. suffix` to b when t[field] is a non-empty string. */
static void add_field(lua_State *L, luaL_Buffer *b, const char *field, const char *prefix,
                      const char *suffix)
{
    lua_getfield(L, 1, field);
    if (lua_type(L, -1) == LUA_TSTRING && lb_rawlen(L, -1) > 0) {
        luaL_addstring(b, prefix);
        luaL_addvalue(b);
        luaL_addstring(b, suffix);
    } else {
        lua_pop(L, 1);
    }
}

/* 1 when the message already starts with the kind as a word ("migration 0001_x.sql failed"):
 * then the kind is not written twice. */
static int message_names_kind(lua_State *L)
{
    size_t klen = 0, mlen = 0;
    const char *kind, *msg;
    int yes;
    lua_getfield(L, 1, "kind");
    lua_getfield(L, 1, "message");
    kind = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &klen) : NULL;
    msg = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &mlen) : NULL;
    yes = kind && msg && klen > 0 && mlen > klen && memcmp(msg, kind, klen) == 0 &&
          (msg[klen] == ' ' || msg[klen] == ':');
    lua_pop(L, 2);
    return yes;
}

static int error_tostring(lua_State *L)
{
    luaL_Buffer b;

    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_buffinit(L, &b);
    if (!message_names_kind(L))
        add_field(L, &b, "kind", "", ": ");
    add_field(L, &b, "message", "", "");
    add_field(L, &b, "sqlstate", " (SQLSTATE ", ")");
    add_field(L, &b, "detail", "\nDETAIL: ", "");
    add_field(L, &b, "hint", "\nHINT: ", "");
    luaL_pushresult(&b);
    return 1;
}

/* "failed: " .. err and err .. "!" work like tostring(err). */
static int error_concat(lua_State *L)
{
    int i;
    for (i = 1; i <= 2; i++) { /* tostring(): __tostring for the error, the usual for the rest */
        lua_getglobal(L, "tostring");
        lua_pushvalue(L, i);
        lua_call(L, 1, 1);
    }
    lua_concat(L, 2);
    return 1;
}

static void push_error_mt(lua_State *L)
{
    lua_pushlightuserdata(L, (void *)&error_mt_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
}

static void set_string(lua_State *L, const char *field, const char *value)
{
    if (value && *value) {
        lua_pushstring(L, value);
        lua_setfield(L, -2, field);
    }
}

void lb_bind_push_error(lua_State *L, const lb_error *err)
{
    lua_createtable(L, 0, 6);
    lua_pushstring(L, lb_kind_name(err->kind));
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, err->message ? err->message : "unknown error");
    lua_setfield(L, -2, "message");
    set_string(L, "sqlstate", err->sqlstate);
    set_string(L, "detail", err->detail);
    set_string(L, "hint", err->hint);
    set_string(L, "request_id", err->request_id);
    lua_pushboolean(L, err->retriable);
    lua_setfield(L, -2, "retriable");
    push_error_mt(L);
    lua_setmetatable(L, -2);
}

int lb_bind_fail(lua_State *L, lb_error *err)
{
    lua_pushnil(L);
    lb_bind_push_error(L, err);
    lb_error_clear(err);
    return 2;
}

void lb_bind_error(lua_State *L)
{
    lua_pushlightuserdata(L, (void *)&error_mt_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_createtable(L, 0, 3);
        lua_pushcfunction(L, error_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushcfunction(L, error_concat);
        lua_setfield(L, -2, "__concat");
        lua_pushliteral(L, "lakebase.error");
        lua_setfield(L, -2, "__name");
        lua_pushlightuserdata(L, (void *)&error_mt_key);
        lua_pushvalue(L, -2);
        lua_rawset(L, LUA_REGISTRYINDEX);
    }
    lua_setfield(L, -2, "error_mt");
}
