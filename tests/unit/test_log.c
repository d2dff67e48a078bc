/* Unit tests for log: JSON lines, escaping, levels, the rate limit. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "log.h"

static char out[65536];

/* Run fn with stderr captured into out. */
static void capture(void (*fn)(void))
{
    FILE *tmp = tmpfile();
    int saved = dup(2);
    size_t n;
    fflush(stderr);
    dup2(fileno(tmp), 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    n = fread(out, 1, sizeof(out) - 1, tmp);
    out[n] = 0;
    fclose(tmp);
}

static void basic(void)
{
    log_set_level(LOG_INFO);
    log_event(LOG_INFO, "tls_handshake", "relay", "mx \"1\"\n", "cipher", "TLS_AES", NULL);
    log_event(LOG_DEBUG, "hidden", NULL);
    log_event(LOG_WARN, "nullval", "detail", NULL, NULL);
}

static void limited(void)
{
    int i;
    for (i = 0; i < 20; i++)
        log_event(LOG_WARN, "connection_failed", "relay", "down.example", "reason", "timeout",
                  NULL);
    for (i = 0; i < 3; i++)
        log_always(LOG_WARN, "tls_verify_disabled", "relay", "x", NULL);
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    const char *p = hay;
    while ((p = strstr(p, needle))) {
        n++;
        p += strlen(needle);
    }
    return n;
}

int main(void)
{
    capture(basic);
    CHECK(strstr(out, "\"level\":\"info\",\"event\":\"tls_handshake\"") != NULL);
    CHECK(strstr(out, "\"relay\":\"mx \\\"1\\\"\\u000a\"") != NULL); /* quotes and LF escaped */
    CHECK(strstr(out, "hidden") == NULL);
    CHECK(strstr(out, "\"detail\":null") != NULL);
    CHECK_INT(count(out, "\n"), 2);
    CHECK(strncmp(out, "{\"ts\":\"", 7) == 0);

    capture(limited);
    CHECK_INT(count(out, "connection_failed"), 5);   /* a burst of 5, then quiet */
    CHECK_INT(count(out, "tls_verify_disabled"), 3); /* never limited */

    CHECK_INT(log_level_parse("warn"), LOG_WARN);
    CHECK_INT(log_level_parse("loud"), -1);
    CHECK_STR(log_level_name(LOG_ERROR), "error");
    return check_done();
}
