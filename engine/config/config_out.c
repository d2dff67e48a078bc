/*
 * config_out: what the configuration hands to others. config_dump() writes
 * the effective configuration for `ringmail check-config --dump` through
 * libyaml's emitter (so quoting is YAML's, not ours) in a form that loads
 * again; the adapters fill the structs that tls and pool take.
 *
 * Nothing secret is written: a password from the Redis URL becomes
 * "REDACTED", and password files were never read.
 */
#include <stdio.h>
#include <string.h>

#include "config_internal.h"
#include "pool.h"
#include "tls.h"

struct emit {
    yaml_emitter_t e;
    int ok;
};

/* After the first failure the rest is dropped; the emitter owns (and frees)
 * every event handed to it, even one it fails on. */
static void event(struct emit *m, yaml_event_t *ev, int made)
{
    if (!made)
        m->ok = 0;
    else if (!m->ok)
        yaml_event_delete(ev);
    else if (!yaml_emitter_emit(&m->e, ev))
        m->ok = 0;
}

/* quoted: strings always are, so that "1.2" or "true" stay strings. */
static void scalar(struct emit *m, const char *s, int quoted)
{
    yaml_event_t ev;
    event(m, &ev,
          yaml_scalar_event_initialize(
              &ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), !quoted, quoted,
              quoted ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_PLAIN_SCALAR_STYLE));
}

static void map_start(struct emit *m, const char *key)
{
    yaml_event_t ev;
    if (key)
        scalar(m, key, 0);
    event(m, &ev,
          yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE));
}

static void map_end(struct emit *m)
{
    yaml_event_t ev;
    event(m, &ev, yaml_mapping_end_event_initialize(&ev));
}

static void seq_start(struct emit *m, const char *key, int flow)
{
    yaml_event_t ev;
    scalar(m, key, 0);
    event(m, &ev,
          yaml_sequence_start_event_initialize(
              &ev, NULL, NULL, 1, flow ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE));
}

static void seq_end(struct emit *m)
{
    yaml_event_t ev;
    event(m, &ev, yaml_sequence_end_event_initialize(&ev));
}

/* Unset strings are written as "", which loads as unset. */
static void kv_str(struct emit *m, const char *key, const char *val)
{
    scalar(m, key, 0);
    scalar(m, val ? val : "", 1);
}

static void kv_num(struct emit *m, const char *key, unsigned long long v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%llu", v);
    scalar(m, key, 0);
    scalar(m, buf, 0);
}

static void kv_bool(struct emit *m, const char *key, int v)
{
    scalar(m, key, 0);
    scalar(m, v ? "true" : "false", 0);
}

/* Percent-encode what a URL's user part cannot hold as is. */
static void pct_encode(char *out, size_t len, const char *s)
{
    size_t o = 0;
    for (; *s && o + 4 < len; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            strchr("-._~", ch))
            out[o++] = (char)ch;
        else
            o += (size_t)snprintf(out + o, len - o, "%%%02X", ch);
    }
    out[o] = '\0';
}

/* The URL rebuilt from its parts, with the password redacted. */
static void redacted_url(const struct config_redis *r, char *out, size_t len)
{
    char user[256] = "", auth[300] = "";

    if (r->user)
        pct_encode(user, sizeof(user), r->user);
    if (r->user || r->password)
        snprintf(auth, sizeof(auth), "%s%s@", user, r->password ? ":REDACTED" : "");
    if (r->unix_path && r->db)
        snprintf(out, len, "unix://%s%s?db=%u", auth, r->unix_path, r->db);
    else if (r->unix_path)
        snprintf(out, len, "unix://%s%s", auth, r->unix_path);
    else
        snprintf(out, len, strchr(r->host, ':') ? "redis://%s[%s]:%u/%u" : "redis://%s%s:%u/%u",
                 auth, r->host, r->port, r->db);
}

static void dump_redis(struct emit *m, const struct config_redis *r)
{
    char url[1024];

    redacted_url(r, url, sizeof(url));
    map_start(m, "redis");
    kv_str(m, "url", url);
    kv_str(m, "password_file", r->password_file);
    kv_str(m, "stream", r->stream);
    kv_str(m, "group", r->group);
    kv_str(m, "events", r->events);
    kv_str(m, "dead", r->dead);
    kv_str(m, "retry", r->retry);
    kv_str(m, "state_prefix", r->state_prefix);
    kv_num(m, "events_maxlen", r->events_maxlen);
    kv_num(m, "dead_maxlen", r->dead_maxlen);
    kv_num(m, "outcome_stuck_max", r->outcome_stuck_max);
    kv_num(m, "batch", r->batch);
    kv_num(m, "block_ms", r->block_ms);
    kv_num(m, "claim_min_idle_ms", r->claim_min_idle_ms);
    kv_num(m, "claim_interval_ms", r->claim_interval_ms);
    kv_num(m, "command_timeout_ms", r->command_timeout_ms);
    kv_num(m, "state_ttl", r->state_ttl);
    map_end(m);
}

