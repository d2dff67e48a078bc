/*
 * test_config: the configuration file. The example loads with every
 * value right, defaults fill what is left out, every mistake is refused with
 * a message that names the line and the key, Redis URLs parse in each form,
 * secrets stay out of the dump, and deploy/ringmail.yaml loads cleanly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "pool.h"
#include "tls.h"

#ifndef RINGMAIL_SOURCE_DIR
#error "RINGMAIL_SOURCE_DIR must name the source tree (tests/CMakeLists.txt sets it)"
#endif

static struct config *load(const char *yaml, char *err, size_t errlen)
{
    return config_load_string(yaml, strlen(yaml), "ringmail.yaml", err, errlen);
}

/* A readable file for the keys whose files are checked at load. */
static char readable[64];

#define TEST_HOSTNAME "host.test.example"

static const char full[] =
    "workers: 8\n"
    "ehlo_name: mta1.example.com\n"
    "shutdown_timeout: 45\n"
    "log_level: warn\n"
    "redis:\n"
    "  url: redis://10.0.0.5:6380/3\n"
    "  stream: s:jobs\n"
    "  group: g\n"
    "  events: s:events\n"
    "  dead: s:dead\n"
    "  retry: s:retry\n"
    "  state_prefix: \"s:state:\"\n"
    "  events_maxlen: 5000\n"
    "  batch: 64\n"
    "  block_ms: 2000\n"
    "  claim_min_idle_ms: 900000\n"
    "  command_timeout_ms: 3000\n"
    "  state_ttl: 864000\n"
    "metrics:\n"
    "  listen: \"[::1]:9999\"\n"
    "  per_connection: false\n"
    "relays:\n"
    "  - name: default\n"
    "    host: smtp.example.com\n"
    "    port: 587\n"
    "    tls: starttls\n"
    "    min_tls: \"1.2\"\n"
    "    ca_file: %s\n"
    "    username: \"mailer\"\n"
    "    password_file: %s\n"
    "    connections: 16\n"
    "    max_messages_per_connection: 1000\n"
    "  - name: internal\n"
    "    host: 10.1.2.3\n"
    "    tls: implicit\n"
    "    min_tls: 1.3\n"
    "    servername: relay.internal\n"
    "    ca_dir: /\n"
    "    tls13_ciphersuites: TLS_AES_256_GCM_SHA384\n"
    "    client_cert: %s\n"
    "    client_key: %s\n"
    "    pins:\n"
    "      - sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
    "      - 000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f\n"
    "    insecure_no_verify: true\n"
    "    max_bytes_per_connection: 10000000000\n"
    "    max_connection_age: 0\n"
    "    keepalive: 30\n"
    "    pipeline_body: false\n"
    "    pipeline_depth: 3\n"
    "    timeouts: {connect: 5, greeting: 6, command: 7, tls: 8, data_block: 9, data_done: 10,"
    " quit: 2}\n"
    "retry:\n"
    "  schedule: [60, 300, 1800, 7200, 21600]\n"
    "  max_age: 172800\n"
    "  max_attempts: 4\n"
    "  jitter: 0.5\n"
    "job:\n"
    "  max_fields: 500\n"
    "  max_bytes: 2048\n";

