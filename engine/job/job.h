/*
 * job: one mail job, parsed and validated from the plain fields of a Redis
 * Stream entry, with the RFC 5322 message it sends ready for
 * message_prepare(). Pure: no I/O, no clock, no randomness, no globals; the
 * Redis layer hands over the entry ID and the field/value pairs (binary
 * safe) and gets back either a job or a specific reason for the dead-letter
 * stream. Any input is safe: a malformed job is a reason, never a crash.
 *
 * Fields (names are exact and lower case; values are octets):
 *
 *   from          envelope sender, once; "" is the null sender <>
 *   to            one recipient per occurrence; at least one, at most
 *                 max_rcpts (duplicates are kept: the producer's choice)
 *   data          a complete RFC 5322 message, sent as given
 *     or
 *   subject       with text and/or html: ringmail builds the message (MIME,
 *   text, html    Date, Message-ID, ...; see job_build.c for every rule)
 *   header.NAME   extra header fields of a built message, in order
 *   id            the producer's idempotency key (default: the entry ID);
 *                 the Message-ID of a built message derives from it
 *   relay         a configured relay name (default: the first)
 *   max_attempts  positive integer (default 0: the configured one)
 *   expires       unix seconds, 0 or absent: never
 *   attempt       >= 1, set by the retry machinery (default 1)
 *   enqueued      unix milliseconds of the first enqueue, set by the retry
 *                 machinery (default: the time part of the entry ID)
 *
 * Decisions, so that producers and other modules can rely on them:
 * - Every field but to and header.* may occur once; a repeat is an error,
 *   as two values would leave the job ambiguous.
 * - Unknown fields are ignored (producers may carry their own tracking
 *   fields) and counted: job_ignored_fields(). header.* with data is an
 *   error: the data already has its header section, and merging would be a
 *   guess.
 * - header.Message-ID and header.Date are allowed (a producer may keep its
 *   own); header.From and header.To replace the ones made from the
 *   envelope. header.Subject (use subject), header.Bcc (it would disclose
 *   the blind recipients), header.MIME-Version, header.Content-Type and
 *   header.Content-Transfer-Encoding (ringmail makes the MIME structure),
 *   header.Received and header.Return-Path (trace fields belong to servers)
 *   are refused.
 * - The retry machinery must copy job_id() into the id field when it
 *   re-enqueues a job under a new entry ID, and job_enqueued_ms() into
 *   enqueued; otherwise the retried message gets a different Message-ID
 *   and Date.
 */
#ifndef RINGMAIL_JOB_H
#define RINGMAIL_JOB_H

#include <stddef.h>

#define JOB_DEFAULT_MAX_RCPTS   1000
#define JOB_DEFAULT_MAX_MESSAGE (50u * 1024 * 1024)
/* What a whole entry may carry (job.max_fields, job.max_bytes): room for
 * 1000 recipients, 100 header.* fields, the known fields and a producer's
 * own tracking fields; a 50 MiB message with its recipients and headers.
 * The outcome writes carry the fields again (a retry, a dead letter: at
 * most 3000 in one script call), so the field limit stays below
 * JOB_FIELDS_LIMIT. */
#define JOB_DEFAULT_MAX_FIELDS 2000
#define JOB_DEFAULT_MAX_BYTES  (64u * 1024 * 1024)
#define JOB_FIELDS_LIMIT       2990
/* Longest id field accepted (octets); the Message-ID escapes it in place. */
#define JOB_ID_MAX 200
/* A reason buffer of this size never truncates a reason. */
#define JOB_REASON_MAX 160

/* One field of the stream entry; neither string needs a NUL terminator. */
struct job_field {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

struct job_limits {
    size_t max_rcpts;          /* 0: JOB_DEFAULT_MAX_RCPTS */
    size_t max_message;        /* octets with CRLF line ends; 0: JOB_DEFAULT_MAX_MESSAGE */
    const char *const *relays; /* the configured relay names; the first is the default */
    size_t nrelays;
    /* Right side of the Message-IDs ringmail makes (this host's name);
     * needed only for built messages without header.Message-ID. */
    const char *msgid_domain;
    /* Unix seconds; the Date of a built message is the enqueue time (so a
     * resend is byte-identical), and this only when that time is 0. */
    long long now;
    /* Non-zero: the caller keeps the fields, each value followed by a NUL
     * octet, until job_free(); a data message is then referenced instead
     * of copied (a 1 MB message is copied once less). */
    int borrow_data;
    size_t max_fields; /* fields of the entry; 0: JOB_DEFAULT_MAX_FIELDS */
    size_t max_bytes;  /* octets of names and values; 0: JOB_DEFAULT_MAX_BYTES */
};

struct job;

/*
 * Parse and validate one entry. entry_id is Redis's "MS-SEQ". Returns a job
 * that owns copies of everything it needs (the fields may be freed at
 * once, unless lim->borrow_data), or NULL with a one-line printable ASCII
 * reason in reason[0..reasonlen) ("to #2: no '@' in address", "out of memory"). The reason never
 * echoes field values, so nothing a producer sends ends up in a log line.
 */
struct job *job_parse(const char *entry_id, const struct job_field *fields, size_t nfields,
                      const struct job_limits *lim, char *reason, size_t reasonlen);
void job_free(struct job *j);

/*
 * The entry's size against max_fields and max_bytes (job_parse checks it
 * first): 0, or -1 with the reason, which names the limit ("too many
 * fields: 3001 (job.max_fields is 2000)"). A caller that dead-letters such
 * an entry keeps it bounded: not its fields, only its id and the reason.
 */
int job_check_size(size_t nfields, size_t bytes, const struct job_limits *lim, char *reason,
                   size_t reasonlen);

/* Accessors. Strings are NUL-terminated and live as long as the job. */
const char *job_id(const struct job *j);
const char *job_from(const struct job *j); /* "" for the null sender */
const char *const *job_rcpts(const struct job *j, size_t *n);
const char *job_relay(const struct job *j);  /* the relay's name */
size_t job_relay_index(const struct job *j); /* into job_limits.relays */
/* The message: CRLF line ends when built, as the producer sent it (LF or
 * CRLF) for data; never empty, no NUL, every line <= 998 octets, at most
 * max_message octets once normalised. NUL-terminated beyond len. */
const char *job_message(const struct job *j, size_t *len);
/* What message_scan() found in a data message as BDAT, while parsing:
 * a caller need not scan it again (wire_len == len: it goes as it is).
 * NULL for a built message. */
struct message_facts;
const struct message_facts *job_message_bdat_facts(const struct job *j);
/* "<...>" of the message ("" when data has no Message-ID header). */
const char *job_message_id(const struct job *j);
int job_attempt(const struct job *j);
int job_max_attempts(const struct job *j);  /* 0: the configured default */
long long job_expires(const struct job *j); /* unix seconds; 0: never */
long long job_enqueued_ms(const struct job *j);
/* Non-zero when an envelope address is internationalised (RFC 6531). */
int job_needs_smtputf8(const struct job *j);
/* Non-zero when ringmail built the message (subject/text/html). */
int job_built(const struct job *j);
/* Fields that were neither known nor header.*: ignored. */
size_t job_ignored_fields(const struct job *j);

#endif
