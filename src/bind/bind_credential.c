/* Lua binding of the credential area (placeholder until that area lands). */
#include "bind.h"

void lb_bind_credential(lua_State *L)
{
    (void)L;
}
