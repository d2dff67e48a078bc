/*
 * config: loading. libyaml turns the text into a document (node tree with
 * line marks); this file gives every value its YAML 1.2 core type, walks
 * mappings against field tables (config_schema.c holds the tables) and turns
 * every failure into one message that names the file, the line and the key.
 *
 * libyaml's loader has no notion of types: every scalar is text plus a
 * quoting style. The typing here is deliberately narrow: plain decimal
 * integers, true/false, empty or ~ for "not set". A YAML 1.1 reader would
 * read "no" as false; refusing it beats guessing what an operator meant.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_internal.h"

/* A configuration is a few kilobytes; anything near this is a mistake. */
#define CONFIG_MAX_BYTES (1u << 20)

const char *config_tls_mode_name(enum config_tls_mode m)
{
    return m == CONFIG_TLS_IMPLICIT ? "implicit" : "starttls";
}

/* ---- messages ----------------------------------------------------------- */

int cfg_error(struct cfg *x, unsigned line, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (!x->err || !x->errlen)
        return -1;
    n = snprintf(x->err, x->errlen, "%s:%u: ", x->name, line);
    if (n >= 0 && (size_t)n < x->errlen) {
        va_start(ap, fmt);
        vsnprintf(x->err + n, x->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void cfg_warn(struct cfg *x, unsigned line, const char *fmt, ...)
{
    char msg[CONFIG_ERR_MAX], *s = NULL, **grown;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (asprintf(&s, "%s:%u: %s", x->name, line, msg) < 0)
        return;
    grown = realloc(x->c->warnings, (x->c->nwarnings + 1) * sizeof(*grown));
    if (!grown) {
        free(s);
        return;
    }
    x->c->warnings = grown;
    x->c->warnings[x->c->nwarnings++] = s;
}

/* ---- nodes -------------------------------------------------------------- */

unsigned cfg_line(const yaml_node_t *n)
{
    return n ? (unsigned)n->start_mark.line + 1 : 1;
}

const char *cfg_text(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int is_plain(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

int cfg_is_null(const yaml_node_t *n)
{
    const char *s = cfg_text(n);
    if (!s || !is_plain(n))
        return 0;
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* Would this text be a number or boolean if it were written unquoted? */
static int looks_typed(const char *s)
{
    size_t n = strspn(s, "0123456789.+-eE");
    return (*s && !s[n]) || !strcmp(s, "true") || !strcmp(s, "false");
}

static const char *got(const yaml_node_t *n, char *buf, size_t len, int typed)
{
    const unsigned char *s;
    size_t i, o = 0, slen, shown;

    if (!n || cfg_is_null(n))
        return "nothing";
    if (n->type == YAML_MAPPING_NODE)
        return "a mapping";
    if (n->type == YAML_SEQUENCE_NODE)
        return "a list";
    s = n->data.scalar.value;
    slen = n->data.scalar.length;
    shown = slen > 48 ? 48 : slen;
    /* Do not cut a UTF-8 sequence in half. */
    while (shown < slen && shown > 0 && (s[shown] & 0xc0) == 0x80)
        shown--;
    if (typed && !is_plain(n) && looks_typed((const char *)s))
        o = (size_t)snprintf(buf, len, "the string ");
    buf[o < len ? o++ : len - 1] = '"';
    for (i = 0; i < shown && o + 6 < len; i++) {
        if (s[i] < 0x20 || s[i] == 0x7f)
            o += (size_t)snprintf(buf + o, len - o, "\\x%02x", s[i]);
        else if (s[i] == '"' || s[i] == '\\')
            o += (size_t)snprintf(buf + o, len - o, "\\%c", s[i]);
        else
            buf[o++] = (char)s[i];
    }
    snprintf(buf + o, len - o, "%s\"", shown < slen ? "..." : "");
    return buf;
}

const char *cfg_got(const yaml_node_t *n, char *buf, size_t len)
{
    return got(n, buf, len, 0);
}

const char *cfg_got_num(const yaml_node_t *n, char *buf, size_t len)
{
    return got(n, buf, len, 1);
}

yaml_node_t *cfg_map_get(struct cfg *x, yaml_node_t *map, const char *key, unsigned *key_line)
{
    yaml_node_pair_t *p;

    if (!map || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(x->doc, p->key);
        const char *t = cfg_text(k);
        if (t && !strcmp(t, key)) {
            if (key_line)
                *key_line = cfg_line(k);
            return yaml_document_get_node(x->doc, p->value);
        }
    }
    return NULL;
}

int cfg_all_of(const char *s, const char *set)
{
    for (; *s; s++)
        if (!strchr(set, *s) &&
            !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')))
            return 0;
    return 1;
}

/* ---- the mapping walker ------------------------------------------------- */

/* Levenshtein distance, capped: keys are short. */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), i, j, row[64];

    if (la >= 63 || lb >= 63)
        return 64;
    for (j = 0; j <= lb; j++)
        row[j] = j;
    for (i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

static const char *suggest(const char *key, const struct cfg_field *fields, size_t nfields)
{
    const char *best = NULL;
    size_t i, bestd = 3; /* two edits at most, and fewer than half the word */

    for (i = 0; i < nfields; i++) {
        size_t d = distance(key, fields[i].key);
        if (d < bestd && d * 2 < strlen(fields[i].key)) {
            bestd = d;
            best = fields[i].key;
        }
    }
    return best;
}

static void join(char *out, const char *path, const char *key)
{
    snprintf(out, CFG_PATH_MAX, "%s%s%s", path, *path ? "." : "", key);
}

int cfg_walk_map(struct cfg *x, yaml_node_t *map, const char *path, unsigned line,
                 const struct cfg_field *fields, size_t nfields, void *base)
{
    char got[96], sub[CFG_PATH_MAX], where[CFG_PATH_MAX + 8];
    uint64_t seen = 0;
    yaml_node_pair_t *p;
    size_t i;

    if (nfields > 64)
        abort(); /* a schema table too large for the bitmask */
    snprintf(where, sizeof(where), "%s%s", *path ? " in " : "", path);
    if (map && !cfg_is_null(map)) {
        if (map->type != YAML_MAPPING_NODE)
            return cfg_error(x, cfg_line(map), "%s%sexpected a mapping of keys, got %s", path,
                             *path ? ": " : "", cfg_got(map, got, sizeof(got)));
        for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(x->doc, p->key);
            yaml_node_t *v = yaml_document_get_node(x->doc, p->value);
            const char *key = cfg_text(k), *hint;

            if (!key || !is_plain(k))
                return cfg_error(x, cfg_line(k), "keys must be plain names, got %s%s",
                                 cfg_got(k, got, sizeof(got)), where);
            for (i = 0; i < nfields && strcmp(fields[i].key, key) != 0; i++)
                ;
            if (i == nfields) {
                hint = suggest(key, fields, nfields);
                if (hint)
                    return cfg_error(x, cfg_line(k), "unknown key %s%s (did you mean \"%s\"?)",
                                     cfg_got(k, got, sizeof(got)), where, hint);
                return cfg_error(x, cfg_line(k), "unknown key %s%s", cfg_got(k, got, sizeof(got)),
                                 where);
            }
            if (seen & (1ull << i))
                return cfg_error(x, cfg_line(k), "duplicate key \"%s\"%s", key, where);
            seen |= 1ull << i;
            join(sub, path, key);
            x->key_line = cfg_line(k);
            if (cfg_is_null(v) && !(fields[i].flags & CFG_SECTION)) {
                /* "key:" with nothing after it keeps the default. A section
                 * still goes to its parser: its own required keys count. */
                if (fields[i].flags & CFG_REQUIRED)
                    return cfg_error(x, cfg_line(k), "%s: a value is required", sub);
                continue;
            }
            if (fields[i].parse(x, v, sub, (char *)base + fields[i].off, &fields[i]) != 0)
                return -1;
        }
    }
    for (i = 0; i < nfields; i++)
        if ((fields[i].flags & CFG_REQUIRED) && !(seen & (1ull << i)))
            return cfg_error(x, line, "%s%smissing required key \"%s\"", path, *path ? ": " : "",
                             fields[i].key);
    return 0;
}

/* ---- plain values ------------------------------------------------------- */

int cfg_uint_value(const yaml_node_t *n, uint64_t min, uint64_t max, uint64_t *out)
{
    const char *s = cfg_text(n);
    uint64_t v = 0;

    if (!s || !is_plain(n) || !*s || strspn(s, "0123456789") != n->data.scalar.length)
        return -1;
    for (; *s; s++) {
        if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int int_error(struct cfg *x, yaml_node_t *v, const char *path, const struct cfg_field *f)
{
    char got[96];
    if (f->max == UINT64_MAX)
        return cfg_error(x, cfg_line(v), "%s: expected an integer of at least %llu, got %s", path,
                         (unsigned long long)f->min, cfg_got_num(v, got, sizeof(got)));
    return cfg_error(x, cfg_line(v), "%s: expected an integer from %llu to %llu, got %s", path,
                     (unsigned long long)f->min, (unsigned long long)f->max,
                     cfg_got_num(v, got, sizeof(got)));
}

int cfg_parse_uint(struct cfg *x, yaml_node_t *v, const char *path, void *dst,
                   const struct cfg_field *f)
{
    uint64_t n;
    if (cfg_uint_value(v, f->min, f->max > UINT32_MAX ? UINT32_MAX : f->max, &n) != 0)
        return int_error(x, v, path, f);
    *(unsigned *)dst = (unsigned)n;
    return 0;
}

int cfg_parse_u64(struct cfg *x, yaml_node_t *v, const char *path, void *dst,
                  const struct cfg_field *f)
{
    uint64_t n;
    if (cfg_uint_value(v, f->min, f->max, &n) != 0)
        return int_error(x, v, path, f);
    *(uint64_t *)dst = n;
    return 0;
}

int cfg_parse_bool(struct cfg *x, yaml_node_t *v, const char *path, void *dst,
                   const struct cfg_field *f)
{
    static const char *const yes[] = {"true", "True", "TRUE"}, *const no[] = {"false", "False",
                                                                              "FALSE"};
    const char *s = cfg_text(v);
    char got[96];
    size_t i;

    (void)f;
    for (i = 0; s && is_plain(v) && i < 3; i++) {
        if (!strcmp(s, yes[i]) || !strcmp(s, no[i])) {
            *(int *)dst = !strcmp(s, yes[i]);
            return 0;
        }
    }
    if (s && is_plain(v) &&
        (!strcasecmp(s, "yes") || !strcasecmp(s, "no") || !strcasecmp(s, "on") ||
         !strcasecmp(s, "off") || !strcasecmp(s, "y") || !strcasecmp(s, "n")))
        return cfg_error(x, cfg_line(v),
                         "%s: expected true or false, got %s (YAML 1.2: yes/no/on/off are "
                         "not booleans)",
                         path, cfg_got_num(v, got, sizeof(got)));
    return cfg_error(x, cfg_line(v), "%s: expected true or false, got %s", path,
                     cfg_got_num(v, got, sizeof(got)));
}

int cfg_parse_frac(struct cfg *x, yaml_node_t *v, const char *path, void *dst,
                   const struct cfg_field *f)
{
    const char *s = cfg_text(v);
    char got[96], *end = NULL;
    double d = 0;

    /* Decimal only: strtod would also take "inf", "nan" and hex floats. */
    if (s && is_plain(v) && *s && strspn(s, "0123456789.eE+-") == v->data.scalar.length) {
        errno = 0;
        d = strtod(s, &end);
    }
    if (!end || *end || errno || d < (double)f->min || d > (double)f->max)
        return cfg_error(x, cfg_line(v), "%s: expected a number from %llu to %llu, got %s", path,
                         (unsigned long long)f->min, (unsigned long long)f->max,
                         cfg_got_num(v, got, sizeof(got)));
    *(double *)dst = d;
    return 0;
}

int cfg_parse_str(struct cfg *x, yaml_node_t *v, const char *path, void *dst,
                  const struct cfg_field *f)
{
    const char *s = cfg_text(v);
    char got[96], **out = dst;
    size_t i;

    (void)f;
    if (!s)
        return cfg_error(x, cfg_line(v), "%s: expected a string, got %s", path,
                         cfg_got(v, got, sizeof(got)));
    for (i = 0; i < v->data.scalar.length; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return cfg_error(x, cfg_line(v), "%s: control characters are not allowed, got %s", path,
                             cfg_got(v, got, sizeof(got)));
    if (!*s)
        return 0; /* "" is "not set", as in username: "" */
    *out = strdup(s);
    if (!*out)
        return cfg_error(x, cfg_line(v), "out of memory");
    return 0;
}

/* Relative paths are taken from the configuration file's directory: a
 * daemon's working directory is / and nobody means that. */
static int resolve_path(struct cfg *x, yaml_node_t *v, char **p)
{
    char *r;
    if (!x->base_dir || (*p)[0] == '/')
        return 0;
    if (asprintf(&r, "%s/%s", x->base_dir, *p) < 0)
        return cfg_error(x, cfg_line(v), "out of memory");
    free(*p);
    *p = r;
    return 0;
}

static int check_readable(struct cfg *x, yaml_node_t *v, const char *path, const char *file,
                          int want_dir)
{
    struct stat st;
    int fd, e = 0;

    /* open(2), not access(2): the effective ids and every ACL decide. */
    fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | (want_dir ? O_DIRECTORY : 0));
    if (fd < 0)
        e = errno;
    else if (fstat(fd, &st) != 0)
        e = errno;
    else if (!want_dir && S_ISDIR(st.st_mode))
        e = EISDIR;
    if (fd >= 0)
        close(fd);
    if (e)
        return cfg_error(x, cfg_line(v), "%s: cannot read %s: %s", path, file, strerror(e));
    return 0;
}

int cfg_parse_rfile(struct cfg *x, yaml_node_t *v, const char *path, void *dst,
                    const struct cfg_field *f)
{
    char **out = dst;
    if (cfg_parse_str(x, v, path, dst, f) != 0)
        return -1;
    if (!*out)
        return 0;
    if (resolve_path(x, v, out) != 0)
        return -1;
    return check_readable(x, v, path, *out, 0);
}

int cfg_parse_rdir(struct cfg *x, yaml_node_t *v, const char *path, void *dst,
                   const struct cfg_field *f)
{
    char **out = dst;
    if (cfg_parse_str(x, v, path, dst, f) != 0)
        return -1;
    if (!*out)
        return 0;
    if (resolve_path(x, v, out) != 0)
        return -1;
    return check_readable(x, v, path, *out, 1);
}

/* ---- loading ------------------------------------------------------------ */

static void syntax_error(struct cfg *x, const yaml_parser_t *p)
{
    if (p->error == YAML_MEMORY_ERROR) {
        snprintf(x->err, x->errlen, "%s: out of memory", x->name);
    } else if (p->error == YAML_READER_ERROR) {
        snprintf(x->err, x->errlen, "%s: %s at byte %zu", x->name,
                 p->problem ? p->problem : "unreadable input", p->problem_offset);
    } else if (p->context) {
        snprintf(x->err, x->errlen, "%s:%zu:%zu: %s (%s at line %zu)", x->name,
                 p->problem_mark.line + 1, p->problem_mark.column + 1,
                 p->problem ? p->problem : "syntax error", p->context, p->context_mark.line + 1);
    } else {
        snprintf(x->err, x->errlen, "%s:%zu:%zu: %s", x->name, p->problem_mark.line + 1,
                 p->problem_mark.column + 1, p->problem ? p->problem : "syntax error");
    }
}

static struct config *load(const char *yaml, size_t len, const char *name, const char *base_dir,
                           char *err, size_t errlen)
{
    char dummy[1];
    struct cfg x = {name,
                    err && errlen ? err : dummy,
                    err && errlen ? errlen : sizeof(dummy),
                    base_dir,
                    NULL,
                    NULL,
                    1};
    yaml_parser_t parser;
    yaml_document_t doc, more;
    yaml_node_t *root;
    int ok = 0, have_doc = 0;

    x.err[0] = '\0';
    if (len > CONFIG_MAX_BYTES) {
        snprintf(x.err, x.errlen, "%s: too large (%zu bytes; at most %u)", name, len,
                 CONFIG_MAX_BYTES);
        return NULL;
    }
    x.c = calloc(1, sizeof(*x.c));
    if (!x.c || !(x.c->source = strdup(name)) || !yaml_parser_initialize(&parser)) {
        snprintf(x.err, x.errlen, "%s: out of memory", name);
        config_free(x.c);
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) {
        syntax_error(&x, &parser);
        goto out;
    }
    have_doc = 1;
    x.doc = &doc;
    root = yaml_document_get_root_node(&doc);
    if (root) {
        /* A second document would be silently ignored: refuse it. */
        if (!yaml_parser_load(&parser, &more)) {
            syntax_error(&x, &parser);
            goto out;
        }
        if (yaml_document_get_root_node(&more)) {
            cfg_error(&x, (unsigned)more.start_mark.line + 1,
                      "only one YAML document is allowed in a configuration file");
            yaml_document_delete(&more);
            goto out;
        }
        yaml_document_delete(&more);
    }
    ok = cfg_schema_root(&x, root) == 0;
out:
    if (have_doc)
        yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (!ok) {
        config_free(x.c);
        return NULL;
    }
    return x.c;
}

struct config *config_load_string(const char *yaml, size_t len, const char *name_for_errors,
                                  char *err, size_t errlen)
{
    return load(yaml, len, name_for_errors ? name_for_errors : "config", NULL, err, errlen);
}

struct config *config_load(const char *path, char *err, size_t errlen)
{
    struct config *c = NULL;
    char *buf = NULL, *base = NULL;
    const char *slash = strrchr(path, '/');
    size_t len = 0;
    FILE *f;
    int e = 0;

    f = fopen(path, "re");
    if (f) {
        /* One byte past the limit tells "too large" from "exactly at it". */
        buf = malloc(CONFIG_MAX_BYTES + 1);
        if (!buf)
            e = ENOMEM;
        else
            len = fread(buf, 1, CONFIG_MAX_BYTES + 1, f);
        if (!e && ferror(f))
            e = errno ? errno : EIO;
        fclose(f);
    } else {
        e = errno;
    }
    if (e) {
        if (err && errlen)
            snprintf(err, errlen, "%s: cannot read: %s", path, strerror(e));
        free(buf);
        return NULL;
    }
    if (slash)
        base = slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
    if (slash && !base) {
        if (err && errlen)
            snprintf(err, errlen, "%s: out of memory", path);
    } else {
        c = load(buf, len, path, base, err, errlen);
    }
    free(base);
    free(buf);
    return c;
}

static void free_relay(struct config_relay *r)
{
    size_t i;
    char **strs[] = {&r->name,
                     &r->host,
                     &r->min_tls,
                     &r->servername,
                     &r->ca_file,
                     &r->ca_dir,
                     &r->tls13_ciphersuites,
                     &r->client_cert,
                     &r->client_key,
                     &r->username,
                     &r->password_file};
    for (i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        free(*strs[i]);
    for (i = 0; i < r->npins; i++)
        free(r->pins[i]);
    free(r->pins);
}

void config_free(struct config *c)
{
    struct config_redis *r;
    size_t i;

    if (!c)
        return;
    r = &c->redis;
    if (r->password)
        explicit_bzero(r->password, strlen(r->password));
    /* The URL may hold the password too. */
    if (r->url)
        explicit_bzero(r->url, strlen(r->url));
    {
        char **strs[] = {&r->url,      &r->host,          &r->unix_path, &r->user,
                         &r->password, &r->password_file, &r->stream,    &r->group,
                         &r->events,   &r->dead,          &r->retry,     &r->state_prefix};
        for (i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
            free(*strs[i]);
    }
    for (i = 0; i < c->nrelays; i++)
        free_relay(&c->relays[i]);
    free(c->relays);
    for (i = 0; i < c->nwarnings; i++)
        free(c->warnings[i]);
    free(c->warnings);
    free(c->metrics.listen);
    free(c->metrics.host);
    free(c->retry.schedule);
    free(c->ehlo_name);
    free(c->source);
    free(c);
}

const struct config_relay *config_relay_find(const struct config *c, const char *name)
{
    size_t i;
    for (i = 0; c && name && i < c->nrelays; i++)
        if (!strcmp(c->relays[i].name, name))
            return &c->relays[i];
    return NULL;
}

unsigned config_workers_effective(const struct config *c)
{
    long n;
    if (c->workers)
        return c->workers;
    n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}
