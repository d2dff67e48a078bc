/*
 * config_internal: what config.c (loading, typed values, the mapping
 * walker) shares with config_schema.c (the sections and their rules) and
 * config_out.c. Not part of the module's interface.
 *
 * A section is a table of fields; cfg_walk_map() checks a YAML mapping
 * against it (unknown and duplicate keys, required keys, each value's
 * parser) and every failure becomes one "FILE:LINE: KEY: text" message.
 */
#ifndef RINGMAIL_CONFIG_INTERNAL_H
#define RINGMAIL_CONFIG_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "config.h"

/* Keys and list indexes, "relays[12].timeouts.data_block": bounded by the schema. */
#define CFG_PATH_MAX 96

struct cfg {
    const char *name; /* for messages */
    char *err;
    size_t errlen;
    const char *base_dir; /* relative paths are taken from here; NULL: as written */
    yaml_document_t *doc;
    struct config *c;
    unsigned key_line; /* the key whose value is being parsed, for section messages */
};

struct cfg_field;
/* Parse v (a null scalar only for CFG_SECTION: null means "not set") into dst. 0 or -1
 * with the error written. path names the key for messages. */
typedef int cfg_parse_fn(struct cfg *x, yaml_node_t *v, const char *path, void *dst,
                         const struct cfg_field *f);

#define CFG_REQUIRED 1u
/* The parser also gets a null value (a mapping or list section: "key:" alone
 * is an empty one, whose own rules still apply). */
#define CFG_SECTION 2u

struct cfg_field {
    const char *key;
    cfg_parse_fn *parse;
    size_t off; /* of dst in the struct the table describes */
    uint64_t min, max;
    unsigned flags;
};

/* "FILE:LINE: " + the message into x->err; returns -1. */
int cfg_error(struct cfg *x, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Append "FILE:LINE: " + the message to the config's warnings (best effort). */
void cfg_warn(struct cfg *x, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* 1-based line of a node. */
unsigned cfg_line(const yaml_node_t *n);
/* A plain empty, ~ or null scalar: "not set". */
int cfg_is_null(const yaml_node_t *n);
/* What the user wrote, for "got ...": "\"smtp\"" (escaped, shortened), "a list",
 * "a mapping", "nothing". */
const char *cfg_got(const yaml_node_t *n, char *buf, size_t len);
/* The same where a number or boolean is expected: a quoted "587" is "the
 * string \"587\"", which says why it was refused. */
const char *cfg_got_num(const yaml_node_t *n, char *buf, size_t len);
/* The scalar's text, or NULL when n is not a scalar. */
const char *cfg_text(const yaml_node_t *n);
/* The value of key in mapping map (NULL if absent); *key_line gets its line. */
yaml_node_t *cfg_map_get(struct cfg *x, yaml_node_t *map, const char *key, unsigned *key_line);

/*
 * Check mapping map against fields and parse each value into base + off.
 * A null map is an empty one. line: where the mapping's key is, for
 * "missing required key". path: the mapping's own key ("" at the top).
 */
int cfg_walk_map(struct cfg *x, yaml_node_t *map, const char *path, unsigned line,
                 const struct cfg_field *fields, size_t nfields, void *base);

/* The plain value parsers; min/max come from the field. */
cfg_parse_fn cfg_parse_str;   /* char *: "" stays unset; no control characters */
cfg_parse_fn cfg_parse_uint;  /* unsigned */
cfg_parse_fn cfg_parse_u64;   /* uint64_t */
cfg_parse_fn cfg_parse_bool;  /* int: true/false only */
cfg_parse_fn cfg_parse_frac;  /* double in [min, max] */
cfg_parse_fn cfg_parse_rfile; /* char *: a readable file, stored resolved */
cfg_parse_fn cfg_parse_rdir;  /* char *: a readable directory, stored resolved */

/* Letters, digits and the characters of set only. */
int cfg_all_of(const char *s, const char *set);

/* The addresses (config_url.c): the Redis URL into a struct config_redis,
 * HOST:PORT into a struct config_metrics. */
cfg_parse_fn cfg_parse_redis_url;
cfg_parse_fn cfg_parse_listen;

/* An unsigned from a plain decimal scalar in [min, max]: 0, or -1 (no error
 * written). */
int cfg_uint_value(const yaml_node_t *n, uint64_t min, uint64_t max, uint64_t *out);

/* The top level: every section, defaults, cross-key rules (config_schema.c). */
int cfg_schema_root(struct cfg *x, yaml_node_t *root);

#endif
