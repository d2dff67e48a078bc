/*
 * Unit tests of the configuration's rules that reach outside the file: the
 * default EHLO name from the host's name (RINGMAIL_TEST_HOSTNAME stands in
 * for gethostname()), the Redis password limit, and config_secret_load(),
 * the one reader of password files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config.h"

#define TEST_HOSTNAME "host.test.example"

static struct config *load(const char *yaml, char *err, size_t errlen)
{
    return config_load_string(yaml, strlen(yaml), "ringmail.yaml", err, errlen);
}

static const char minimal[] = "redis:\n"
                              "  url: redis://127.0.0.1\n"
                              "relays:\n"
                              "  - name: a\n"
                              "    host: h.example\n";

/* Without ehlo_name the host's name is used, and only a fully qualified
 * one: "EHLO vm" is refused by Exim and OpenSMTPD (RFC 5321 4.1.1.1). */
static void test_default_ehlo(void)
{
    static const struct {
        const char *host, *want;
    } cases[] = {
        {"vm", "ringmail.yaml:1: ehlo_name: not set, and this host's name \"vm\" is not a fully "
               "qualified domain name (RFC 5321 4.1.1.1 wants one in EHLO): set ehlo_name"},
        {"mail_1.example.com",
         "ringmail.yaml:1: ehlo_name: not set, and this host's name \"mail_1.example.com\" is not "
         "a valid EHLO name (EHLO name contains a character that is not allowed in a domain "
         "(letters, digits, '-' and '.'; no '_')): set ehlo_name"},
        {"mx1.example.org", NULL},
    };
    char err[CONFIG_ERR_MAX], out[256];
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config *c;
        setenv("RINGMAIL_TEST_HOSTNAME", cases[i].host, 1);
        err[0] = 0;
        c = load(minimal, err, sizeof(err));
        if (cases[i].want) {
            CHECK(c == NULL);
            CHECK_STR(err, cases[i].want);
            CHECK_INT(config_host_ehlo_name(out, sizeof(out), err, sizeof(err)), -1);
        } else {
            CHECK(c != NULL);
            if (c)
                CHECK_STR(c->ehlo_name, cases[i].host);
            CHECK_INT(config_host_ehlo_name(out, sizeof(out), err, sizeof(err)), 0);
            CHECK_STR(out, cases[i].host);
        }
        config_free(c);
    }
    /* A configured name needs no host name at all. */
    setenv("RINGMAIL_TEST_HOSTNAME", "vm", 1);
    {
        static const char named[] = "redis: {url: redis://h}\nrelays: [{name: a, host: h}]\n"
                                    "ehlo_name: mta1.example.com\n";
        struct config *c = load(named, err, sizeof(err));
        CHECK(c != NULL);
        config_free(c);
    }
    setenv("RINGMAIL_TEST_HOSTNAME", TEST_HOSTNAME, 1);
}

/* A Redis password has one limit wherever it is written: 511 octets in the
 * url as in password_file (config_secret_load), an error, never a cut. */
static void test_redis_password_limit(void)
{
    char yaml[1024], pw[601], err[CONFIG_ERR_MAX];
    struct config *c;

    memset(pw, 'p', 600);
    pw[600] = 0;
    snprintf(yaml, sizeof(yaml), "redis:\n  url: redis://:%s@h\nrelays: [{name: a, host: h}]\n",
             pw);
    c = load(yaml, err, sizeof(err));
    CHECK(c == NULL);
    CHECK_STR(err, "ringmail.yaml:2: redis.url: the password is longer than 511 octets");
    config_free(c);
    pw[511] = 0;
    snprintf(yaml, sizeof(yaml), "redis:\n  url: redis://:%s@h\nrelays: [{name: a, host: h}]\n",
             pw);
    c = load(yaml, err, sizeof(err));
    CHECK(c != NULL);
    if (c)
        CHECK_INT(strlen(c->redis.password), 511);
    config_free(c);
}

/* config_secret_load, the one password-file reader: one trailing LF or
 * CRLF goes, anything else that cannot be a password is an error. */
static void test_secret_load(void)
{
    static const struct {
        const char *content;
        size_t len, max;
        const char *want, *why; /* the secret, or the error after "PATH: " */
    } cases[] = {
        {"hunter2\n", 8, 16, "hunter2", NULL},
        {"hunter2\r\n", 9, 16, "hunter2", NULL},
        {"hunter2", 7, 16, "hunter2", NULL},
        {"hunter2\n", 8, 7, "hunter2", NULL}, /* exactly the limit */
        {"hunter22\n", 9, 7, NULL, "the secret is longer than 7 octets"},
        {"", 0, 16, NULL, "the file is empty (no secret in it)"},
        {"\n", 1, 16, NULL, "the file is empty (no secret in it)"},
        {"\r\n", 2, 16, NULL, "the file is empty (no secret in it)"},
        {"hun\0ter\n", 8, 16, NULL, "the secret contains a NUL octet"},
        {"hunter2\n\n", 9, 16, NULL,
         "the secret spans several lines (only one trailing line end is allowed)"},
        {"hunter2\r", 8, 16, NULL,
         "the secret spans several lines (only one trailing line end is allowed)"},
    };
    char path[64], out[CONFIG_SECRET_MAX + 1], err[256], want[160];
    size_t i;
    int fd;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(path, sizeof(path), "/tmp/ringmail-secret-XXXXXX");
        fd = mkstemp(path);
        CHECK(fd >= 0);
        if (fd < 0)
            return;
        CHECK_INT(write(fd, cases[i].content, cases[i].len), (long)cases[i].len);
        close(fd);
        err[0] = 0;
        if (cases[i].want) {
            CHECK_INT(config_secret_load(path, cases[i].max, out, err, sizeof(err)), 0);
            CHECK_STR(out, cases[i].want);
        } else {
            CHECK_INT(config_secret_load(path, cases[i].max, out, err, sizeof(err)), -1);
            snprintf(want, sizeof(want), "%s: %s", path, cases[i].why);
            CHECK_STR(err, want);
            CHECK_STR(out, "");
        }
        unlink(path);
    }
    CHECK_INT(config_secret_load("/nonexistent/ringmail-secret", 16, out, err, sizeof(err)), -1);
    CHECK_STR(err, "cannot read /nonexistent/ringmail-secret: No such file or directory");
    CHECK_INT(config_secret_load("/tmp", 16, out, err, sizeof(err)), -1);
    CHECK_STR(err, "cannot read /tmp: Is a directory");
}

int main(void)
{
    setenv("RINGMAIL_TEST_HOSTNAME", TEST_HOSTNAME, 1);
    test_default_ehlo();
    test_redis_password_limit();
    test_secret_load();
    return check_done();
}