static void dump_relay(struct emit *m, const struct config_relay *r)
{
    const struct config_timeouts *t = &r->timeouts;
    size_t i;

    map_start(m, NULL);
    kv_str(m, "name", r->name);
    kv_str(m, "host", r->host);
    kv_num(m, "port", r->port);
    scalar(m, "tls", 0);
    scalar(m, config_tls_mode_name(r->tls), 0);
    kv_str(m, "min_tls", r->min_tls);
    kv_str(m, "servername", r->servername);
    kv_str(m, "ca_file", r->ca_file);
    kv_str(m, "ca_dir", r->ca_dir);
    kv_str(m, "tls13_ciphersuites", r->tls13_ciphersuites);
    kv_str(m, "client_cert", r->client_cert);
    kv_str(m, "client_key", r->client_key);
    seq_start(m, "pins", 1);
    for (i = 0; i < r->npins; i++)
        scalar(m, r->pins[i], 1);
    seq_end(m);
    kv_bool(m, "insecure_no_verify", r->insecure_no_verify);
    kv_str(m, "username", r->username);
    kv_str(m, "password_file", r->password_file);
    kv_num(m, "connections", r->connections);
    kv_num(m, "max_messages_per_connection", r->max_messages_per_connection);
    kv_num(m, "max_bytes_per_connection", r->max_bytes_per_connection);
    kv_num(m, "max_connection_age", r->max_connection_age);
    kv_num(m, "keepalive", r->keepalive);
    kv_bool(m, "pipeline_body", r->pipeline_body);
    kv_num(m, "pipeline_depth", r->pipeline_depth);
    map_start(m, "timeouts");
    kv_num(m, "connect", t->connect);
    kv_num(m, "greeting", t->greeting);
    kv_num(m, "command", t->command);
    kv_num(m, "tls", t->tls);
    kv_num(m, "data_block", t->data_block);
    kv_num(m, "data_done", t->data_done);
    kv_num(m, "quit", t->quit);
    map_end(m);
    map_end(m);
}

int config_dump(const struct config *c, FILE *f)
{
    struct emit m = {.ok = 1};
    yaml_event_t ev;
    char jitter[32];
    size_t i;

    if (!yaml_emitter_initialize(&m.e))
        return -1;
    yaml_emitter_set_output_file(&m.e, f);
    yaml_emitter_set_unicode(&m.e, 1);
    yaml_emitter_set_width(&m.e, 100);
    event(&m, &ev, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING));
    event(&m, &ev, yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1));
    map_start(&m, NULL);
    if (c->workers) {
        kv_num(&m, "workers", c->workers);
    } else {
        scalar(&m, "workers", 0);
        scalar(&m, "auto", 0);
    }
    kv_str(&m, "ehlo_name", c->ehlo_name);
    kv_num(&m, "shutdown_timeout", c->shutdown_timeout);
    scalar(&m, "log_level", 0);
    scalar(&m, log_level_name(c->log_level), 0);
    dump_redis(&m, &c->redis);
    map_start(&m, "metrics");
    kv_str(&m, "listen", c->metrics.listen);
    kv_bool(&m, "per_connection", c->metrics.per_connection);
    map_end(&m);
    seq_start(&m, "relays", 0);
    for (i = 0; i < c->nrelays; i++)
        dump_relay(&m, &c->relays[i]);
    seq_end(&m);
    map_start(&m, "retry");
    seq_start(&m, "schedule", 1);
    for (i = 0; i < c->retry.nschedule; i++) {
        char n[16];
        snprintf(n, sizeof(n), "%u", c->retry.schedule[i]);
        scalar(&m, n, 0);
    }
    seq_end(&m);
    kv_num(&m, "max_age", c->retry.max_age);
    kv_num(&m, "max_attempts", c->retry.max_attempts);
    snprintf(jitter, sizeof(jitter), "%g", c->retry.jitter);
    scalar(&m, "jitter", 0);
    scalar(&m, jitter, 0);
    map_end(&m);
    map_start(&m, "job");
    kv_num(&m, "max_fields", c->job.max_fields);
    kv_num(&m, "max_bytes", c->job.max_bytes);
    map_end(&m);
    map_end(&m);
    event(&m, &ev, yaml_document_end_event_initialize(&ev, 1));
    event(&m, &ev, yaml_stream_end_event_initialize(&ev));
    if (m.ok && !yaml_emitter_flush(&m.e))
        m.ok = 0;
    yaml_emitter_delete(&m.e);
    return m.ok && !ferror(f) ? 0 : -1;
}

void config_relay_tls_policy(const struct config_relay *r, struct tls_policy *out)
{
    memset(out, 0, sizeof(*out));
    out->servername = r->servername;
    out->min_version = r->min_tls;
    out->tls13_ciphersuites = r->tls13_ciphersuites;
    out->ca_file = r->ca_file;
    out->ca_dir = r->ca_dir;
    out->insecure_no_verify = r->insecure_no_verify;
    out->cert_file = r->client_cert;
    out->key_file = r->client_key;
    out->pins = (const char *const *)r->pins;
    out->npins = r->npins;
}

void config_relay_pool_config(const struct config *c, const struct config_relay *r,
                              struct pool_config *out)
{
    const struct config_timeouts *t = &r->timeouts;

    /* The schema caps every value so that these products fit. */
    memset(out, 0, sizeof(*out));
    out->name = r->name;
    out->smtp.ehlo_name = c->ehlo_name;
    out->smtp.pipeline_body = r->pipeline_body;
    out->smtp.pipeline_depth = r->pipeline_depth;
    out->smtp.tls_mode =
        r->tls == CONFIG_TLS_IMPLICIT ? SMTP_CLIENT_IMPLICIT_TLS : SMTP_CLIENT_STARTTLS;
    out->timeouts.connect_ms = t->connect * 1000u;
    out->timeouts.greeting_ms = t->greeting * 1000u;
    out->timeouts.command_ms = t->command * 1000u;
    out->timeouts.tls_ms = t->tls * 1000u;
    out->timeouts.data_block_ms = t->data_block * 1000u;
    out->timeouts.data_done_ms = t->data_done * 1000u;
    out->timeouts.quit_ms = t->quit * 1000u;
    out->connections = r->connections;
    out->max_messages_per_conn = r->max_messages_per_connection;
    out->max_bytes_per_conn = r->max_bytes_per_connection;
    out->max_age_ms = r->max_connection_age * 1000u;
    out->keepalive_ms = r->keepalive * 1000u;
}
