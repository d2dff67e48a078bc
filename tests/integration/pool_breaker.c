/*
 * pool_breaker: the pool's circuit breaker against a relay that keeps
 * refusing on policy grounds (the sink with an expired certificate).
 *
 * usage: pool_breaker PORT CA_FILE
 * A queued job waits while connections fail; the third certificate failure
 * opens the breaker, which fails the job with the reason; a job submitted
 * while it is open fails at once; and no connection is attempted during
 * the cool-down (the relay is not hammered).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "check.h"
#include "loop.h"
#include "pool.h"
#include "tls.h"

struct job {
    struct pool_job pj;
    struct smtp_client_rcpt_result res[1];
    int done;
    enum smtp_client_reason reason;
};

static const char body[] = "Subject: x\r\n\r\nhi\r\n";

static int prepare(struct pool_job *pj, enum message_encoding enc)
{
    (void)enc;
    pj->txn.body = body;
    pj->txn.body_len = sizeof(body) - 1;
    pj->txn.facts.size = sizeof(body) - 1;
    return 0;
}

static void done(struct pool_job *pj, enum smtp_client_reason reason, const char *detail,
                 const struct tls_facts *facts)
{
    struct job *j = (struct job *)pj;
    (void)detail;
    (void)facts;
    j->done = 1;
    j->reason = reason;
}

static const char *rcpts[1] = {"rcpt@example.net"};

static void init_job(struct job *j)
{
    memset(j, 0, sizeof(*j));
    j->pj.txn.from = "sender@example.org";
    j->pj.txn.rcpts = rcpts;
    j->pj.txn.nrcpt = 1;
    j->pj.txn.results = j->res;
    j->pj.prepare = prepare;
    j->pj.done = done;
}

int main(int argc, char **argv)
{
    struct loop *loop;
    struct loop_config lc = {0};
    struct tls_policy pol = {0};
    struct pool_config pc;
    struct pool_stats st;
    struct sockaddr_in *sin;
    struct tls_ctx *tls;
    struct pool *pool;
    struct job a, b;
    char err[256];
    int i;

    if (argc != 3) {
        fprintf(stderr, "usage: pool_breaker PORT CA_FILE\n");
        return 64;
    }
    signal(SIGPIPE, SIG_IGN);
    lc.buf_count = 16;
    if (loop_create(&loop, &lc) < 0)
        return 1;
    pol.servername = "localhost";
    pol.ca_file = argv[2];
    tls = tls_ctx_new(&pol, err, sizeof(err));
    if (!tls) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    memset(&pc, 0, sizeof(pc));
    pc.name = "expired-relay";
    sin = (struct sockaddr_in *)&pc.addr;
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)atoi(argv[1]));
    inet_pton(AF_INET, "127.0.0.1", &sin->sin_addr);
    pc.addrlen = sizeof(*sin);
    pc.smtp.ehlo_name = "client.test";
    pc.smtp.tls_mode = SMTP_CLIENT_STARTTLS;
    pc.tls = tls;
    pc.connections = 1;
    pc.backoff_min_ms = 20;
    pc.backoff_max_ms = 40;
    pc.fail_queued_after = 100; /* jobs wait: only the breaker fails them */
    pc.breaker_threshold = 3;
    pc.breaker_cooldown_ms = 60000;
    pool = pool_new(loop, &pc, err, sizeof(err));
    if (!pool)
        return 1;

    init_job(&a);
    pool_submit(pool, &a.pj);
    for (i = 0; i < 400 && !a.done; i++)
        loop_run_once(loop, 10);
    pool_get_stats(pool, &st);
    CHECK(a.done);
    CHECK_INT(a.reason, SMTP_CLIENT_R_CERT_VERIFY);
    CHECK_INT(a.res[0].outcome, SMTP_CLIENT_TEMPORARY);
    CHECK(strstr(a.res[0].reply, "expired") != NULL);
    CHECK_INT(st.connects, 3);
    CHECK_INT(st.breaker_opens, 1);
    CHECK_INT(st.breaker_open, 1);

    /* While open, a new job fails at once, before any I/O. */
    init_job(&b);
    pool_submit(pool, &b.pj);
    CHECK(b.done);
    CHECK_INT(b.reason, SMTP_CLIENT_R_CERT_VERIFY);

    /* And the relay is left alone during the cool-down. */
    for (i = 0; i < 30; i++)
        loop_run_once(loop, 10);
    pool_get_stats(pool, &st);
    CHECK_INT(st.connects, 3);

    pool_free(pool);
    for (i = 0; i < 50; i++)
        loop_run_once(loop, 10);
    loop_destroy(loop);
    tls_ctx_free(tls);
    return check_done();
}
