/*
 * config_url: the addresses a configuration names: the Redis URL
 * (redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or unix://[[USER]:PASSWORD@]/PATH[?db=N],
 * percent-encoding in the user and password) and HOST:PORT listen addresses.
 * No URL library is linked for two small, fixed forms; what they may hold is
 * narrow on purpose. A message about a URL never quotes it whole: it may
 * carry the password.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

/* HOST:PORT or [V6]:PORT. */
int cfg_parse_listen(struct cfg *x, yaml_node_t *v, const char *path, void *dst,
                     const struct cfg_field *f)
{
    struct config_metrics *m = dst;
    const char *s, *colon, *h = NULL;
    uint64_t port = 0;
    size_t hl = 0;
    char got[96];

    if (cfg_parse_str(x, v, path, &m->listen, f) != 0)
        return -1;
    s = m->listen ? m->listen : "";
    colon = strrchr(s, ':');
    if (colon && s[0] == '[' && colon > s && colon[-1] == ']') {
        h = s + 1;
        hl = (size_t)(colon - s) - 2;
    } else if (colon && !memchr(s, ':', (size_t)(colon - s))) {
        h = s;
        hl = (size_t)(colon - s);
    }
    if (colon && *(colon + 1) && strspn(colon + 1, "0123456789") == strlen(colon + 1)) {
        port = strtoull(colon + 1, NULL, 10);
        if (strlen(colon + 1) > 5)
            port = 0;
    }
    if (!h || !hl || port < 1 || port > 65535)
        return cfg_error(x, cfg_line(v), "%s: expected HOST:PORT or [IPV6]:PORT, got %s", path,
                         cfg_got(v, got, sizeof(got)));
    free(m->host);
    m->host = strndup(h, hl);
    m->port = (unsigned)port;
    return m->host ? 0 : cfg_error(x, cfg_line(v), "out of memory");
}

/* ---- the Redis URL ------------------------------------------------------ */

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Percent-decode n bytes (a password may hold '@' or ':' that way). NULL
 * for an empty result; -1 for a bad escape or a decoded NUL. */
static int pct_decode(const char *s, size_t n, char **out)
{
    char *d;
    size_t i, o = 0;

    *out = NULL;
    if (!n)
        return 0;
    d = malloc(n + 1);
    if (!d)
        return -1;
    for (i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] != '%') {
            d[o++] = s[i];
            continue;
        }
        hi = i + 2 < n ? hexval(s[i + 1]) : -1;
        lo = i + 2 < n ? hexval(s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            free(d);
            return -1;
        }
        d[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    d[o] = '\0';
    *out = d;
    return 0;
}

/* user[:password]; both percent-encoded. */
static int parse_userinfo(struct cfg *x, yaml_node_t *v, const char *path, const char *s, size_t n,
                          struct config_redis *r)
{
    const char *colon = memchr(s, ':', n);
    size_t ul = colon ? (size_t)(colon - s) : n;

    if (pct_decode(s, ul, &r->user) != 0 ||
        (colon && pct_decode(colon + 1, n - ul - 1, &r->password) != 0))
        return cfg_error(x, cfg_line(v), "%s: bad percent-encoding in the user or password", path);
    return 0;
}

static int parse_db(struct cfg *x, yaml_node_t *v, const char *path, const char *s, size_t n,
                    struct config_redis *r)
{
    uint64_t db = 0;
    size_t i;

    for (i = 0; i < n && s[i] >= '0' && s[i] <= '9' && db <= INT_MAX; i++)
        db = db * 10 + (uint64_t)(s[i] - '0');
    if (i < n || db > INT_MAX)
        return cfg_error(x, cfg_line(v), "%s: expected a database number, got \"%.*s\"", path,
                         (int)(n > 20 ? 20 : n), s);
    r->db = (unsigned)db;
    return 0;
}

/* redis://[[user]:password@]host[:port][/db]. The user part ends at the
 * last '@', so that a password with an unencoded '/', '?' or '#' still
 * parses instead of being cut up and quoted in an error. */
static int parse_tcp_url(struct cfg *x, yaml_node_t *v, const char *path, const char *s,
                         struct config_redis *r)
{
    const char *at = strrchr(s, '@'), *h = at ? at + 1 : s, *end, *portp;
    unsigned long port = 6379;
    size_t hl;

