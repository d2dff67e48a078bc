/* Built only by tests/layering/test_layering.sh, with the pure layers' flags:
 * this include must fail the build ("forbidden include"). */
#include <openssl/evp.h>

int layering_forbidden(void);
int layering_forbidden(void)
{
    return 0;
}
