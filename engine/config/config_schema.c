/*
 * config_schema: what a ringmail configuration may say. One field table per
 * section, the parsers for values with their own grammar (names, pins, the
 * retry schedule; the addresses are in config_url.c), the defaults, and the
 * rules that span several keys (username needs password_file, relay names are unique, state
 * records outlive retries). deploy/ringmail.yaml documents the same keys:
 * change both together.
 */
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_internal.h"
#include "smtp_client.h"
#include "smtp_syntax.h"
#include "tls.h"

#define MAX_RELAYS   1000
#define MAX_SCHEDULE 100
#define MAX_PINS     16
#define DAY          86400u

#define FIELD(key, fn, type, member, min, max, flags)                                              \
    {                                                                                              \
        key, fn, offsetof(type, member), min, max, flags                                           \
    }

static int oom(struct cfg *x, yaml_node_t *v)
{
    return cfg_error(x, cfg_line(v), "out of memory");
}

/* ---- names ------------------------------------------------------------- */

/* A text field that must match a character set; "" counts as not set. */
static int parse_charset(struct cfg *x, yaml_node_t *v, const char *path, char **out,
                         const char *set, size_t maxlen, const char *what)
{
    char got[96];
    if (cfg_parse_str(x, v, path, out, NULL) != 0)
        return -1;
    if (*out && (!cfg_all_of(*out, set) || strlen(*out) > maxlen)) {
        free(*out);
        *out = NULL;
        return cfg_error(x, cfg_line(v), "%s: expected %s, got %s", path, what,
                         cfg_got(v, got, sizeof(got)));
    }
    return 0;
}

/* Host names and IP literals (IPv6 without brackets). */
static int parse_host(struct cfg *x, yaml_node_t *v, const char *path, void *dst,
                      const struct cfg_field *f)
{
    (void)f;
    return parse_charset(x, v, path, dst, ".-_:", 253, "a host name or IP address");
}

/* Relay names become metrics labels and job fields: keep them plain. */
static int parse_name(struct cfg *x, yaml_node_t *v, const char *path, void *dst,
                      const struct cfg_field *f)
{
    (void)f;
    if (parse_charset(x, v, path, dst, "._-", 64, "a name of letters, digits, '.', '_' or '-'") !=
        0)
        return -1;
    if (!*(char **)dst)
        return cfg_error(x, cfg_line(v), "%s: a value is required", path);
    return 0;
}

/* The SMTP client's own check (smtp_syntax): check-config accepts exactly
 * the names the client will send. */
static int parse_ehlo(struct cfg *x, yaml_node_t *v, const char *path, void *dst,
                      const struct cfg_field *f)
{
    char got[96], **out = dst;
    const char *why;
    if (cfg_parse_str(x, v, path, dst, f) != 0)
        return -1;
    if (*out && (why = smtp_syntax_ehlo_name(*out)))
        return cfg_error(x, cfg_line(v), "%s: expected a domain or an address literal, got %s: %s",
                         path, cfg_got(v, got, sizeof(got)), why);
    return 0;
}

int config_host_ehlo_name(char *out, size_t cap, char *err, size_t errlen)
{
    const char *test = getenv("RINGMAIL_TEST_HOSTNAME");
    char host[SMTP_DOMAIN_MAX + 2];
    const char *why;

    /* RINGMAIL_TEST_HOSTNAME stands in for gethostname() in the tests, so
     * that a host name without a dot can be tried on any machine. */
    memset(host, 0, sizeof(host));
    if (test && *test)
        snprintf(host, sizeof(host), "%s", test);
    else if (gethostname(host, sizeof(host) - 1) != 0)
        host[0] = 0;
    if ((why = smtp_syntax_fqdn(host))) {
        if (!strcmp(why, SMTP_SYNTAX_NOT_FQDN))
            snprintf(err, errlen,
                     "this host's name \"%.64s\" is not a fully qualified domain name (RFC 5321 "
                     "4.1.1.1 wants one in EHLO)",
                     host);
        else
            snprintf(err, errlen, "this host's name \"%.64s\" is not a valid EHLO name (%s)", host,
                     why);
        return -1;
    }
    if (strlen(host) >= cap) {
        snprintf(err, errlen, "this host's name is longer than %zu octets", cap - 1);
        return -1;
    }
    memcpy(out, host, strlen(host) + 1);
    return 0;
}

