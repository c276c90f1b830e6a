/* Lua binding of pinned connections (placeholder until that area lands). */
#include "bind.h"

void lb_bind_pin(lua_State *L)
{
    (void)L;
}
