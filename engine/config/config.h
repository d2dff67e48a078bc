/*
 * config: the ringmail configuration file (YAML, read with libyaml),
 * validated whole at load so that a typo, a wrong type or an unreadable
 * CA file stops the start with a message that names the file, the line and
 * the key, e.g.
 *
 *   ringmail.yaml:14: relays[0].port: expected an integer from 1 to 65535, got "smtp"
 *
 * deploy/ringmail.yaml is the annotated example: every key, its default and
 * why. The result is plain data: owned strings, counts and arrays, every
 * default already filled in, so the rest of the engine never re-checks it.
 *
 * Typing is YAML 1.2 core schema: booleans are true/false only (yes/no/on/off
 * are refused rather than guessed), integers are plain decimal (a quoted "587"
 * is a string and refused where a number is expected), an empty value or ~
 * means "not set" (the default). Unknown keys are errors.
 */
#ifndef RINGMAIL_CONFIG_H
#define RINGMAIL_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "log.h"

/* Longest error config_load() writes, NUL included; a bigger buffer is fine. */
#define CONFIG_ERR_MAX 512

struct config_redis {
    /* The URL as written. It may carry the password: never log or print it. */
    char *url;
    /* Parsed from the URL: a TCP host (IPv6 without brackets) and port, or a
     * unix socket path (then host is NULL and port 0). */
    char *host;
    unsigned port;               /* default 6379 */
    char *unix_path;             /* unix:///path */
    unsigned db;                 /* /N or ?db=N; default 0 */
    char *user;                  /* ACL user from the URL, or NULL (the default user) */
    char *password;              /* from the URL, percent-decoded, or NULL; never printed */
    char *password_file;         /* or NULL; only checked readable here, never read */
    char *stream;                /* jobs stream (default "ringmail:jobs") */
    char *group;                 /* consumer group (default "ringmail") */
    char *events;                /* outcome events stream (default "ringmail:events") */
    char *dead;                  /* dead-letter stream (default "ringmail:dead") */
    char *retry;                 /* delayed-retry sorted set (default "ringmail:retry") */
    char *state_prefix;          /* per-job state records (default "ringmail:state:") */
    uint64_t events_maxlen;      /* XADD MAXLEN ~ (default 1000000; 0: never trim) */
    uint64_t dead_maxlen;        /* XADD MAXLEN ~ on the dead stream (default 100000; 0: never) */
    unsigned outcome_stuck_max;  /* a worker takes no new work while this many jobs are
                                    stuck in hand, their outcome refused (default 100) */
    unsigned batch;              /* XREADGROUP COUNT (default 256) */
    unsigned block_ms;           /* XREADGROUP BLOCK (default 1000) */
    unsigned claim_min_idle_ms;  /* XAUTOCLAIM min-idle (default 600000) */
    unsigned claim_interval_ms;  /* each worker's XAUTOCLAIM scan: dead consumers'
                                    entries, and at once those a drain handed back
                                    (default 5000) */
    unsigned command_timeout_ms; /* one Redis command (default 5000) */
    unsigned state_ttl;          /* seconds a state record lives (default 604800) */
};

struct config_metrics {
    char *listen;       /* as written: "127.0.0.1:9465", "[::1]:9465" */
    char *host;         /* its address part, without brackets */
    unsigned port;      /* its port */
    int per_connection; /* per-connection TLS series (default 1) */
};

/* Seconds. The defaults are RFC 5321 4.5.3.2's, plus the TLS handshake and QUIT. */
struct config_timeouts {
    unsigned connect;    /* 30 */
    unsigned greeting;   /* 300 */
    unsigned command;    /* 300 */
    unsigned tls;        /* 60 */
    unsigned data_block; /* 180 */
    unsigned data_done;  /* 600 */
    unsigned quit;       /* 10 */
};

enum config_tls_mode {
    CONFIG_TLS_STARTTLS = 1, /* "starttls": STARTTLS required (default) */
    CONFIG_TLS_IMPLICIT = 2, /* "implicit": TLS from the first byte (port 465) */
};
/* "starttls", "implicit"; never NULL. */
const char *config_tls_mode_name(enum config_tls_mode m);

