/* The JSON codec (bind_json.c): Lua values to JSON text and back. */
#ifndef LB_BIND_JSON_H
#define LB_BIND_JSON_H

#include "bind.h"
#include "../lb_decode.h"

/* Registry name of the metatable that marks a table as a JSON array (core.json_array_mt). */
#define LB_JSON_ARRAY_MT "lakebase.json.array"

/* Appends the JSON text of the value at idx to b. indent (NULL or "": compact) pretty-prints;
 * sort_keys writes object members in byte order of their keys. Returns 0, or -1 with the reason
 * in why (b then holds a partial text). Never calls metamethods; leaves the stack as it was. */
int lb_json_encode(lua_State *L, int idx, lb_buf *b, const char *indent, int sort_keys,
                   char *why, size_t why_size);

/* Pushes the Lua value of the JSON text s. Returns 0, or -1 (malformed, or nested deeper than
 * the codec allows) / -2 (trailing text) with nothing pushed and *error_at (may be NULL) set to
 * the byte offset where decoding stopped. Raises only when Lua runs out of memory. */
int lb_json_push(lua_State *L, const char *s, size_t len, size_t *error_at);

/* Registers core.json_encode, core.json_decode and core.json_array_mt. */
void lb_bind_json(lua_State *L);

#endif