static void test_full(void)
{
    char yaml[4096], err[CONFIG_ERR_MAX] = "";
    const struct config_relay *r;
    struct config *c;

    snprintf(yaml, sizeof(yaml), full, readable, readable, readable, readable);
    c = load(yaml, err, sizeof(err));
    CHECK(c != NULL);
    if (!c) {
        fprintf(stderr, "full example: %s\n", err);
        return;
    }
    CHECK_INT(c->workers, 8);
    CHECK_INT(config_workers_effective(c), 8);
    CHECK_STR(c->ehlo_name, "mta1.example.com");
    CHECK_INT(c->shutdown_timeout, 45);
    CHECK_INT(c->log_level, LOG_WARN);
    CHECK_STR(c->redis.host, "10.0.0.5");
    CHECK_INT(c->redis.port, 6380);
    CHECK_INT(c->redis.db, 3);
    CHECK(c->redis.unix_path == NULL && c->redis.user == NULL && c->redis.password == NULL);
    CHECK_STR(c->redis.stream, "s:jobs");
    CHECK_STR(c->redis.group, "g");
    CHECK_STR(c->redis.events, "s:events");
    CHECK_STR(c->redis.dead, "s:dead");
    CHECK_STR(c->redis.retry, "s:retry");
    CHECK_STR(c->redis.state_prefix, "s:state:");
    CHECK_INT(c->redis.events_maxlen, 5000);
    CHECK_INT(c->redis.batch, 64);
    CHECK_INT(c->redis.block_ms, 2000);
    CHECK_INT(c->redis.claim_min_idle_ms, 900000);
    CHECK_INT(c->redis.command_timeout_ms, 3000);
    CHECK_INT(c->redis.state_ttl, 864000);
    CHECK_INT(c->job.max_fields, 500);
    CHECK_INT(c->job.max_bytes, 2048);
    CHECK_STR(c->metrics.listen, "[::1]:9999");
    CHECK_STR(c->metrics.host, "::1");
    CHECK_INT(c->metrics.port, 9999);
    CHECK_INT(c->metrics.per_connection, 0);
    CHECK_INT(c->nrelays, 2);
    r = config_relay_find(c, "default");
    CHECK(r == &c->relays[0]);
    if (r) {
        CHECK_STR(r->host, "smtp.example.com");
        CHECK_INT(r->port, 587);
        CHECK_INT(r->tls, CONFIG_TLS_STARTTLS);
        CHECK_STR(r->min_tls, "1.2");
        CHECK_STR(r->servername, "smtp.example.com");
        CHECK_STR(r->ca_file, readable);
        CHECK(r->ca_dir == NULL && r->client_cert == NULL && r->npins == 0);
        CHECK_STR(r->username, "mailer");
        CHECK_STR(r->password_file, readable);
        CHECK_INT(r->connections, 16);
        CHECK_INT(r->max_messages_per_connection, 1000);
        CHECK_INT(r->insecure_no_verify, 0);
        CHECK_INT(r->line, 23);
    }
    r = config_relay_find(c, "internal");
    CHECK(r == &c->relays[1]);
    if (r) {
        CHECK_INT(r->port, 465);
        CHECK_INT(r->tls, CONFIG_TLS_IMPLICIT);
        CHECK_STR(r->min_tls, "1.3");
        CHECK_STR(r->servername, "relay.internal");
        CHECK_STR(r->ca_dir, "/");
        CHECK_STR(r->tls13_ciphersuites, "TLS_AES_256_GCM_SHA384");
        CHECK_STR(r->client_cert, readable);
        CHECK_STR(r->client_key, readable);
        CHECK_INT(r->npins, 2);
        if (r->npins == 2)
            CHECK_STR(r->pins[0], "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        CHECK_INT(r->insecure_no_verify, 1);
        CHECK(r->max_bytes_per_connection == 10000000000ull);
        CHECK_INT(r->max_connection_age, 0);
        CHECK_INT(r->keepalive, 30);
        CHECK_INT(r->pipeline_body, 0);
        CHECK_INT(r->pipeline_depth, 3);
        CHECK_INT(r->timeouts.connect, 5);
        CHECK_INT(r->timeouts.greeting, 6);
        CHECK_INT(r->timeouts.command, 7);
        CHECK_INT(r->timeouts.tls, 8);
        CHECK_INT(r->timeouts.data_block, 9);
        CHECK_INT(r->timeouts.data_done, 10);
        CHECK_INT(r->timeouts.quit, 2);
        CHECK(r->username == NULL && r->password_file == NULL);
    }
    CHECK(config_relay_find(c, "nope") == NULL);
    CHECK_INT(c->retry.nschedule, 5);
    if (c->retry.nschedule == 5) {
        CHECK_INT(c->retry.schedule[0], 60);
        CHECK_INT(c->retry.schedule[4], 21600);
    }
    CHECK_INT(c->retry.max_age, 172800);
    CHECK_INT(c->retry.max_attempts, 4);
    CHECK(c->retry.jitter == 0.5);
    /* Verification off with pins: the pins are the trust; only the unused
     * ca_dir is worth a word. */
    CHECK_INT(c->nwarnings, 1);
    if (c->nwarnings == 1)
        CHECK_STR(c->warnings[0], "ringmail.yaml:45: relays[1]: ca_file and ca_dir are unused "
                                  "while insecure_no_verify is true");
    config_free(c);
}

static const char minimal[] = "redis:\n"
                              "  url: redis://127.0.0.1\n"
                              "relays:\n"
                              "  - name: a\n"
                              "    host: h.example\n";

static void test_defaults(void)
{
    char err[CONFIG_ERR_MAX] = "";
    struct config *c = load(minimal, err, sizeof(err));
    const struct config_relay *r;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    CHECK(c != NULL);
    if (!c) {
        fprintf(stderr, "minimal: %s\n", err);
        return;
    }
    CHECK_INT(c->workers, 0);
    CHECK_INT(config_workers_effective(c), cpus > 0 ? cpus : 1);
    CHECK_STR(c->ehlo_name, TEST_HOSTNAME);
    CHECK_INT(c->shutdown_timeout, 30);
    CHECK_INT(c->log_level, LOG_INFO);
    CHECK_STR(c->redis.host, "127.0.0.1");
    CHECK_INT(c->redis.port, 6379);
    CHECK_INT(c->redis.db, 0);
    CHECK(c->redis.password_file == NULL);
    CHECK_STR(c->redis.stream, "ringmail:jobs");
    CHECK_STR(c->redis.group, "ringmail");
    CHECK_STR(c->redis.events, "ringmail:events");
    CHECK_STR(c->redis.dead, "ringmail:dead");
    CHECK_STR(c->redis.retry, "ringmail:retry");
    CHECK_STR(c->redis.state_prefix, "ringmail:state:");
    CHECK_INT(c->redis.events_maxlen, 1000000);
    CHECK_INT(c->redis.batch, 256);
    CHECK_INT(c->redis.block_ms, 1000);
    CHECK_INT(c->redis.claim_min_idle_ms, 600000);
    CHECK_INT(c->redis.claim_interval_ms, 5000);
    CHECK_INT(c->redis.command_timeout_ms, 5000);
    CHECK_INT(c->redis.state_ttl, 604800);
    CHECK_INT(c->redis.dead_maxlen, 100000);
    CHECK_INT(c->redis.outcome_stuck_max, 100);
    CHECK_INT(c->job.max_fields, 2000);
    CHECK_INT(c->job.max_bytes, 67108864);
    CHECK_STR(c->metrics.listen, "127.0.0.1:9465");
    CHECK_STR(c->metrics.host, "127.0.0.1");
    CHECK_INT(c->metrics.port, 9465);
    CHECK_INT(c->metrics.per_connection, 1);
    CHECK_INT(c->nrelays, 1);
    r = &c->relays[0];
    CHECK_STR(r->name, "a");
    CHECK_INT(r->port, 587);
    CHECK_INT(r->tls, CONFIG_TLS_STARTTLS);
    CHECK_STR(r->min_tls, "1.2");
    CHECK_STR(r->servername, "h.example");
    CHECK(r->ca_file == NULL && r->ca_dir == NULL && r->tls13_ciphersuites == NULL);
    CHECK(r->client_cert == NULL && r->client_key == NULL && r->npins == 0);
    CHECK(r->username == NULL && r->password_file == NULL);
    CHECK_INT(r->insecure_no_verify, 0);
    CHECK_INT(r->connections, 16);
    CHECK_INT(r->max_messages_per_connection, 1000);
    CHECK_INT(r->max_bytes_per_connection, 0);
    CHECK_INT(r->max_connection_age, 3600);
    CHECK_INT(r->keepalive, 60);
    CHECK_INT(r->pipeline_body, 1);
    CHECK_INT(r->pipeline_depth, 8);
    CHECK_INT(r->timeouts.connect, 30);
    CHECK_INT(r->timeouts.greeting, 300);
    CHECK_INT(r->timeouts.command, 300);
    CHECK_INT(r->timeouts.tls, 60);
    CHECK_INT(r->timeouts.data_block, 180);
    CHECK_INT(r->timeouts.data_done, 600);
    CHECK_INT(r->timeouts.quit, 10);
    CHECK_INT(c->retry.nschedule, 5);
    CHECK_INT(c->retry.max_age, 172800);
    CHECK_INT(c->retry.max_attempts, 6);
    CHECK(c->retry.jitter == 0.2);
    CHECK_INT(c->nwarnings, 0);
    config_free(c);

    /* Empty values keep defaults; max_attempts follows the schedule. */
    c = load("workers: ~\n"
             "redis: {url: \"redis://r\"}\n"
             "metrics:\n"
             "relays: [{name: x, host: h, tls: implicit, timeouts: {}}]\n"
             "retry: {schedule: [10, 5]}\n",
             err, sizeof(err));
    CHECK(c != NULL);
    if (c) {
        CHECK_INT(c->workers, 0);
        CHECK_INT(c->relays[0].port, 465);
        CHECK_INT(c->relays[0].timeouts.data_done, 600);
        CHECK_INT(c->retry.max_attempts, 3);
        CHECK_INT(c->retry.schedule[1], 5);
        CHECK_INT(c->metrics.port, 9465);
    } else {
        fprintf(stderr, "empty values: %s\n", err);
    }
    config_free(c);
}

struct bad {
    const char *yaml;
    const char *err;
};

/* Each mistake, with its exact message. */
static const struct bad bads[] = {
    {"redis:\n  url: redis://h\nrelays:\n  - name: a\n    host: h\n    port: smtp\n",
     "ringmail.yaml:6: relays[0].port: expected an integer from 1 to 65535, got \"smtp\""},
    {"redis:\n  url: redis://h\nrelays:\n  - name: a\n    host: h\n    port: 70000\n",
     "ringmail.yaml:6: relays[0].port: expected an integer from 1 to 65535, got \"70000\""},
    {"redis:\n  url: redis://h\nrelays:\n  - name: a\n    host: h\n    port: \"587\"\n",
     "ringmail.yaml:6: relays[0].port: expected an integer from 1 to 65535, got the string "
     "\"587\""},
    {"workers: 2\n\nredis:\n  stream: x\nrelays:\n  - {name: a, host: h}\n",
     "ringmail.yaml:3: redis: missing required key \"url\""},
    {"redis:\nrelays:\n  - {name: a, host: h}\n",
     "ringmail.yaml:1: redis: missing required key \"url\""},
    {"relays:\n  - {name: a, host: h}\n", "ringmail.yaml:1: missing required key \"redis\""},
    {"", "ringmail.yaml:1: missing required key \"redis\""},
    {"redis: {url: redis://h}\n", "ringmail.yaml:1: missing required key \"relays\""},
    {"redis: {url: redis://h}\nrelays: []\n",
     "ringmail.yaml:2: relays: expected at least one relay"},
    {"redis: {url: redis://h}\nrelays:\n", "ringmail.yaml:2: relays: expected at least one relay"},
    {"redis: {url: redis://h}\nrelays: {name: a}\n",
     "ringmail.yaml:2: relays: expected a list of relays, got a mapping"},
    {"redis: {url: redis://h}\nrelays:\n  - host: h\n",
     "ringmail.yaml:3: relays[0]: missing required key \"name\""},
    {"redis: {url: redis://h}\nrelays:\n  - name: a\n    host: h\n  - name: b\n    host: h\n    "
     "tls: none\n",
     "ringmail.yaml:7: relays[1].tls: expected starttls or implicit, got \"none\""},
    {"redis: {url: redis://h}\nrelays:\n  - name: a\n    host: h\n    conections: 4\n",
     "ringmail.yaml:5: unknown key \"conections\" in relays[0] (did you mean \"connections\"?)"},
    {"redis: {url: redis://h}\nrelays: [{name: a, host: h}]\nworkrs: 3\n",
     "ringmail.yaml:3: unknown key \"workrs\" (did you mean \"workers\"?)"},
    {"redis: {url: redis://h}\nrelays: [{name: a, host: h}]\nfrobnicate: 3\n",
     "ringmail.yaml:3: unknown key \"frobnicate\""},
    {"redis: {url: redis://h}\nrelays:\n  - name: default\n    host: h\n  - name: default\n"
     "    host: h2\n",
     "ringmail.yaml:5: relays[1].name: duplicate relay name \"default\""},
    {"redis: {url: redis://h}\nrelays:\n  - name: a\n    host: h\n    host: h2\n",
     "ringmail.yaml:5: duplicate key \"host\" in relays[0]"},
    {"redis: {url: redis://h}\nrelays:\n  - name: a\n    host: h\n    ca_file: "
     "/nonexistent/x.pem\n",
     "ringmail.yaml:5: relays[0].ca_file: cannot read /nonexistent/x.pem: No such file or "
     "directory"},
    {"redis: {url: redis://h}\nrelays:\n  - name: a\n    host: h\n    ca_file: /\n",
     "ringmail.yaml:5: relays[0].ca_file: cannot read /: Is a directory"},
    {"redis: {url: redis://h}\nrelays:\n  - name: a\n    host: h\n    ca_dir: /dev/null\n",
     "ringmail.yaml:5: relays[0].ca_dir: cannot read /dev/null: Not a directory"},
    {"redis: {url: redis://h, password_file: /nonexistent/pw}\nrelays: [{name: a, host: h}]\n",
     "ringmail.yaml:1: redis.password_file: cannot read /nonexistent/pw: No such file or "
     "directory"},
    {"redis: {url: redis://h}\nrelays:\n  - name: a\n    host: h\n    min_tls: \"1.1\"\n",
     "ringmail.yaml:5: relays[0].min_tls: expected \"1.2\" or \"1.3\", got \"1.1\""},
    {"redis: {url: redis://h}\nrelays:\n  - name: a\n    host: h\n    username: u\n",
     "ringmail.yaml:5: relays[0].username: requires password_file"},
    {"redis: {url: redis://h}\nrelays:\n  - name: a\n    host: h\n    client_key: /dev/null\n",
     "ringmail.yaml:5: relays[0].client_key: requires client_cert"},
    {"redis: {url: redis://h}\nrelays:\n  - name: a\n    host: h\n    insecure_no_verify: yes\n",
     "ringmail.yaml:5: relays[0].insecure_no_verify: expected true or false, got \"yes\" (YAML "
     "1.2: yes/no/on/off are not booleans)"},
    {"redis: {url: redis://h}\nrelays:\n  - name: a\n    host: h\n    insecure_no_verify: 1\n",
     "ringmail.yaml:5: relays[0].insecure_no_verify: expected true or false, got \"1\""},
    {"redis: {url: redis://h}\nrelays:\n  - name: a\n    host: h\n    connections: -1\n",
     "ringmail.yaml:5: relays[0].connections: expected an integer from 1 to 10000, got \"-1\""},
    {"redis: {url: redis://h}\nrelays:\n  - name: a\n    host: h\n    connections: 2.5\n",
     "ringmail.yaml:5: relays[0].connections: expected an integer from 1 to 10000, got \"2.5\""},
    {"redis: {url: redis://h}\nrelays:\n  - name: a\n    host: h\n    connections: 0\n",
     "ringmail.yaml:5: relays[0].connections: expected an integer from 1 to 10000, got \"0\""},
    {"redis: {url: redis://h}\nrelays:\n  - name: a\n    host: h\n    timeouts:\n      data: 5\n",
     "ringmail.yaml:6: unknown key \"data\" in relays[0].timeouts"},
    {"redis: {url: redis://h}\nrelays:\n  - name: a\n    host: h\n    timeouts:\n      connect: "
     "0\n",
     "ringmail.yaml:6: relays[0].timeouts.connect: expected an integer from 1 to 86400, got \"0\""},
    {"redis: {url: redis://h}\nrelays:\n  - name: a\n    host: h\n    pins: [abc]\n",
     "ringmail.yaml:5: relays[0].pins[0]: expected an SPKI SHA-256 pin (44 base64 characters, "
     "optionally after sha256//, or 64 hex digits), got \"abc\""},
    {"redis: {url: redis://h}\nrelays:\n  - name: a\n    host: h\n    pins: abc\n",
     "ringmail.yaml:5: relays[0].pins: expected a list of SPKI SHA-256 pins, got \"abc\""},
    {"redis: {url: redis://h}\nrelays:\n  - name: a b\n    host: h\n",
     "ringmail.yaml:3: relays[0].name: expected a name of letters, digits, '.', '_' or '-', got "
     "\"a b\""},
    {"redis: {url: redis://h}\nrelays:\n  - name: \"\"\n    host: h\n",
     "ringmail.yaml:3: relays[0].name: a value is required"},
    {"redis: {url: redis://h}\nrelays:\n  - name: a\n    host:\n",
     "ringmail.yaml:4: relays[0].host: a value is required"},
    {"redis: {url: redis://h}\nrelays: [{name: a, host: h}]\nworkers: many\n",
     "ringmail.yaml:3: workers: expected auto or an integer from 1 to 1024, got \"many\""},
    {"redis: {url: redis://h}\nrelays: [{name: a, host: h}]\nworkers: 0\n",
     "ringmail.yaml:3: workers: expected auto or an integer from 1 to 1024, got \"0\""},
    {"redis: {url: redis://h}\nrelays: [{name: a, host: h}]\nlog_level: verbose\n",
     "ringmail.yaml:3: log_level: expected debug, info, warn or error, got \"verbose\""},
    {"redis: {url: redis://h}\nrelays: [{name: a, host: h}]\nehlo_name: \"not a name\"\n",
     "ringmail.yaml:3: ehlo_name: expected a domain or an address literal, got \"not a name\": "
     "EHLO name contains a character that is not allowed in a domain (letters, digits, '-' and "
     "'.'; no '_')"},
    /* What the SMTP client refuses, check-config refuses (smtp_syntax). */
    {"redis: {url: redis://h}\nrelays: [{name: a, host: h}]\nehlo_name: mail_1.example.com\n",
     "ringmail.yaml:3: ehlo_name: expected a domain or an address literal, got "
     "\"mail_1.example.com\": EHLO name contains a character that is not allowed in a domain "
     "(letters, digits, '-' and '.'; no '_')"},
    {"redis: {url: redis://h}\nrelays: [{name: a, host: h}]\nehlo_name: mail.example.com.\n",
     "ringmail.yaml:3: ehlo_name: expected a domain or an address literal, got "
     "\"mail.example.com.\": EHLO name has an empty label (a leading, trailing or doubled '.')"},
    {"redis: {url: redis://h}\nrelays: [{name: a, host: h}]\nehlo_name: \"[192.0.2.300]\"\n",
     "ringmail.yaml:3: ehlo_name: expected a domain or an address literal, got \"[192.0.2.300]\": "
     "EHLO name is not a valid address literal ([192.0.2.1] or [IPv6:2001:db8::1])"},
    {"redis: {url: redis://h}\nrelays: [{name: a, host: h}]\nretry:\n  schedule: []\n",
     "ringmail.yaml:4: retry.schedule: expected 1 to 100 delays in seconds"},
    {"redis: {url: redis://h}\nrelays: [{name: a, host: h}]\nretry:\n  schedule: [60, 0]\n",
     "ringmail.yaml:4: retry.schedule[1]: expected an integer from 1 to 2592000, got \"0\""},
    {"redis: {url: redis://h}\nrelays: [{name: a, host: h}]\nretry:\n  schedule: 60\n",
     "ringmail.yaml:4: retry.schedule: expected a list of delays in seconds, got \"60\""},
    {"redis: {url: redis://h}\nrelays: [{name: a, host: h}]\nretry:\n  jitter: 1.5\n",
     "ringmail.yaml:4: retry.jitter: expected a number from 0 to 1, got \"1.5\""},
    {"redis: {url: redis://h}\nrelays: [{name: a, host: h}]\nretry:\n  jitter: .nan\n",
     "ringmail.yaml:4: retry.jitter: expected a number from 0 to 1, got \".nan\""},
    {"redis: {url: redis://h}\nrelays: [{name: a, host: h}]\nmetrics:\n  listen: 9465\n",
     "ringmail.yaml:4: metrics.listen: expected HOST:PORT or [IPV6]:PORT, got \"9465\""},
    {"redis: {url: redis://h}\nrelays: [{name: a, host: h}]\nmetrics:\n  listen: \"::1:9465\"\n",
     "ringmail.yaml:4: metrics.listen: expected HOST:PORT or [IPV6]:PORT, got \"::1:9465\""},
    {"redis:\n  url: redis://h\n  claim_interval_ms: 50\nrelays: [{name: a, host: h}]\n",
     "ringmail.yaml:3: redis.claim_interval_ms: expected an integer from 100 to 3600000, got "
     "\"50\""},
    {"redis:\n  url: redis://h\n  block_ms: 5000\nrelays: [{name: a, host: h}]\n",
     "ringmail.yaml:3: redis.block_ms: 5000 must be below command_timeout_ms (5000), or every "
     "idle read would time out"},
    {"redis:\n  url: redis://h\n  state_ttl: 3600\nrelays: [{name: a, host: h}]\n",
     "ringmail.yaml:3: redis.state_ttl: 3600 seconds is shorter than retry.max_age (172800): "
     "state records must outlive a job's retries"},
    {"redis: {url: redis://h}\nrelays: [{name: a, host: h}]\njob:\n  max_fields: 3000\n",
     "ringmail.yaml:4: job.max_fields: expected an integer from 16 to 2990, got \"3000\""},
    {"redis: {url: redis://h}\nrelays: [{name: a, host: h}]\njob:\n  max_bytes: 10\n",
     "ringmail.yaml:4: job.max_bytes: expected an integer from 1024 to 9223372036854775807, got "
     "\"10\""},
    {"redis:\n  url: redis://h\n  outcome_stuck_max: 0\nrelays: [{name: a, host: h}]\n",
     "ringmail.yaml:3: redis.outcome_stuck_max: expected an integer from 1 to 1000000, got \"0\""},
    {"redis:\n  url: redis://h\n  batch: [1]\nrelays: [{name: a, host: h}]\n",
     "ringmail.yaml:3: redis.batch: expected an integer from 1 to 100000, got a list"},
    {"redis: redis://h\nrelays: [{name: a, host: h}]\n",
     "ringmail.yaml:1: redis: expected a mapping of keys, got \"redis://h\""},
    {"- a\n- b\n", "ringmail.yaml:1: expected a mapping of keys, got a list"},
    {"redis: {url: redis://h}\nrelays: [{name: a, host: h}]\n---\nworkers: 2\n",
     "ringmail.yaml:3: only one YAML document is allowed in a configuration file"},
    {"redis: {url: redis://h}\nrelays: [{name: a, host: h}]\n? [a]\n: b\n",
     "ringmail.yaml:3: keys must be plain names, got a list"},
    /* libyaml's own words for syntax, with line and column. */
    {"redis:\n  url: redis://h\n relays: x\n",
     "ringmail.yaml:3:2: did not find expected key (while parsing a block mapping at line 1)"},
    {"redis: url: redis://h\n",
     "ringmail.yaml:1:11: mapping values are not allowed in this context"},
    {"redis:\n\turl: x\n",
     "ringmail.yaml:2:1: found character that cannot start any token (while scanning for the next "
     "token at line 2)"},
    {"redis: {url: redis://h\n",
     "ringmail.yaml:2:1: did not find expected ',' or '}' (while parsing a flow mapping at line "
     "1)"},
    {"redis: *nope\n", "ringmail.yaml:1:8: found undefined alias"},
};

static void test_errors(void)
{
    size_t i;
    for (i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
        char err[CONFIG_ERR_MAX] = "";
        struct config *c = load(bads[i].yaml, err, sizeof(err));
        CHECK(c == NULL);
        if (strcmp(err, bads[i].err) != 0)
            fprintf(stderr, "case %zu:\n  yaml: %s\n", i, bads[i].yaml);
        CHECK_STR(err, bads[i].err);
        config_free(c);
    }
}

struct url_case {
    const char *url;
    const char *host, *unix_path, *user, *password;
    unsigned port, db;
    const char *err; /* NULL: loads */
};

static const struct url_case urls[] = {
    {"redis://h:7000", "h", NULL, NULL, NULL, 7000, 0, NULL},
    {"redis://h", "h", NULL, NULL, NULL, 6379, 0, NULL},
    {"redis://:pw@h:7000/2", "h", NULL, NULL, "pw", 7000, 2, NULL},
    {"redis://user:pw@h", "h", NULL, "user", "pw", 6379, 0, NULL},
    {"redis://u%40x:p%3Aw%2F@h/", "h", NULL, "u@x", "p:w/", 6379, 0, NULL},
    {"redis://:a@b@h", "h", NULL, NULL, "a@b", 6379, 0, NULL},
    {"redis://:se/cr?e#t@h:1/5", "h", NULL, NULL, "se/cr?e#t", 1, 5, NULL},
    {"unix://u:p@w@/r.sock", NULL, "/r.sock", "u", "p@w", 0, 0, NULL},
    {"redis://[::1]:6380/1", "::1", NULL, NULL, NULL, 6380, 1, NULL},
    {"redis://[::1]", "::1", NULL, NULL, NULL, 6379, 0, NULL},
    {"unix:///run/redis/redis.sock", NULL, "/run/redis/redis.sock", NULL, NULL, 0, 0, NULL},
    {"unix:///run/r.sock?db=4", NULL, "/run/r.sock", NULL, NULL, 0, 4, NULL},
    {"unix://:pw@/run/r.sock", NULL, "/run/r.sock", NULL, "pw", 0, 0, NULL},
    {"http://h", NULL, NULL, NULL, NULL, 0, 0,
     "ringmail.yaml:1: redis.url: unsupported scheme \"http\" (expected redis:// or unix://)"},
    {"rediss://h", NULL, NULL, NULL, NULL, 0, 0,
     "ringmail.yaml:1: redis.url: unsupported scheme \"rediss\" (expected redis:// or unix://)"},
    {"127.0.0.1:6379", NULL, NULL, NULL, NULL, 0, 0,
     "ringmail.yaml:1: redis.url: expected redis://HOST[:PORT][/DB] or unix:///PATH/TO/SOCKET"},
    {"redis://h:0", NULL, NULL, NULL, NULL, 0, 0,
     "ringmail.yaml:1: redis.url: expected a port from 1 to 65535, got \"0\""},
    {"redis://:secret@h:http", NULL, NULL, NULL, NULL, 0, 0,
     "ringmail.yaml:1: redis.url: expected a port from 1 to 65535, got \"http\""},
    {"redis://h:99999", NULL, NULL, NULL, NULL, 0, 0,
     "ringmail.yaml:1: redis.url: expected a port from 1 to 65535, got \"99999\""},
    {"redis://h/x", NULL, NULL, NULL, NULL, 0, 0,
     "ringmail.yaml:1: redis.url: expected a database number, got \"x\""},
    {"redis://h/99999999999999999999999", NULL, NULL, NULL, NULL, 0, 0,
     "ringmail.yaml:1: redis.url: expected a database number, got \"99999999999999999999\""},
    {"redis://h:1/2?x", NULL, NULL, NULL, NULL, 0, 0,
     "ringmail.yaml:1: redis.url: query and fragment are not supported (the database is /DB)"},
    {"redis://h x", NULL, NULL, NULL, NULL, 0, 0, "ringmail.yaml:1: redis.url: bad host \"h x\""},
    {"redis://[::1", NULL, NULL, NULL, NULL, 0, 0,
     "ringmail.yaml:1: redis.url: unclosed '[' in the host"},
    {"redis://:pw@:6379", NULL, NULL, NULL, NULL, 0, 0,
     "ringmail.yaml:1: redis.url: missing host (redis://HOST[:PORT][/DB])"},
    {"redis://h?db=1", NULL, NULL, NULL, NULL, 0, 0,
     "ringmail.yaml:1: redis.url: query and fragment are not supported (the database is /DB)"},
    {"redis://:p%zz@h", NULL, NULL, NULL, NULL, 0, 0,
     "ringmail.yaml:1: redis.url: bad percent-encoding in the user or password"},
    {"redis://user@h", NULL, NULL, NULL, NULL, 0, 0,
     "ringmail.yaml:1: redis.url: user \"user\" needs a password (in the url or in "
     "redis.password_file)"},
    {"unix://run/r.sock", NULL, NULL, NULL, NULL, 0, 0,
     "ringmail.yaml:1: redis.url: a unix socket path must be absolute "
     "(unix:///path/to/redis.sock)"},
    {"unix:///r.sock?timeout=1", NULL, NULL, NULL, NULL, 0, 0,
     "ringmail.yaml:1: redis.url: the only query parameter is ?db=N"},
};

static void test_urls(void)
{
    size_t i;
    for (i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        const struct url_case *u = &urls[i];
        char yaml[512], err[CONFIG_ERR_MAX] = "";
        struct config *c;

        snprintf(yaml, sizeof(yaml), "redis: {url: \"%s\"}\nrelays: [{name: a, host: h}]\n",
                 u->url);
        c = load(yaml, err, sizeof(err));
        if (u->err) {
            CHECK(c == NULL);
            CHECK_STR(err, u->err);
            /* An error never quotes the password. */
            CHECK(strstr(err, "secret") == NULL);
        } else if (!c) {
            CHECK(c != NULL);
            fprintf(stderr, "%s: %s\n", u->url, err);
        } else {
            CHECK_STR(c->redis.url, u->url);
            CHECK(u->host ? c->redis.host && !strcmp(c->redis.host, u->host) : !c->redis.host);
            CHECK(u->unix_path ? c->redis.unix_path && !strcmp(c->redis.unix_path, u->unix_path)
                               : !c->redis.unix_path);
            CHECK(u->user ? c->redis.user && !strcmp(c->redis.user, u->user) : !c->redis.user);
            CHECK(u->password ? c->redis.password && !strcmp(c->redis.password, u->password)
                              : !c->redis.password);
            CHECK_INT(c->redis.port, u->port);
            CHECK_INT(c->redis.db, u->db);
        }
        config_free(c);
    }
}

/* A user in the URL with the password in a file; never both passwords. */
static void test_redis_password_file(void)
{
    char yaml[512], err[CONFIG_ERR_MAX] = "";
    struct config *c;

    snprintf(yaml, sizeof(yaml),
             "redis: {url: \"redis://user@h\", password_file: %s}\nrelays: [{name: a, host: h}]\n",
             readable);
    c = load(yaml, err, sizeof(err));
    CHECK(c != NULL);
    if (c) {
        CHECK_STR(c->redis.user, "user");
        CHECK(c->redis.password == NULL);
        CHECK_STR(c->redis.password_file, readable);
    }
    config_free(c);
    snprintf(
        yaml, sizeof(yaml),
        "redis:\n  url: \"redis://:pw@h\"\n  password_file: %s\nrelays: [{name: a, host: h}]\n",
        readable);
    c = load(yaml, err, sizeof(err));
    CHECK(c == NULL);
    CHECK_STR(err, "ringmail.yaml:3: redis.password_file: the url already holds a password; keep "
                   "one of them");
    config_free(c);
}

/* redis.claim_interval_ms: how often each worker's XAUTOCLAIM scan runs
 * (it also takes what a draining engine handed back). */
static void test_claim_interval(void)
{
    char err[CONFIG_ERR_MAX] = "";
    struct config *c =
        load("redis:\n  url: redis://h\n  claim_interval_ms: 2500\nrelays: [{name: a, host: h}]\n",
             err, sizeof(err));
    CHECK(c != NULL);
    if (c)
        CHECK_INT(c->redis.claim_interval_ms, 2500);
    config_free(c);
}

static void test_warnings(void)
{
    char err[CONFIG_ERR_MAX] = "";
    struct config *c =
        load("redis:\n  url: redis://h\n  claim_min_idle_ms: 60000\nrelays:\n  - name: a\n"
             "    host: h\n    insecure_no_verify: true\n  - name: b\n    host: h\n    port: 465\n",
             err, sizeof(err));
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK_INT(c->nwarnings, 3);
    if (c->nwarnings == 3) {
        CHECK_STR(c->warnings[0],
                  "ringmail.yaml:7: relays[0].insecure_no_verify: certificate verification is off "
                  "and no pin replaces it: anyone on the path can read and change this relay's "
                  "mail");
        CHECK_STR(c->warnings[1], "ringmail.yaml:10: relays[1].port: 465 is the implicit-TLS "
                                  "port; did you mean tls: implicit?");
        CHECK_STR(c->warnings[2],
                  "ringmail.yaml:3: redis.claim_min_idle_ms: 60000 ms is below relay \"a\"'s "
                  "data_done timeout (600 s): another consumer could claim a job still in flight");
    }
    config_free(c);
}

/* The dump loads again into the same dump, and holds no secret. */
static void test_dump(void)
{
    char yaml[4096], err[CONFIG_ERR_MAX] = "", *d1 = NULL, *d2 = NULL;
    size_t l1 = 0, l2 = 0;
    struct config *c, *c2 = NULL;
    FILE *f;

    snprintf(yaml, sizeof(yaml), full, readable, readable, readable, readable);
    /* Put a password in the URL. */
    {
        char *u = strstr(yaml, "redis://10.0.0.5");
        char tail[4096];
        snprintf(tail, sizeof(tail), "%s", u + strlen("redis://"));
        snprintf(u, sizeof(yaml) - (size_t)(u - yaml), "redis://us%%3Aer:s3cr%%40t@%s", tail);
    }
    c = load(yaml, err, sizeof(err));
    CHECK(c != NULL);
    if (!c) {
        fprintf(stderr, "dump source: %s\n", err);
        return;
    }
    CHECK_STR(c->redis.password, "s3cr@t");
    CHECK_STR(c->redis.user, "us:er");
    f = open_memstream(&d1, &l1);
    CHECK_INT(config_dump(c, f), 0);
    fclose(f);
    CHECK(strstr(d1, "s3cr") == NULL);
    CHECK(strstr(d1, "url: \"redis://us%3Aer:REDACTED@10.0.0.5:6380/3\"") != NULL);
    CHECK(strstr(d1, "workers: 8\n") != NULL);
    CHECK(strstr(d1, "min_tls: \"1.3\"") != NULL);
    CHECK(strstr(d1, "schedule: [60, 300, 1800, 7200, 21600]") != NULL);
    CHECK(strstr(d1, "jitter: 0.5") != NULL);
    c2 = config_load_string(d1, l1, "dump", err, sizeof(err));
    CHECK(c2 != NULL);
    if (c2) {
        f = open_memstream(&d2, &l2);
        CHECK_INT(config_dump(c2, f), 0);
        fclose(f);
        CHECK_MEM(d2, l2, d1, l1);
        CHECK_STR(c2->redis.password, "REDACTED");
    } else {
        fprintf(stderr, "dump reload: %s\n%s", err, d1);
    }
    config_free(c);
    config_free(c2);
    free(d1);
    free(d2);
}

static void test_adapters(void)
{
    char yaml[4096], err[CONFIG_ERR_MAX] = "";
    struct tls_policy tp;
    struct pool_config pc;
    struct config *c;

    snprintf(yaml, sizeof(yaml), full, readable, readable, readable, readable);
    c = load(yaml, err, sizeof(err));
    CHECK(c != NULL);
    if (!c)
        return;
    config_relay_tls_policy(&c->relays[1], &tp);
    CHECK_STR(tp.servername, "relay.internal");
    CHECK_STR(tp.min_version, "1.3");
    CHECK_STR(tp.ca_dir, "/");
    CHECK_STR(tp.cert_file, readable);
    CHECK_INT(tp.npins, 2);
    CHECK_INT(tp.insecure_no_verify, 1);
    config_relay_pool_config(c, &c->relays[1], &pc);
    CHECK_STR(pc.name, "internal");
    CHECK_STR(pc.smtp.ehlo_name, "mta1.example.com");
    CHECK_INT(pc.smtp.tls_mode, SMTP_CLIENT_IMPLICIT_TLS);
    CHECK_INT(pc.timeouts.connect_ms, 5000);
    CHECK_INT(pc.timeouts.data_done_ms, 10000);
    CHECK_INT(pc.timeouts.quit_ms, 2000);
    CHECK_INT(pc.connections, 16);
    CHECK_INT(pc.max_age_ms, 0);
    CHECK_INT(pc.keepalive_ms, 30000);
    CHECK_INT(pc.smtp.pipeline_body, 0);
    CHECK_INT(pc.smtp.pipeline_depth, 3);
    CHECK(pc.max_bytes_per_conn == 10000000000ull);
    config_free(c);
}

/* config_load: files, relative paths, the shipped example. */
static void test_files(void)
{
    char dir[] = "/tmp/ringmail-config-XXXXXX", path[128], err[CONFIG_ERR_MAX] = "";
    struct config *c;
    FILE *f;

    c = config_load("/nonexistent/ringmail.yaml", err, sizeof(err));
    CHECK(c == NULL);
    CHECK_STR(err, "/nonexistent/ringmail.yaml: cannot read: No such file or directory");

    c = config_load(RINGMAIL_SOURCE_DIR "/deploy/ringmail.yaml", err, sizeof(err));
    CHECK(c != NULL);
    if (c) {
        CHECK_INT(c->nwarnings, 0);
        CHECK_INT(c->nrelays, 1);
        CHECK_STR(c->relays[0].name, "default");
        CHECK_INT(c->retry.max_attempts, 6);
    } else {
        fprintf(stderr, "deploy/ringmail.yaml: %s\n", err);
    }
    config_free(c);

    if (!mkdtemp(dir)) {
        CHECK(0);
        return;
    }
    snprintf(path, sizeof(path), "%s/ca.pem", dir);
    f = fopen(path, "w");
    CHECK(f != NULL);
    if (f)
        fclose(f);
    snprintf(path, sizeof(path), "%s/ringmail.yaml", dir);
    f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs("redis: {url: redis://h}\nrelays: [{name: a, host: h, ca_file: ca.pem}]\n", f);
        fclose(f);
    }
    c = config_load(path, err, sizeof(err));
    CHECK(c != NULL);
    if (c) {
        char want[128];
        snprintf(want, sizeof(want), "%s/ca.pem", dir);
        CHECK_STR(c->relays[0].ca_file, want);
        CHECK_STR(c->source, path);
    } else {
        fprintf(stderr, "relative: %s\n", err);
    }
    config_free(c);
    /* A relative path that is not there names the resolved path. */
    f = fopen(path, "w");
    if (f) {
        fputs("redis: {url: redis://h}\nrelays: [{name: a, host: h, ca_file: nope.pem}]\n", f);
        fclose(f);
    }
    c = config_load(path, err, sizeof(err));
    CHECK(c == NULL);
    {
        char want[256];
        snprintf(want, sizeof(want),
                 "%s:2: relays[0].ca_file: cannot read %s/nope.pem: No such file or directory",
                 path, dir);
        CHECK_STR(err, want);
    }
    config_free(c);
    unlink(path);
    snprintf(path, sizeof(path), "%s/ca.pem", dir);
    unlink(path);
    rmdir(dir);

    /* Small error buffers truncate; a NULL one is allowed. */
    c = load("relays: []\n", err, 8);
    CHECK(c == NULL);
    CHECK_STR(err, "ringmai");
    c = load("relays: []\n", NULL, 0);
    CHECK(c == NULL);
}