    if (at && parse_userinfo(x, v, path, s, (size_t)(at - s), r) != 0)
        return -1;
    end = h + strcspn(h, "/?#");
    if (strpbrk(end, "?#"))
        return cfg_error(x, cfg_line(v),
                         "%s: query and fragment are not supported (the database is /DB)", path);
    if (*h == '[') {
        const char *close = memchr(h, ']', (size_t)(end - h));
        if (!close)
            return cfg_error(x, cfg_line(v), "%s: unclosed '[' in the host", path);
        hl = (size_t)(close - h) - 1;
        h++;
        portp = close + 1;
    } else {
        portp = memchr(h, ':', (size_t)(end - h));
        hl = (size_t)((portp ? portp : end) - h);
    }
    if (portp && portp < end) {
        size_t pl = (size_t)(end - portp) - 1;
        if (*portp != ':' || !pl || pl > 5 || strspn(portp + 1, "0123456789") < pl ||
            (port = strtoul(portp + 1, NULL, 10)) < 1 || port > 65535)
            return cfg_error(x, cfg_line(v), "%s: expected a port from 1 to 65535, got \"%.*s\"",
                             path, (int)(pl > 20 ? 20 : pl), *portp == ':' ? portp + 1 : portp);
    }
    if (!hl)
        return cfg_error(x, cfg_line(v), "%s: missing host (redis://HOST[:PORT][/DB])", path);
    r->host = strndup(h, hl);
    if (!r->host)
        return cfg_error(x, cfg_line(v), "out of memory");
    if (!cfg_all_of(r->host, ".-_:"))
        return cfg_error(x, cfg_line(v), "%s: bad host \"%.*s\"", path, 64, r->host);
    r->port = (unsigned)port;
    return *end == '/' ? parse_db(x, v, path, end + 1, strlen(end + 1), r) : 0;
}

/* unix://[[user]:password@]/path[?db=N] */
static int parse_unix_url(struct cfg *x, yaml_node_t *v, const char *path, const char *s,
                          struct config_redis *r)
{
    const char *at = NULL, *slash, *q, *p;
    size_t ui;

    /* The user part ends at the last "@/" (the path is absolute). */
    for (p = strstr(s, "@/"); p; p = strstr(p + 1, "@/"))
        at = p;
    slash = at ? at + 1 : s;
    ui = (size_t)(slash - s);
    if (*slash != '/')
        return cfg_error(x, cfg_line(v),
                         "%s: a unix socket path must be absolute (unix:///path/to/redis.sock)",
                         path);
    if (ui && parse_userinfo(x, v, path, s, ui - 1, r) != 0)
        return -1;
    q = strchr(slash, '?');
    if (q && strncmp(q, "?db=", 4) != 0)
        return cfg_error(x, cfg_line(v), "%s: the only query parameter is ?db=N", path);
    if (q && parse_db(x, v, path, q + 4, strlen(q + 4), r) != 0)
        return -1;
    r->port = 0;
    r->unix_path = strndup(slash, q ? (size_t)(q - slash) : strlen(slash));
    if (!r->unix_path)
        return cfg_error(x, cfg_line(v), "out of memory");
    if (strlen(r->unix_path) < 2 || strlen(r->unix_path) > 107) /* sun_path */
        return cfg_error(x, cfg_line(v), "%s: a unix socket path has 1 to 107 characters", path);
    return 0;
}

/* Messages about the URL never quote it whole: it may carry the password. */
int cfg_parse_redis_url(struct cfg *x, yaml_node_t *v, const char *path, void *dst,
                        const struct cfg_field *f)
{
    struct config_redis *r = dst;
    const char *s = cfg_text(v), *sep;
    size_t i;

    for (i = 0; s && i < v->data.scalar.length; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return cfg_error(x, cfg_line(v), "%s: control characters are not allowed", path);
    if (cfg_parse_str(x, v, path, &r->url, f) != 0)
        return -1;
    if (!r->url)
        return cfg_error(x, cfg_line(v), "%s: a value is required", path);
    s = r->url;
    if (!strncmp(s, "redis://", 8))
        return parse_tcp_url(x, v, path, s + 8, r);
    if (!strncmp(s, "unix://", 7))
        return parse_unix_url(x, v, path, s + 7, r);
    sep = strstr(s, "://");
    if (sep && sep > s && sep - s <= 16 &&
        strspn(s, "abcdefghijklmnopqrstuvwxyz"
                  "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.") == (size_t)(sep - s))
        return cfg_error(x, cfg_line(v),
                         "%s: unsupported scheme \"%.*s\" (expected redis:// or unix://)", path,
                         (int)(sep - s), s);
    return cfg_error(x, cfg_line(v),
                     "%s: expected redis://HOST[:PORT][/DB] or unix:///PATH/TO/SOCKET", path);
}
