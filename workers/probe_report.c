/*
 * probe_report: the verdict of `ringmail probe` and its two renderings, a
 * short human report and JSON with every fact for tools.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "probe.h"

static void reason(struct probe_result *r, char grade, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void reason(struct probe_result *r, char grade, const char *fmt, ...)
{
    va_list ap;

    if (r->nreasons >= PROBE_REASONS_MAX)
        return;
    r->reasons[r->nreasons].grade = grade;
    va_start(ap, fmt);
    vsnprintf(r->reasons[r->nreasons].text, PROBE_TEXT, fmt, ap);
    va_end(ap);
    r->nreasons++;
    if (grade > r->grade) /* letters sort as grades: A < B < C < F */
        r->grade = grade;
}

void probe_grade(struct probe_result *r)
{
    const struct probe_tls_facts *t = &r->tls;
    int v;

    r->grade = 'A';
    if (!r->implicit) {
        if (!r->starttls_offered)
            reason(r, 'F', "STARTTLS not advertised in EHLO");
        if (r->starttls_code != 220) {
            reason(r, 'F', "STARTTLS answered %d, not 220: no TLS", r->starttls_code);
            return;
        }
        if (r->plaintext_after_220)
            reason(r, 'F', "plaintext after 220: %zu bytes sent after the STARTTLS reply",
                   r->plaintext_after_220);
        if (r->ehlo_pre.ext & SMTP_EXT_AUTH) {
            if (!(r->ehlo_post.ext & SMTP_EXT_AUTH))
                reason(r, 'F', "AUTH only before TLS: credentials would go in clear");
            else
                reason(r, 'B', "AUTH offered before TLS as well as after it");
        }
    }
    if (!t->done) {
        reason(r, 'F', "no TLS 1.2+ handshake with a verifying client: %s", t->error);
        return;
    }
    if (t->verify_code != 0)
        reason(r, 'F', "certificate: %s", t->verify);
    if (!t->host_match)
        reason(r, 'F', "certificate: host name mismatch for %s", r->servername);
    /* The verify result already names an expired chain; this catches a
     * verifier that was told to ignore time. */
    if (t->verify_code == 0 && t->days_left < 0)
        reason(r, 'F', "certificate: expired %ld days ago", -t->days_left);
    if (r->injectable == 1)
        reason(r, 'F', "STARTTLS command injection (CVE-2011-0411): %s", r->injection_detail);
    if (strcmp(t->protocol, "TLSv1.3") != 0 && !(t->aead && t->forward_secret))
        reason(r, 'B', "negotiated %s %s is not AEAD with forward secrecy", t->protocol, t->cipher);
    for (v = 0; v < PV_COUNT; v++) {
        char g;
        if (r->v[v].acc != PROBE_ACCEPTED || v == PV_TLS12 || v == PV_TLS13)
            continue;
        /* Old versions and broken ciphers weigh more than CBC or kRSA;
         * suites without encryption or authentication are no TLS at all. */
        g = v == PV_TLS10 || v == PV_TLS11 || v == PV_RC4 ? 'C'
            : v == PV_NULL_ANON || v == PV_EXPORT         ? 'F'
                                                          : 'B';
        reason(r, g, "accepts %s (%s)", probe_variant_name((enum probe_variant)v), r->v[v].cipher);
    }
}

static const char *yes(int b)
{
    return b ? "yes" : "no";
}

static void caps_text(FILE *f, const char *label, const struct smtp_ehlo *e)
{
    static const struct {
        unsigned bit;
        const char *name;
    } exts[] = {{SMTP_EXT_STARTTLS, "STARTTLS"}, {SMTP_EXT_AUTH, "AUTH"},
                {SMTP_EXT_SIZE, "SIZE"},         {SMTP_EXT_PIPELINING, "PIPELINING"},
                {SMTP_EXT_CHUNKING, "CHUNKING"}, {SMTP_EXT_8BITMIME, "8BITMIME"},
                {SMTP_EXT_SMTPUTF8, "SMTPUTF8"}, {SMTP_EXT_REQUIRETLS, "REQUIRETLS"}};
    size_t i;

    fprintf(f, "  %-18s", label);
    for (i = 0; i < sizeof(exts) / sizeof(exts[0]); i++)
        if (e->ext & exts[i].bit)
            fprintf(f, " %s", exts[i].name);
    if (e->ext & SMTP_EXT_AUTH)
        fprintf(f, " (AUTH%s%s%s%s)", e->auth & SMTP_AUTH_PLAIN ? " PLAIN" : "",
                e->auth & SMTP_AUTH_LOGIN ? " LOGIN" : "",
                e->auth & SMTP_AUTH_CRAM_MD5 ? " CRAM-MD5" : "",
                e->auth & SMTP_AUTH_XOAUTH2 ? " XOAUTH2" : "");
    fputc('\n', f);
}

