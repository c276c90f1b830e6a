/* Lua binding of the config area (placeholder until that area lands). */
#include "bind.h"

void lb_bind_config(lua_State *L)
{
    (void)L;
}
