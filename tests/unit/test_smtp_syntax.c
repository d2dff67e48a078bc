/* Unit tests for smtp_syntax's character classes: the bit masks against
 * their definitions (RFC 5322 atext, RFC 5321 Ldh-str), every octet. The
 * address, domain and EHLO rules themselves are tested through their users
 * (test_smtp_client, test_job, test_config) and fuzz_address. */
#include "smtp_syntax.h"

#include <string.h>

#include "check.h"

static int alnum(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static void test_classes(void)
{
    int c, atext_bad = 0, ldh_bad = 0;
    for (c = 0; c < 256; c++) {
        int atext = alnum(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
        int ldh = alnum(c) || c == '-';
        atext_bad += smtp_syntax_is_atext((unsigned char)c) != atext;
        ldh_bad += smtp_syntax_is_ldh((unsigned char)c) != ldh;
    }
    CHECK(atext_bad == 0);
    CHECK(ldh_bad == 0);
}

static void test_first_fault_named(void)
{
    /* CR, LF and NUL are named wherever they stand; of the others, the
     * first in the address. */
    CHECK(strcmp(smtp_syntax_mailbox("<a>@x.org\r", 10, NULL), "CR, LF or NUL in address") == 0);
    CHECK(strcmp(smtp_syntax_mailbox("a\x01<@x.org", 9, NULL), "control character in address") ==
          0);
    CHECK(strcmp(smtp_syntax_mailbox("a<\x01@x.org", 9, NULL),
                 "'<' or '>' in address (give the bare address)") == 0);
    CHECK(smtp_syntax_mailbox("a.b+c@x-y.example", 17, NULL) == NULL);
    CHECK(smtp_syntax_mailbox("a@x_y.example", 13, NULL) != NULL);
}

int main(void)
{
    test_classes();
    test_first_fault_named();
    return check_done();
}