void probe_print_text(FILE *f, const struct probe_result *r)
{
    const struct probe_tls_facts *t = &r->tls;
    size_t i;
    int v;

    fprintf(f, "ringmail probe %s (%s)\n", r->target, r->implicit ? "implicit TLS" : "STARTTLS");
    fprintf(f, "  banner             %d %s\n", r->banner_code, r->banner);
    if (!r->implicit) {
        caps_text(f, "EHLO before TLS", &r->ehlo_pre);
        fprintf(f, "  STARTTLS reply     %d %s\n", r->starttls_code, r->starttls_reply);
        if (r->starttls_code == 220)
            fprintf(f, "  after the 220      %zu plaintext bytes\n", r->plaintext_after_220);
    }
    if (t->done) {
        fprintf(f, "  TLS                %s %s group=%s sigalg=%s (%.1f ms)\n", t->protocol,
                t->cipher, t->group[0] ? t->group : "-", t->sigalg[0] ? t->sigalg : "-",
                t->handshake_ms);
        fprintf(f, "  AEAD / FS          %s / %s\n", yes(t->aead), yes(t->forward_secret));
        fprintf(f, "  verify             %s; host %s %s\n", t->verify, r->servername,
                t->host_match ? "matches" : "MISMATCH");
        fprintf(f, "  certificate        %s %d bits, %s (hash %s), %ld days left, OCSP %s\n",
                t->key_type, t->key_bits, t->cert_sigalg, t->sig_hash, t->days_left,
                t->ocsp_stapled ? "stapled" : "not stapled");
        for (i = 0; i < t->nchain; i++)
            fprintf(f, "  chain[%zu]           %s  <- %s\n", i, t->subject[i], t->issuer[i]);
        fprintf(f, "  kTLS               tx %s, rx %s\n", yes(t->ktls_tx), yes(t->ktls_rx));
        caps_text(f, "EHLO after TLS", &r->ehlo_post);
    } else if (r->implicit || r->starttls_code == 220) {
        fprintf(f, "  TLS                failed: %s\n", t->error);
    }
    for (v = 0; v < PV_COUNT; v++)
        if (r->v[v].acc != PROBE_NOT_TESTED || r->v[v].detail[0])
            fprintf(f, "  %-18s %s%s%s\n", probe_variant_name((enum probe_variant)v),
                    probe_acc_name(r->v[v].acc), r->v[v].acc == PROBE_ACCEPTED ? " " : "",
                    r->v[v].acc == PROBE_ACCEPTED ? r->v[v].cipher : "");
    if (r->injectable >= 0 || r->injection_detail[0])
        fprintf(f, "  injection          %s\n", r->injection_detail);
    fprintf(f, "Grade %c\n", r->grade);
    for (i = 0; i < r->nreasons; i++)
        fprintf(f, "  [%c] %s\n", r->reasons[i].grade, r->reasons[i].text);
}

/* ---- JSON: a minimal writer; strings escaped per RFC 8259 ---- */

static void jstr(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch == '\n')
            fputs("\\n", f);
        else if (ch == '\r')
            fputs("\\r", f);
        else if (ch == '\t')
            fputs("\\t", f);
        else if (ch < 0x20 || ch >= 0x7f)
            fprintf(f, "\\u%04x", ch); /* bytes, not UTF-8: the text came off the wire */
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void jkey(FILE *f, int *first, const char *k)
{
    fputs(*first ? "" : ",", f);
    *first = 0;
    jstr(f, k);
    fputc(':', f);
}

static void jkv_s(FILE *f, int *first, const char *k, const char *v)
{
    jkey(f, first, k);
    jstr(f, v);
}

static void jkv_i(FILE *f, int *first, const char *k, long v)
{
    jkey(f, first, k);
    fprintf(f, "%ld", v);
}

static void jkv_b(FILE *f, int *first, const char *k, int v)
{
    jkey(f, first, k);
    fputs(v ? "true" : "false", f);
}

static void jcaps(FILE *f, int *first, const char *k, const struct smtp_ehlo *e)
{
    int ff = 1;
    jkey(f, first, k);
    fputc('{', f);
    jkv_b(f, &ff, "starttls", e->ext & SMTP_EXT_STARTTLS);
    jkv_b(f, &ff, "auth", e->ext & SMTP_EXT_AUTH);
    jkv_b(f, &ff, "auth_plain", e->auth & SMTP_AUTH_PLAIN);
    jkv_b(f, &ff, "auth_login", e->auth & SMTP_AUTH_LOGIN);
    jkv_b(f, &ff, "auth_cram_md5", e->auth & SMTP_AUTH_CRAM_MD5);
    jkv_b(f, &ff, "auth_xoauth2", e->auth & SMTP_AUTH_XOAUTH2);
    jkv_b(f, &ff, "size", e->ext & SMTP_EXT_SIZE);
    jkv_i(f, &ff, "size_max", (long)e->size_max);
    jkv_b(f, &ff, "pipelining", e->ext & SMTP_EXT_PIPELINING);
    jkv_b(f, &ff, "chunking", e->ext & SMTP_EXT_CHUNKING);
    jkv_b(f, &ff, "8bitmime", e->ext & SMTP_EXT_8BITMIME);
    jkv_b(f, &ff, "smtputf8", e->ext & SMTP_EXT_SMTPUTF8);
    jkv_b(f, &ff, "requiretls", e->ext & SMTP_EXT_REQUIRETLS);
    fputc('}', f);
}

