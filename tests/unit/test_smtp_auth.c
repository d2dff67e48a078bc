/* Unit tests for smtp_auth: RFC 4616 PLAIN and LOGIN encodings, refusals. */
#include "smtp_auth.h"

#include "check.h"

int main(void)
{
    struct smtp_auth_creds c;
    const char *err = NULL;

    /* RFC 4616 section 4 example: authcid "tim", password "tanstaaftanstaaf". */
    CHECK_INT(smtp_auth_encode("tim", "tanstaaftanstaaf", &c, &err), 0);
    CHECK_STR(c.plain_b64, "AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
    CHECK_STR(c.user_b64, "dGlt");
    CHECK_STR(c.pass_b64, "dGFuc3RhYWZ0YW5zdGFhZg==");
    smtp_auth_free(&c);
    CHECK(c.plain_b64 == NULL);

    CHECK_INT(smtp_auth_encode("", "x", &c, &err), -1);
    CHECK_STR(err, "AUTH user name is empty");
    CHECK_INT(smtp_auth_encode("u", "", &c, &err), -1);
    CHECK_STR(err, "AUTH password is empty");
    CHECK_INT(smtp_auth_encode("u\r\n", "x", &c, &err), -1);
    CHECK_STR(err, "AUTH user name contains CR or LF");
    {
        char longpw[300];
        memset(longpw, 'p', sizeof(longpw) - 1);
        longpw[sizeof(longpw) - 1] = 0;
        CHECK_INT(smtp_auth_encode("u", longpw, &c, &err), -1);
        CHECK_STR(err, "AUTH password is longer than 255 octets");
    }
    smtp_auth_free(&c); /* safe on a zeroed struct */
    return check_done();
}