/* ---- small grammars ----------------------------------------------------- */

static int parse_workers(struct cfg *x, yaml_node_t *v, const char *path, void *dst,
                         const struct cfg_field *f)
{
    const char *s = cfg_text(v);
    uint64_t n;
    char got[96];

    if (s && !strcmp(s, "auto")) {
        *(unsigned *)dst = 0;
        return 0;
    }
    if (cfg_uint_value(v, f->min, f->max, &n) != 0)
        return cfg_error(x, cfg_line(v),
                         "%s: expected auto or an integer from %llu to %llu, got %s", path,
                         (unsigned long long)f->min, (unsigned long long)f->max,
                         cfg_got_num(v, got, sizeof(got)));
    *(unsigned *)dst = (unsigned)n;
    return 0;
}

static int parse_log_level(struct cfg *x, yaml_node_t *v, const char *path, void *dst,
                           const struct cfg_field *f)
{
    const char *s = cfg_text(v);
    int l = s ? log_level_parse(s) : -1;
    char got[96];

    (void)f;
    if (l < 0)
        return cfg_error(x, cfg_line(v), "%s: expected debug, info, warn or error, got %s", path,
                         cfg_got(v, got, sizeof(got)));
    *(enum log_level *)dst = (enum log_level)l;
    return 0;
}

static int parse_tls_mode(struct cfg *x, yaml_node_t *v, const char *path, void *dst,
                          const struct cfg_field *f)
{
    const char *s = cfg_text(v);
    char got[96];

    (void)f;
    if (s && !strcmp(s, "starttls"))
        *(enum config_tls_mode *)dst = CONFIG_TLS_STARTTLS;
    else if (s && !strcmp(s, "implicit"))
        *(enum config_tls_mode *)dst = CONFIG_TLS_IMPLICIT;
    else
        return cfg_error(x, cfg_line(v), "%s: expected starttls or implicit, got %s", path,
                         cfg_got(v, got, sizeof(got)));
    return 0;
}

/* "1.2" quoted, or 1.2 plain (YAML would call that a float; the text is
 * what counts). */
static int parse_min_tls(struct cfg *x, yaml_node_t *v, const char *path, void *dst,
                         const struct cfg_field *f)
{
    const char *s = cfg_text(v);
    char got[96];

    if (!s || (strcmp(s, "1.2") != 0 && strcmp(s, "1.3") != 0))
        return cfg_error(x, cfg_line(v), "%s: expected \"1.2\" or \"1.3\", got %s", path,
                         cfg_got(v, got, sizeof(got)));
    return cfg_parse_str(x, v, path, dst, f);
}

/* OpenSSL checks the names when the relay's context is built; this catches
 * what cannot be a suite list at all. */
static int parse_suites(struct cfg *x, yaml_node_t *v, const char *path, void *dst,
                        const struct cfg_field *f)
{
    (void)f;
    return parse_charset(x, v, path, dst, "_:-", 1024,
                         "a list of TLS 1.3 suites such as TLS_AES_256_GCM_SHA384:"
                         "TLS_CHACHA20_POLY1305_SHA256");
}

/* tls_ctx_new()'s own parser: a pin check-config accepts is one the
 * engine takes. */
static int pin_ok(const char *s)
{
    unsigned char pin[TLS_PIN_OCTETS];
    return tls_pin_parse(s, pin) == 0;
}

