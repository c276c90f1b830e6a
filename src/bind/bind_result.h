/* Lua values <-> PostgreSQL: query parameters from Lua values, PGresult rows into Lua tables. */
#ifndef LB_BIND_RESULT_H
#define LB_BIND_RESULT_H

#include "bind.h"

/* Parameters for PQexecParams/lb_conn_exec. Strings borrowed from the Lua stack stay valid while
 * the values stay on the stack; converted values live in `storage` (owned, freed by lb_params_free). */
typedef struct lb_params {
    int n;
    Oid *types;
    const char **values;
    int *lengths;
    int *formats;
    char **storage; /* n slots, malloc'd conversions or NULL */
} lb_params;

/* Reads the n Lua values at stack indices first..first+n-1. Returns 0, or -1 with err set
 * (kind config... no: kind query, not retriable) naming the bad parameter ($k). */
int lb_params_collect(lua_State *L, int first, int n, lb_params *p, lb_error *err);
void lb_params_free(lb_params *p);

/* Pushes the rows of res as an array of tables keyed by column name (decoded by type OID),
 * with the field affected_rows when the command reports a count. Returns 1 (values pushed). */
int lb_push_result(lua_State *L, const PGresult *res);

#endif
