/*
 * job_internal.h: what job.c (fields, addresses, the job object) and
 * job_build.c (the message ringmail builds) share. Not for other modules.
 */
#ifndef RINGMAIL_JOB_INTERNAL_H
#define RINGMAIL_JOB_INTERNAL_H

#include <stddef.h>
#include <string.h>

#include "job.h"

/* Limits of a built message's header fields (see job_build.c). */
#define JOB_HEADER_MAX      100 /* header.* fields per job */
#define JOB_HEADER_NAME_MAX 76  /* so "Name: " and a word fit a 78-octet line */
#define JOB_BOUNDARY_MAX    40

/* A value that may be absent (p == NULL). */
struct job_span {
    const char *p;
    size_t n;
};

static inline int job_name_is(const struct job_field *f, const char *lit, size_t lit_len)
{
    return f->name_len == lit_len && memcmp(f->name, lit, lit_len) == 0;
}
#define JOB_NAME_IS(f, lit) job_name_is((f), lit, sizeof(lit) - 1)

#define JOB_HEADER_PREFIX     "header."
#define JOB_HEADER_PREFIX_LEN (sizeof(JOB_HEADER_PREFIX) - 1)
static inline int job_is_header(const struct job_field *f)
{
    return f->name_len >= JOB_HEADER_PREFIX_LEN &&
           memcmp(f->name, JOB_HEADER_PREFIX, JOB_HEADER_PREFIX_LEN) == 0;
}

/* Writes a reason (printf-style) when reason is non-NULL and reasonlen > 0. */
void job_reason(char *reason, size_t reasonlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Non-zero when s[0..n) is well-formed UTF-8 (no overlongs, surrogates or
 * code points above U+10FFFF). */
int job_utf8_valid(const unsigned char *s, size_t n);

/* NULL when d[0..n) is a domain RFC 5321 allows (allow_utf8: U-labels as
 * octets too), else why not. */
const char *job_check_domain(const char *d, size_t n, int allow_utf8);

/* What the builder needs: every envelope value already validated. */
struct job_build_in {
    const char *id;
    size_t id_len;
    const char *from;
    size_t from_len;
    const struct job_field *fields; /* the entry: to and header.* in order */
    size_t nfields;
    struct job_span subject, text, html;
    long long date; /* unix seconds for the Date field */
    const char *msgid_domain;
    int smtputf8; /* an envelope address is internationalised */
};

enum job_cte {
    JOB_CTE_7BIT = 1,
    JOB_CTE_8BIT = 2,
    JOB_CTE_QP = 3,
};

/* Decisions taken once by job_build_plan() and used by both emit passes. */
struct job_build_plan {
    size_t size;      /* exact length of the message */
    size_t msgid_len; /* of the Message-ID, angle brackets included */
    enum job_cte text_cte, html_cte;
    char boundary[JOB_BOUNDARY_MAX]; /* "" for a single part */
    /* header.* overrides (the field), or NULL */
    const struct job_field *h_date, *h_from, *h_to, *h_msgid;
};

/* Validate the header.* fields, subject and bodies, and size the message.
 * 0, or -1 with a reason. */
int job_build_plan(const struct job_build_in *in, size_t max_message, struct job_build_plan *plan,
                   char *reason, size_t reasonlen);
/* Write exactly plan->size octets of message to out. */
void job_build_write(const struct job_build_in *in, const struct job_build_plan *plan, char *out);
/* Write plan->msgid_len octets of Message-ID to out. */
void job_build_msgid(const struct job_build_in *in, const struct job_build_plan *plan, char *out);

#endif
