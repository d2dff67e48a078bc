/*
 * log: JSON-lines logging with a small rate limiter, so that a relay failing
 * ten thousand connections a minute writes a handful of lines and a count
 * instead of flooding the journal.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static enum log_level min_level = LOG_INFO;

/* Per (event, first value) key: at most LIMIT_BURST lines per LIMIT_WINDOW
 * seconds; the next line after a window says how many were suppressed. */
#define LIMIT_SLOTS  64
#define LIMIT_BURST  5
#define LIMIT_WINDOW 60

struct limit {
    unsigned long hash;
    time_t window;
    unsigned count, suppressed;
};
static struct limit limits[LIMIT_SLOTS];

const char *log_level_name(enum log_level l)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    return (unsigned)l < 4 ? names[l] : "info";
}

int log_level_parse(const char *s)
{
    int i;
    for (i = 0; i < 4; i++)
        if (strcmp(s, log_level_name((enum log_level)i)) == 0)
            return i;
    return -1;
}

void log_set_level(enum log_level l)
{
    min_level = l;
}

int log_enabled(enum log_level l)
{
    return l >= min_level;
}

static void put_json(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static unsigned long hash_str(unsigned long h, const char *s)
{
    while (s && *s)
        h = h * 33 + (unsigned char)*s++;
    return h;
}

/* Returns how many lines were suppressed before this one, or -1 to drop it. */
static long rate_limit(const char *event, const char *first, time_t now)
{
    unsigned long h = hash_str(hash_str(5381, event), first);
    struct limit *l = &limits[h % LIMIT_SLOTS];
    long suppressed;
    if (l->hash != h || now - l->window >= LIMIT_WINDOW) {
        suppressed = l->hash == h ? (long)l->suppressed : 0;
        l->hash = h;
        l->window = now;
        l->count = 1;
        l->suppressed = 0;
        return suppressed;
    }
    if (++l->count > LIMIT_BURST) {
        l->suppressed++;
        return -1;
    }
    return 0;
}

static void log_eventv(enum log_level l, int limited, const char *event, va_list args)
{
    va_list ap;
    struct timespec ts;
    struct tm tm;
    char tbuf[32], *line = NULL;
    size_t len = 0;
    const char *key, *first = NULL;
    long suppressed = 0;
    FILE *f;

    if (!log_enabled(l))
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (limited && l >= LOG_WARN) {
        va_copy(ap, args);
        if (va_arg(ap, const char *))
            first = va_arg(ap, const char *);
        va_end(ap);
        suppressed = rate_limit(event, first, ts.tv_sec);
        if (suppressed < 0)
            return;
    }
    /* The line is built in memory and written with one write(2): the
     * master and its workers share stderr, and their lines must not
     * interleave. */
    f = open_memstream(&line, &len);
    if (!f)
        return;
    gmtime_r(&ts.tv_sec, &tm);
    strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(f, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"event\":", tbuf, ts.tv_nsec / 1000000,
            log_level_name(l));
    put_json(f, event);
    va_copy(ap, args);
    while ((key = va_arg(ap, const char *))) {
        const char *val = va_arg(ap, const char *);
        fputc(',', f);
        put_json(f, key);
        fputc(':', f);
        if (val)
            put_json(f, val);
        else
            fputs("null", f);
    }
    va_end(ap);
    if (suppressed > 0)
        fprintf(f, ",\"suppressed\":%ld", suppressed);
    fputs("}\n", f);
    if (fclose(f) == 0) {
        size_t off = 0;
        while (off < len) {
            ssize_t n = write(STDERR_FILENO, line + off, len - off);
            if (n <= 0)
                break;
            off += (size_t)n;
        }
    }
    free(line);
}

void log_event(enum log_level l, const char *event, ...)
{
    va_list ap;
    va_start(ap, event);
    log_eventv(l, 1, event, ap);
    va_end(ap);
}

void log_always(enum log_level l, const char *event, ...)
{
    va_list ap;
    va_start(ap, event);
    log_eventv(l, 0, event, ap);
    va_end(ap);
}