void probe_print_json(FILE *f, const struct probe_result *r)
{
    const struct probe_tls_facts *t = &r->tls;
    char g[2] = {r->grade, '\0'};
    int first = 1, ff;
    size_t i;
    int v;

    fputc('{', f);
    jkv_s(f, &first, "target", r->target);
    jkv_s(f, &first, "servername", r->servername);
    jkv_b(f, &first, "implicit_tls", r->implicit);
    jkv_b(f, &first, "reached", r->reached);
    jkv_s(f, &first, "error", r->error);
    jkv_i(f, &first, "banner_code", r->banner_code);
    jkv_s(f, &first, "banner", r->banner);
    jkv_i(f, &first, "ehlo_pre_tls_code", r->ehlo_pre_code);
    jcaps(f, &first, "ehlo_pre_tls", &r->ehlo_pre);
    jkv_i(f, &first, "starttls_code", r->starttls_code);
    jkv_s(f, &first, "starttls_reply", r->starttls_reply);
    jkv_i(f, &first, "plaintext_after_220", (long)r->plaintext_after_220);
    jkv_s(f, &first, "plaintext_after_220_sample", r->plaintext_sample);
    jkey(f, &first, "tls");
    ff = 1;
    fputc('{', f);
    jkv_b(f, &ff, "handshake", t->done);
    jkv_s(f, &ff, "error", t->error);
    jkv_s(f, &ff, "protocol", t->protocol);
    jkv_s(f, &ff, "cipher", t->cipher);
    jkv_s(f, &ff, "group", t->group);
    jkv_s(f, &ff, "signature_algorithm", t->sigalg);
    jkv_b(f, &ff, "aead", t->aead);
    jkv_b(f, &ff, "forward_secret", t->forward_secret);
    jkv_i(f, &ff, "verify_code", t->verify_code);
    jkv_s(f, &ff, "verify", t->verify);
    jkv_b(f, &ff, "host_match", t->host_match);
    jkv_i(f, &ff, "days_left", t->days_left);
    jkv_s(f, &ff, "key_type", t->key_type);
    jkv_i(f, &ff, "key_bits", t->key_bits);
    jkv_s(f, &ff, "cert_signature", t->cert_sigalg);
    jkv_s(f, &ff, "cert_signature_hash", t->sig_hash);
    jkv_b(f, &ff, "ocsp_stapled", t->ocsp_stapled);
    jkey(f, &ff, "handshake_ms");
    fprintf(f, "%.3f", t->handshake_ms);
    jkv_b(f, &ff, "ktls_tx", t->ktls_tx);
    jkv_b(f, &ff, "ktls_rx", t->ktls_rx);
    jkey(f, &ff, "chain");
    fputc('[', f);
    for (i = 0; i < t->nchain; i++) {
        int fc = 1;
        fputs(i ? ",{" : "{", f);
        jkv_s(f, &fc, "subject", t->subject[i]);
        jkv_s(f, &fc, "issuer", t->issuer[i]);
        fputc('}', f);
    }
    fputs("]}", f);
    jkv_i(f, &first, "ehlo_post_tls_code", r->ehlo_post_code);
    jcaps(f, &first, "ehlo_post_tls", &r->ehlo_post);
    jkey(f, &first, "accepts");
    ff = 1;
    fputc('{', f);
    for (v = 0; v < PV_COUNT; v++) {
        int fc = 1;
        jkey(f, &ff, probe_variant_name((enum probe_variant)v));
        fputc('{', f);
        jkv_s(f, &fc, "result", probe_acc_name(r->v[v].acc));
        jkv_s(f, &fc, "cipher", r->v[v].cipher);
        jkv_s(f, &fc, "detail", r->v[v].detail);
        fputc('}', f);
    }
    fputc('}', f);
    jkey(f, &first, "injectable");
    fputs(r->injectable < 0 ? "null" : r->injectable ? "true" : "false", f);
    jkv_s(f, &first, "injection_detail", r->injection_detail);
    jkv_s(f, &first, "grade", g);
    jkey(f, &first, "reasons");
    fputc('[', f);
    for (i = 0; i < r->nreasons; i++) {
        int fc = 1;
        char rg[2] = {r->reasons[i].grade, '\0'};
        fputs(i ? ",{" : "{", f);
        jkv_s(f, &fc, "grade", rg);
        jkv_s(f, &fc, "reason", r->reasons[i].text);
        fputc('}', f);
    }
    fputs("]}\n", f);
}