static int parse_pins(struct cfg *x, yaml_node_t *v, const char *path, void *dst,
                      const struct cfg_field *f)
{
    struct config_relay *r = dst;
    char got[96], sub[CFG_PATH_MAX];
    yaml_node_item_t *it;
    size_t n;

    (void)f;
    if (v->type != YAML_SEQUENCE_NODE)
        return cfg_error(x, cfg_line(v), "%s: expected a list of SPKI SHA-256 pins, got %s", path,
                         cfg_got(v, got, sizeof(got)));
    n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n > MAX_PINS)
        return cfg_error(x, cfg_line(v), "%s: at most %d pins", path, MAX_PINS);
    r->pins = calloc(n ? n : 1, sizeof(*r->pins));
    if (!r->pins)
        return oom(x, v);
    for (it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        yaml_node_t *p = yaml_document_get_node(x->doc, *it);
        snprintf(sub, sizeof(sub), "%s[%zu]", path, r->npins);
        /* Counted before it is checked, so that config_free() finds it. */
        if (cfg_parse_str(x, p, sub, &r->pins[r->npins++], NULL) != 0)
            return -1;
        if (!r->pins[r->npins - 1] || !pin_ok(r->pins[r->npins - 1]))
            return cfg_error(x, cfg_line(p),
                             "%s: expected an SPKI SHA-256 pin (44 base64 characters, optionally "
                             "after sha256//, or 64 hex digits), got %s",
                             sub, cfg_got(p, got, sizeof(got)));
    }
    return 0;
}

static int parse_schedule(struct cfg *x, yaml_node_t *v, const char *path, void *dst,
                          const struct cfg_field *f)
{
    struct config_retry *r = dst;
    char got[96], sub[CFG_PATH_MAX];
    yaml_node_item_t *it;
    size_t n;
    uint64_t d;

    if (v->type != YAML_SEQUENCE_NODE)
        return cfg_error(x, cfg_line(v), "%s: expected a list of delays in seconds, got %s", path,
                         cfg_got(v, got, sizeof(got)));
    n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n == 0 || n > MAX_SCHEDULE)
        return cfg_error(x, cfg_line(v), "%s: expected 1 to %d delays in seconds", path,
                         MAX_SCHEDULE);
    free(r->schedule);
    r->nschedule = 0;
    r->schedule = calloc(n, sizeof(*r->schedule));
    if (!r->schedule)
        return oom(x, v);
    for (it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        yaml_node_t *e = yaml_document_get_node(x->doc, *it);
        if (cfg_uint_value(e, f->min, f->max, &d) != 0) {
            snprintf(sub, sizeof(sub), "%s[%zu]", path, r->nschedule);
            return cfg_error(x, cfg_line(e), "%s: expected an integer from %llu to %llu, got %s",
                             sub, (unsigned long long)f->min, (unsigned long long)f->max,
                             cfg_got_num(e, got, sizeof(got)));
        }
        r->schedule[r->nschedule++] = (unsigned)d;
    }
    return 0;
}

/* ---- sections ----------------------------------------------------------- */

/* Seconds; a day at most: a stage that takes longer is a dead peer. */
#define T(key, member) FIELD(key, cfg_parse_uint, struct config_timeouts, member, 1, DAY, 0)
static const struct cfg_field timeout_fields[] = {
    T("connect", connect),       T("greeting", greeting),   T("command", command), T("tls", tls),
    T("data_block", data_block), T("data_done", data_done), T("quit", quit),
};
#undef T

static int parse_timeouts(struct cfg *x, yaml_node_t *v, const char *path, void *dst,
                          const struct cfg_field *f)
{
    (void)f;
    return cfg_walk_map(x, v, path, x->key_line, timeout_fields,
                        sizeof(timeout_fields) / sizeof(timeout_fields[0]), dst);
}

#define R(key, fn, member, min, max, flags)                                                        \
    FIELD(key, fn, struct config_relay, member, min, max, flags)