/* The outcome and dead-letter bounds of redis: (their defaults are in
 * test_defaults, their ranges in the error table). */
static void test_outcome_bounds(void)
{
    char err[CONFIG_ERR_MAX] = "";
    struct config *c = load("redis:\n  url: redis://h\n  dead_maxlen: 0\n  outcome_stuck_max: 9\n"
                            "relays: [{name: a, host: h}]\n",
                            err, sizeof(err));
    CHECK(c != NULL);
    if (!c) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    CHECK_INT(c->redis.dead_maxlen, 0);
    CHECK_INT(c->redis.outcome_stuck_max, 9);
    config_free(c);
}

int main(void)
{
    int fd;

    snprintf(readable, sizeof(readable), "/tmp/ringmail-config-readable-XXXXXX");
    fd = mkstemp(readable);
    if (fd < 0) {
        perror("mkstemp");
        return 1;
    }
    close(fd);
    /* The configurations here rely on the default EHLO name: make it a
     * fully qualified one whatever this machine is called. */
    setenv("RINGMAIL_TEST_HOSTNAME", TEST_HOSTNAME, 1);
    test_full();
    test_defaults();
    test_errors();
    test_urls();
    test_redis_password_file();
    test_claim_interval();
    test_warnings();
    test_dump();
    test_adapters();
    test_files();
    test_outcome_bounds();
    unlink(readable);
    return check_done();
}
