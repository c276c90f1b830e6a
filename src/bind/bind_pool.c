/* Lua binding of the pool area (placeholder until that area lands). */
#include "bind.h"

void lb_bind_pool(lua_State *L)
{
    (void)L;
}