static const struct cfg_field relay_fields[] = {
    R("name", parse_name, name, 0, 0, CFG_REQUIRED),
    R("host", parse_host, host, 0, 0, CFG_REQUIRED),
    R("port", cfg_parse_uint, port, 1, 65535, 0),
    R("tls", parse_tls_mode, tls, 0, 0, 0),
    R("min_tls", parse_min_tls, min_tls, 0, 0, 0),
    R("servername", parse_host, servername, 0, 0, 0),
    R("ca_file", cfg_parse_rfile, ca_file, 0, 0, 0),
    R("ca_dir", cfg_parse_rdir, ca_dir, 0, 0, 0),
    R("tls13_ciphersuites", parse_suites, tls13_ciphersuites, 0, 0, 0),
    R("client_cert", cfg_parse_rfile, client_cert, 0, 0, 0),
    R("client_key", cfg_parse_rfile, client_key, 0, 0, 0),
    {"pins", parse_pins, 0, 0, 0, 0},
    R("insecure_no_verify", cfg_parse_bool, insecure_no_verify, 0, 0, 0),
    R("username", cfg_parse_str, username, 0, 0, 0),
    R("password_file", cfg_parse_rfile, password_file, 0, 0, 0),
    R("connections", cfg_parse_uint, connections, 1, 10000, 0),
    R("max_messages_per_connection", cfg_parse_uint, max_messages_per_connection, 0, UINT32_MAX, 0),
    R("max_bytes_per_connection", cfg_parse_u64, max_bytes_per_connection, 0, UINT64_MAX, 0),
    R("max_connection_age", cfg_parse_uint, max_connection_age, 0, 30 * DAY, 0),
    R("keepalive", cfg_parse_uint, keepalive, 1, DAY, 0),
    R("pipeline_body", cfg_parse_bool, pipeline_body, 0, 0, 0),
    R("pipeline_depth", cfg_parse_uint, pipeline_depth, 1, SMTP_CLIENT_DEPTH_MAX, 0),
    R("timeouts", parse_timeouts, timeouts, 0, 0, CFG_SECTION),
};
#undef R

/* Two keys that only make sense together. */
static int pair_rule(struct cfg *x, yaml_node_t *map, const char *path, const char *a,
                     const void *va, const char *b, const void *vb)
{
    unsigned line = 0;
    if (!va == !vb)
        return 0;
    cfg_map_get(x, map, va ? a : b, &line);
    return cfg_error(x, line, "%s.%s: requires %s", path, va ? a : b, va ? b : a);
}

static int relay_rules(struct cfg *x, yaml_node_t *map, const char *path, struct config_relay *r)
{
    unsigned line = r->line;

    if (pair_rule(x, map, path, "username", r->username, "password_file", r->password_file) ||
        pair_rule(x, map, path, "client_cert", r->client_cert, "client_key", r->client_key))
        return -1;
    if (!r->port)
        r->port = r->tls == CONFIG_TLS_IMPLICIT ? 465 : 587;
    if (!r->min_tls && !(r->min_tls = strdup("1.2")))
        return oom(x, map);
    if (!r->servername && !(r->servername = strdup(r->host)))
        return oom(x, map);
    if (r->insecure_no_verify) {
        cfg_map_get(x, map, "insecure_no_verify", &line);
        if (!r->npins)
            cfg_warn(x, line,
                     "%s.insecure_no_verify: certificate verification is off and no pin "
                     "replaces it: anyone on the path can read and change this relay's mail",
                     path);
        if (r->ca_file || r->ca_dir)
            cfg_warn(x, line, "%s: ca_file and ca_dir are unused while insecure_no_verify is true",
                     path);
    }
    line = r->line;
    cfg_map_get(x, map, "port", &line);
    if (r->tls == CONFIG_TLS_STARTTLS && r->port == 465)
        cfg_warn(x, line, "%s.port: 465 is the implicit-TLS port; did you mean tls: implicit?",
                 path);
    if (r->tls == CONFIG_TLS_IMPLICIT && (r->port == 25 || r->port == 587))
        cfg_warn(x, line, "%s.port: %u is a STARTTLS port; did you mean tls: starttls?", path,
                 r->port);
    return 0;
}

