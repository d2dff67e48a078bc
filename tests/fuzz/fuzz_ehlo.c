/*
 * fuzz_ehlo: libFuzzer target for the EHLO capability parser.
 *
 * The input is parsed three ways: as reply text by smtp_ehlo_parse_text();
 * as server bytes through the reply parser and smtp_ehlo_parse(); and, so
 * that random bytes still reach smtp_ehlo_parse(), rewritten into a valid
 * 250 reply (one "250-" line per input line, CR and NUL dropped) whose
 * capabilities must equal those parsed from the same text directly. Every
 * result must be a well-formed struct smtp_ehlo; any violation aborts.
 */
#include "smtp_reply.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define EXT_ALL                                                                                    \
    (SMTP_EXT_PIPELINING | SMTP_EXT_STARTTLS | SMTP_EXT_CHUNKING | SMTP_EXT_SIZE |                 \
     SMTP_EXT_8BITMIME | SMTP_EXT_SMTPUTF8 | SMTP_EXT_AUTH | SMTP_EXT_ENHANCEDSTATUSCODES |        \
     SMTP_EXT_REQUIRETLS | SMTP_EXT_DSN | SMTP_EXT_BINARYMIME)
#define AUTH_ALL                                                                                   \
    (SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN | SMTP_AUTH_CRAM_MD5 | SMTP_AUTH_XOAUTH2 | SMTP_AUTH_OTHER)

/* Longest input line kept when rewriting into a reply: well under 512. */
#define LINE_KEEP 400

static void check_ehlo(const struct smtp_ehlo *e)
{
    const char *u = e->unknown, *nul = memchr(u, '\0', sizeof(e->unknown));
    size_t len, nls = 0, i;

    if (!nul)
        abort();
    len = (size_t)(nul - u);
    if (e->ext & ~(unsigned)EXT_ALL || e->auth & ~(unsigned)AUTH_ALL)
        abort();
    if (!(e->ext & SMTP_EXT_SIZE) && e->size_max != 0)
        abort();
    if (!(e->ext & SMTP_EXT_AUTH) && e->auth != 0)
        abort();
    if (e->unknown_truncated != 0 && e->unknown_truncated != 1)
        abort();
    /* Kept lines are non-empty, start with no blank, and are counted. */
    for (i = 0; i < len; i++) {
        if (u[i] == '\n') {
            nls++;
            if (i + 1 == len || u[i + 1] == '\n')
                abort();
        }
    }
    if (len == 0 ? e->unknown_count != 0 : e->unknown_count != nls + 1)
        abort();
    if (len > 0 && (u[0] == ' ' || u[0] == '\n'))
        abort();
    /* Nothing written past the string. */
    for (i = len; i < sizeof(e->unknown); i++) {
        if (u[i] != '\0')
            abort();
    }
}

static void parse_replies(const uint8_t *data, size_t size)
{
    struct smtp_reply_parser *p = smtp_reply_parser_new(NULL);
    struct smtp_reply rep;
    struct smtp_ehlo a, b;
    size_t off = 0;
    long v;

    if (!p)
        abort();
    while (off < size && (v = smtp_reply_parser_feed(p, data + off, size - off, &rep)) > 0) {
        int rc = smtp_ehlo_parse(&rep, &a);
        if (rc != (rep.code == 250 ? 0 : -1))
            abort();
        check_ehlo(&a);
        smtp_ehlo_parse_text(rep.text, rep.text_len, &b);
        if (rc == 0 && memcmp(&a, &b, sizeof(a)) != 0)
            abort();
        off += (size_t)v;
    }
    smtp_reply_parser_free(p);
}

/* Input lines as a 250 reply; *text gets the same lines joined by '\n'. */
static void rewrite_and_parse(const uint8_t *data, size_t size)
{
    char *wire = malloc(size * 7 + 16), *text = malloc(size + 1);
    struct smtp_reply_parser *p = smtp_reply_parser_new(NULL);
    struct smtp_reply rep;
    struct smtp_ehlo a, b;
    size_t wl = 0, tl = 0, i = 0, ll;
    long v;

    if (!wire || !text || !p)
        abort();
    do {
        memcpy(wire + wl, "250-", 4);
        wl += 4;
        for (ll = 0; i < size && data[i] != '\n'; i++) {
            if (data[i] == '\r' || data[i] == '\0' || ll == LINE_KEEP)
                continue;
            wire[wl++] = text[tl++] = (char)data[i];
            ll++;
        }
        if (i == size)
            wire[wl - ll - 1] = ' '; /* the last line */
        memcpy(wire + wl, "\r\n", 2);
        wl += 2;
        if (i < size)
            text[tl++] = '\n';
    } while (i++ < size);
    v = smtp_reply_parser_feed(p, wire, wl, &rep);
    if (v != (long)wl && v != -(long)SMTP_REPLY_E_TOO_LARGE)
        abort();
    if (v > 0) {
        if (rep.code != 250 || rep.text_len != tl || memcmp(rep.text, text, tl) != 0)
            abort();
        if (smtp_ehlo_parse(&rep, &a) != 0)
            abort();
        check_ehlo(&a);
        smtp_ehlo_parse_text(text, tl, &b);
        if (memcmp(&a, &b, sizeof(a)) != 0)
            abort();
    }
    smtp_reply_parser_free(p);
    free(wire);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct smtp_ehlo a, b;

    smtp_ehlo_parse_text((const char *)data, size, &a);
    check_ehlo(&a);
    smtp_ehlo_parse_text((const char *)data, size, &b);
    if (memcmp(&a, &b, sizeof(a)) != 0)
        abort();
    parse_replies(data, size);
    rewrite_and_parse(data, size);
    return 0;
}
