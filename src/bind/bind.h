/* The Lua binding: one lb_bind_<area>() per area registers its functions into the module table
 * on top of the stack. Only files in src/bind/ include lua.h. */
#ifndef LB_BIND_H
#define LB_BIND_H

#include "compat.h"
#include "../lakebase.h"

/* Pushes an error object (table with kind, message, sqlstate, detail, hint, retriable and the
 * shared error metatable). */
void lb_bind_push_error(lua_State *L, const lb_error *err);
/* Returns nil, error-object: the usual `return lb_bind_fail(L, &err);` */
int lb_bind_fail(lua_State *L, lb_error *err);

/* Reads an options table (or nil) at idx into lb_settings (options > env > profile), validating
 * every rule (bind_config.c). Returns NULL with err set on failure; the caller frees the result.
 * Keys in `ignore` (NULL-terminated, may be NULL) are skipped: options of the Lua layer. */
lb_settings *lb_bind_check_settings(lua_State *L, int idx, const char *const *ignore, lb_error *err);
/* Pushes the settings as a table (secrets as "(set)"), as core.config returns them. */
void lb_bind_push_settings(lua_State *L, const lb_settings *s);

void lb_bind_error(lua_State *L);
void lb_bind_config(lua_State *L);
void lb_bind_credential(lua_State *L);
void lb_bind_pool(lua_State *L);
void lb_bind_pin(lua_State *L);
void lb_bind_metrics(lua_State *L);

#endif