static int parse_relays(struct cfg *x, yaml_node_t *v, const char *path, void *dst,
                        const struct cfg_field *f)
{
    struct config *c = dst;
    char got[96], sub[CFG_PATH_MAX];
    yaml_node_item_t *it;
    size_t n, i;

    (void)f;
    if (cfg_is_null(v) || (v->type == YAML_SEQUENCE_NODE &&
                           v->data.sequence.items.top == v->data.sequence.items.start))
        return cfg_error(x, x->key_line, "%s: expected at least one relay", path);
    if (v->type != YAML_SEQUENCE_NODE)
        return cfg_error(x, cfg_line(v), "%s: expected a list of relays, got %s", path,
                         cfg_got(v, got, sizeof(got)));
    n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n > MAX_RELAYS)
        return cfg_error(x, cfg_line(v), "%s: at most %d relays", path, MAX_RELAYS);
    c->relays = calloc(n, sizeof(*c->relays));
    if (!c->relays)
        return oom(x, v);
    for (it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        yaml_node_t *m = yaml_document_get_node(x->doc, *it);
        struct config_relay *r = &c->relays[c->nrelays++];
        unsigned name_line;

        r->tls = CONFIG_TLS_STARTTLS;
        r->connections = 16;
        r->max_messages_per_connection = 1000;
        r->max_connection_age = 3600;
        r->keepalive = 60;
        r->pipeline_body = 1;
        r->pipeline_depth = 8;
        r->timeouts = (struct config_timeouts){30, 300, 300, 60, 180, 600, 10};
        r->line = cfg_line(m);
        snprintf(sub, sizeof(sub), "%s[%zu]", path, c->nrelays - 1);
        if (cfg_walk_map(x, m, sub, cfg_line(m), relay_fields,
                         sizeof(relay_fields) / sizeof(relay_fields[0]), r) != 0 ||
            relay_rules(x, m, sub, r) != 0)
            return -1;
        for (i = 0; i + 1 < c->nrelays; i++) {
            if (!strcmp(c->relays[i].name, r->name)) {
                name_line = cfg_line(cfg_map_get(x, m, "name", NULL));
                return cfg_error(x, name_line, "%s.name: duplicate relay name \"%s\"", sub,
                                 r->name);
            }
        }
    }
    return 0;
}

#define D(key, fn, member, min, max, flags)                                                        \
    FIELD(key, fn, struct config_redis, member, min, max, flags)
static const struct cfg_field redis_fields[] = {
    {"url", cfg_parse_redis_url, 0, 0, 0, CFG_REQUIRED},
    D("password_file", cfg_parse_rfile, password_file, 0, 0, 0),
    D("stream", cfg_parse_str, stream, 0, 0, 0),
    D("group", cfg_parse_str, group, 0, 0, 0),
    D("events", cfg_parse_str, events, 0, 0, 0),
    D("dead", cfg_parse_str, dead, 0, 0, 0),
    D("retry", cfg_parse_str, retry, 0, 0, 0),
    D("state_prefix", cfg_parse_str, state_prefix, 0, 0, 0),
    D("events_maxlen", cfg_parse_u64, events_maxlen, 0, INT64_MAX, 0),
    D("dead_maxlen", cfg_parse_u64, dead_maxlen, 0, INT64_MAX, 0),
    D("outcome_stuck_max", cfg_parse_uint, outcome_stuck_max, 1, 1000000, 0),
    D("batch", cfg_parse_uint, batch, 1, 100000, 0),
    D("block_ms", cfg_parse_uint, block_ms, 1, 60000, 0),
    D("claim_min_idle_ms", cfg_parse_uint, claim_min_idle_ms, 1000, UINT32_MAX, 0),
    D("claim_interval_ms", cfg_parse_uint, claim_interval_ms, 100, 3600000, 0),
    D("command_timeout_ms", cfg_parse_uint, command_timeout_ms, 100, 600000, 0),
    D("state_ttl", cfg_parse_uint, state_ttl, 60, UINT32_MAX, 0),
};
#undef D

