/*
 * log: structured logs, one JSON object per line on stderr (journald and
 * container runtimes collect it from there).
 *
 *   log_event(LOG_WARN, "tls_insecure", "relay", name, "detail", text, NULL);
 *
 * writes {"ts":"2026-11-28T13:30:00.123Z","level":"warn","event":"tls_insecure",
 * "relay":"...","detail":"..."}. Values are strings, escaped for JSON;
 * callers never pass credentials or message bodies. Repeated identical
 * warnings and errors (same event and same first value) are rate-limited.
 */
#ifndef RINGMAIL_LOG_H
#define RINGMAIL_LOG_H

enum log_level {
    LOG_DEBUG = 0,
    LOG_INFO = 1,
    LOG_WARN = 2,
    LOG_ERROR = 3,
};

/* "debug", "info", "warn", "error". */
const char *log_level_name(enum log_level l);
/* Parse a level name; -1 when unknown. */
int log_level_parse(const char *s);

/* Events below this level are dropped (default LOG_INFO). */
void log_set_level(enum log_level l);
int log_enabled(enum log_level l);

/* key, value, key, value, ..., NULL. A NULL value writes null. Warnings
 * and errors are rate-limited per event and first value. */
void log_event(enum log_level l, const char *event, ...);
/* The same without the rate limit, for what must appear every time (a
 * connection made without certificate verification). */
void log_always(enum log_level l, const char *event, ...);

#endif