struct config_relay {
    char *name; /* unique; letters, digits, '.', '_', '-' (it is a metrics label) */
    char *host;
    unsigned port; /* default 587 (starttls) or 465 (implicit) */
    enum config_tls_mode tls;
    char *min_tls;            /* "1.2" (default) or "1.3" */
    char *servername;         /* SNI and the certificate name (default: host) */
    char *ca_file;            /* NULL: the system store (unless ca_dir) */
    char *ca_dir;             /* hashed CA directory, or NULL */
    char *tls13_ciphersuites; /* NULL: the TLS layer's default order */
    char *client_cert;        /* both or neither */
    char *client_key;
    char **pins; /* SPKI SHA-256 (base64, sha256//base64 or hex) */
    size_t npins;
    int insecure_no_verify;               /* default 0; loudly logged when set */
    char *username;                       /* NULL: no AUTH; needs password_file */
    char *password_file;                  /* only checked readable here, never read */
    unsigned connections;                 /* default 16 */
    unsigned max_messages_per_connection; /* default 1000; 0: no limit */
    uint64_t max_bytes_per_connection;    /* default 0: no limit */
    unsigned max_connection_age;          /* seconds; default 3600; 0: no limit */
    unsigned keepalive;                   /* seconds idle before NOOP; default 60 */
    int pipeline_body;                    /* BDAT chunk with MAIL and RCPT; default 1 */
    unsigned pipeline_depth;              /* transactions back to back; default 8 */
    struct config_timeouts timeouts;
    unsigned line; /* where the relay starts in the file, for later messages */
};

struct config_retry {
    unsigned *schedule; /* seconds before attempt 2, 3, ...; the last repeats */
    size_t nschedule;
    unsigned max_age;      /* seconds after enqueue a job may still be retried (172800) */
    unsigned max_attempts; /* default nschedule + 1 */
    double jitter;         /* each delay * (1 +- jitter) (default 0.2) */
};

/* What one job (stream entry) may carry; over it, it is dead-lettered. */
struct config_job {
    unsigned max_fields; /* default 2000 (JOB_DEFAULT_MAX_FIELDS), at most 2990 */
    uint64_t max_bytes;  /* octets of names and values; default 67108864 (64 MiB) */
};

struct config {
    char *source;              /* the file name used in messages */
    unsigned workers;          /* 0: "auto", one per online CPU */
    char *ehlo_name;           /* default: this host's name */
    unsigned shutdown_timeout; /* seconds (default 30) */
    enum log_level log_level;  /* default LOG_INFO */
    struct config_redis redis;
    struct config_metrics metrics;
    struct config_relay *relays; /* at least one */
    size_t nrelays;
    struct config_retry retry;
    struct config_job job;
    /* Things that load but deserve a warning at start (verification off
     * without a pin, ...): "FILE:LINE: KEY: text", one per entry. */
    char **warnings;
    size_t nwarnings;
};

/*
 * Read and validate the file at path. Relative paths inside it (ca_file,
 * password_file, ...) are taken from the file's own directory and stored
 * resolved. NULL with err written on any problem.
 */
struct config *config_load(const char *path, char *err, size_t errlen);
/* The same from memory (tests); relative paths are taken from the current
 * directory. name_for_errors prefixes messages. */
struct config *config_load_string(const char *yaml, size_t len, const char *name_for_errors,
                                  char *err, size_t errlen);
void config_free(struct config *c);

/*
 * The one loader of a password file, for every subcommand: the whole file
 * with one trailing "\n" or "\r\n" removed, into out (room for max + 1
 * octets, NUL-terminated). 0, or -1 with "PATH: why" in err when the file
 * cannot be read, is empty, holds more than max octets (an error, never a
 * cut), a NUL or a line break inside. Nothing of it is left in memory but
 * out: callers explicit_bzero(out) once done. max <= CONFIG_SECRET_MAX.
 */
#define CONFIG_SECRET_MAX 4096
/* A Redis password (redis.password_file, or in the URL). */
#define CONFIG_REDIS_PASSWORD_MAX 511
int config_secret_load(const char *path, size_t max, char *out, char *err, size_t errlen);

/* The EHLO name when none is configured: this host's name, which must be a
 * fully qualified domain name (RFC 5321 4.1.1.1). 0 with it in out, or -1
 * with why not in err (the caller says which setting to give instead). */
int config_host_ehlo_name(char *out, size_t cap, char *err, size_t errlen);

/* The relay called name, or NULL. */
const struct config_relay *config_relay_find(const struct config *c, const char *name);
/* workers, with "auto" resolved to the online CPUs (at least 1). */
unsigned config_workers_effective(const struct config *c);

/*
 * Write the effective configuration, every default spelled out, as YAML
 * that config_load() accepts. Secrets never appear: a password in the Redis
 * URL is written as "REDACTED", and password files are not read at all.
 * 0, or -1 on a write error.
 */
int config_dump(const struct config *c, FILE *f);

/* What the engine modules take, filled from one relay. Strings point into
 * the config, which must outlive them. */
struct tls_policy;
struct pool_config;
void config_relay_tls_policy(const struct config_relay *r, struct tls_policy *out);
/* Everything of a pool_config but the address, the tls ctx and AUTH. */
void config_relay_pool_config(const struct config *c, const struct config_relay *r,
                              struct pool_config *out);

#endif