static int parse_redis(struct cfg *x, yaml_node_t *v, const char *path, void *dst,
                       const struct cfg_field *f)
{
    struct config_redis *r = dst;
    unsigned line = x->key_line;
    struct {
        char **s;
        const char *def;
    } strs[] = {{&r->stream, "ringmail:jobs"},   {&r->group, "ringmail"},
                {&r->events, "ringmail:events"}, {&r->dead, "ringmail:dead"},
                {&r->retry, "ringmail:retry"},   {&r->state_prefix, "ringmail:state:"}};
    size_t i;

    (void)f;
    if (cfg_walk_map(x, v, path, line, redis_fields, sizeof(redis_fields) / sizeof(redis_fields[0]),
                     r) != 0)
        return -1;
    for (i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        if (!*strs[i].s && !(*strs[i].s = strdup(strs[i].def)))
            return oom(x, v);
    if (r->password && r->password_file) {
        cfg_map_get(x, v, "password_file", &line);
        return cfg_error(
            x, line, "%s.password_file: the url already holds a password; keep one of them", path);
    }
    if (r->password && strlen(r->password) > CONFIG_REDIS_PASSWORD_MAX) {
        /* The limit password_file has (config_secret_load), for one rule. */
        cfg_map_get(x, v, "url", &line);
        return cfg_error(x, line, "%s.url: the password is longer than %d octets", path,
                         CONFIG_REDIS_PASSWORD_MAX);
    }
    if (r->user && !r->password && !r->password_file) {
        cfg_map_get(x, v, "url", &line);
        return cfg_error(x, line,
                         "%s.url: user \"%s\" needs a password (in the url or in %s."
                         "password_file)",
                         path, r->user, path);
    }
    if (r->block_ms >= r->command_timeout_ms) {
        cfg_map_get(x, v, "block_ms", &line);
        return cfg_error(x, line,
                         "%s.block_ms: %u must be below command_timeout_ms (%u), or every "
                         "idle read would time out",
                         path, r->block_ms, r->command_timeout_ms);
    }
    return 0;
}

static const struct cfg_field metrics_fields[] = {
    {"listen", cfg_parse_listen, 0, 0, 0, 0},
    FIELD("per_connection", cfg_parse_bool, struct config_metrics, per_connection, 0, 0, 0),
};

static int parse_metrics(struct cfg *x, yaml_node_t *v, const char *path, void *dst,
                         const struct cfg_field *f)
{
    (void)f;
    return cfg_walk_map(x, v, path, x->key_line, metrics_fields,
                        sizeof(metrics_fields) / sizeof(metrics_fields[0]), dst);
}

static const struct cfg_field retry_fields[] = {
    {"schedule", parse_schedule, 0, 1, 30 * DAY, 0},
    FIELD("max_age", cfg_parse_uint, struct config_retry, max_age, 1, 365 * DAY, 0),
    FIELD("max_attempts", cfg_parse_uint, struct config_retry, max_attempts, 1, 1000, 0),
    FIELD("jitter", cfg_parse_frac, struct config_retry, jitter, 0, 1, 0),
};

static int parse_retry(struct cfg *x, yaml_node_t *v, const char *path, void *dst,
                       const struct cfg_field *f)
{
    (void)f;
    return cfg_walk_map(x, v, path, x->key_line, retry_fields,
                        sizeof(retry_fields) / sizeof(retry_fields[0]), dst);
}

/* The bounds follow job.h: an outcome write carries the fields again (at
 * most 3000 in one script call). */
static const struct cfg_field job_fields[] = {
    FIELD("max_fields", cfg_parse_uint, struct config_job, max_fields, 16, 2990, 0),
    FIELD("max_bytes", cfg_parse_u64, struct config_job, max_bytes, 1024, INT64_MAX, 0),
};

static int parse_job(struct cfg *x, yaml_node_t *v, const char *path, void *dst,
                     const struct cfg_field *f)
{
    (void)f;
    return cfg_walk_map(x, v, path, x->key_line, job_fields,
                        sizeof(job_fields) / sizeof(job_fields[0]), dst);
}

#define C(key, fn, member, min, max, flags) FIELD(key, fn, struct config, member, min, max, flags)
static const struct cfg_field root_fields[] = {
    C("workers", parse_workers, workers, 1, 1024, 0),
    C("ehlo_name", parse_ehlo, ehlo_name, 0, 0, 0),
    C("shutdown_timeout", cfg_parse_uint, shutdown_timeout, 0, DAY, 0),
    C("log_level", parse_log_level, log_level, 0, 0, 0),
    C("redis", parse_redis, redis, 0, 0, CFG_REQUIRED | CFG_SECTION),
    C("metrics", parse_metrics, metrics, 0, 0, CFG_SECTION),
    {"relays", parse_relays, 0, 0, 0, CFG_REQUIRED | CFG_SECTION},
    C("retry", parse_retry, retry, 0, 0, CFG_SECTION),
    C("job", parse_job, job, 0, 0, CFG_SECTION),
};
#undef C

static void defaults(struct config *c)
{
    c->shutdown_timeout = 30;
    c->log_level = LOG_INFO;
    c->redis.port = 6379;
    c->redis.events_maxlen = 1000000;
    c->redis.dead_maxlen = 100000;
    c->redis.outcome_stuck_max = 100;
    c->job.max_fields = 2000;
    c->job.max_bytes = 64ull * 1024 * 1024;
    c->redis.batch = 256;
    c->redis.block_ms = 1000;
    c->redis.claim_min_idle_ms = 600000;
    c->redis.claim_interval_ms = 5000;
    c->redis.command_timeout_ms = 5000;
    c->redis.state_ttl = 7 * DAY;
    c->metrics.port = 9465;
    c->metrics.per_connection = 1;
    c->retry.max_age = 2 * DAY;
    c->retry.jitter = 0.2;
}

/* Rules between sections, once every section is in. */
static int root_rules(struct cfg *x, yaml_node_t *root)
{
    static const unsigned schedule[] = {60, 300, 1800, 7200, 21600};
    struct config *c = x->c;
    yaml_node_t *redis = cfg_map_get(x, root, "redis", NULL);
    yaml_node_t *retry = cfg_map_get(x, root, "retry", NULL);
    unsigned line = cfg_line(root);
    char host[256], why[CONFIG_ERR_MAX];
    size_t i;

    if (!c->retry.schedule) {
        c->retry.schedule = malloc(sizeof(schedule));
        if (!c->retry.schedule)
            return oom(x, root);
        memcpy(c->retry.schedule, schedule, sizeof(schedule));
        c->retry.nschedule = sizeof(schedule) / sizeof(schedule[0]);
    }
    if (!c->retry.max_attempts)
        c->retry.max_attempts = (unsigned)c->retry.nschedule + 1;
    if (!c->metrics.listen && (!(c->metrics.listen = strdup("127.0.0.1:9465")) ||
                               !(c->metrics.host = strdup("127.0.0.1"))))
        return oom(x, root);
    if (!c->ehlo_name) {
        /* What the relay sees in EHLO: this host's name unless told, and
         * only a fully qualified one (Exim and OpenSMTPD refuse "EHLO vm"). */
        if (config_host_ehlo_name(host, sizeof(host), why, sizeof(why)) != 0)
            return cfg_error(x, line, "ehlo_name: not set, and %s: set ehlo_name", why);
        if (!(c->ehlo_name = strdup(host)))
            return oom(x, root);
    }
    /* A state record that expires while its job may still be retried could
     * let a crash between the final dot and the ack become a duplicate. */
    if (c->redis.state_ttl < c->retry.max_age) {
        if (!cfg_map_get(x, redis, "state_ttl", &line))
            cfg_map_get(x, retry, "max_age", &line);
        return cfg_error(x, line,
                         "redis.state_ttl: %u seconds is shorter than retry.max_age (%u): state "
                         "records must outlive a job's retries",
                         c->redis.state_ttl, c->retry.max_age);
    }
    for (i = 0; i < c->nrelays; i++) {
        if ((uint64_t)c->redis.claim_min_idle_ms <
            (uint64_t)c->relays[i].timeouts.data_done * 1000) {
            line = cfg_line(redis);
            cfg_map_get(x, redis, "claim_min_idle_ms", &line);
            cfg_warn(x, line,
                     "redis.claim_min_idle_ms: %u ms is below relay \"%s\"'s data_done timeout "
                     "(%u s): another consumer could claim a job still in flight",
                     c->redis.claim_min_idle_ms, c->relays[i].name,
                     c->relays[i].timeouts.data_done);
            break;
        }
    }
    return 0;
}

int cfg_schema_root(struct cfg *x, yaml_node_t *root)
{
    defaults(x->c);
    if (cfg_walk_map(x, root, "", cfg_line(root), root_fields,
                     sizeof(root_fields) / sizeof(root_fields[0]), x->c) != 0)
        return -1;
    return root_rules(x, root);
}
