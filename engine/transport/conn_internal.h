/*
 * conn_internal: the state shared by conn.c (life cycle, receiving, TLS
 * handshake, timers) and conn_send.c (the way out). Not for other modules:
 * they use conn.h.
 */
#ifndef RINGMAIL_CONN_INTERNAL_H
#define RINGMAIL_CONN_INTERNAL_H

#include "conn.h"

#include <sys/uio.h>

#define PLAIN_BUF  1024
#define READ_CHUNK 16384
#define OUT_PIECES 32

enum conn_phase {
    CP_CONNECTING = 1,
    CP_PLAIN = 2,
    CP_HANDSHAKE = 3,
    CP_TLS = 4,
    CP_CLOSING = 5,
    CP_DEAD = 6,
};

enum conn_tag {
    TAG_CONNECT = 1,
    TAG_RECV = 2,
    TAG_RECV_MULTI = 3,
    TAG_SEND = 4,
    TAG_POLL = 5,
    TAG_SPLICE_IN = 6,  /* body file -> pipe */
    TAG_SPLICE_OUT = 7, /* pipe -> socket (the kernel encrypts) */
    TAG_SEND_ZC = 8,
};

struct conn {
    struct loop *loop;
    loop_slot slot;
    int fd;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    struct smtp_client *smtp;
    const char *name;
    struct tls_ctx *tls_ctx;
    struct tls_conn *tls;
    int implicit;
    struct conn_callbacks cb;
    void *user;
    struct conn_timeouts to;
    unsigned keepalive_ms;
    enum conn_phase phase;
    struct loop_timer timer;
    char *pbuf;
    int recv_pending, multi_armed, poll_pending, send_pending;
    size_t send_plain;    /* plaintext bytes in the send in flight (PLAIN / kTLS) */
    int send_cipher;      /* the send in flight carries pending ciphertext */
    unsigned send_zc_min; /* 0: SEND_ZC off (or refused by this socket) */
    int zc_res;           /* result of the SEND_ZC in flight, until its notification */
    int pipe_fd[2];       /* for splicing bodies; -1 until first needed */
    size_t pipe_bytes;    /* spliced into the pipe, not yet out of it */
    int splice_more;      /* body bytes remain beyond the pipe-load in flight */
    int splice_wait;      /* the socket was full: POLLOUT, then splice out again */
    int notify_due;       /* close_notify once what is queued before it has gone */
    int splicing;         /* the send in flight is a spliced body */
    int replies_held;     /* received replies wait for the splice in flight (kTLS) */
    int got_reply;
    int quit_requested;
    int closed_reported;
    int hs_begun, hs_reported; /* the handshake was asked for; its end was reported */
    struct conn_stats st;
};

/* conn.c */
void conn_process_events(struct conn *c);
void conn_finish_close(struct conn *c);

/* conn_send.c */
/* Send what is queued, unless a send is in flight or the phase forbids. */
void conn_pump(struct conn *c);
void conn_on_sent(struct conn *c, int res);
void conn_on_spliced(struct conn *c, int tag, int res);
/* Move the pipe-load to the socket (the kernel encrypts on the way out). */
void conn_splice_out(struct conn *c);

#endif
