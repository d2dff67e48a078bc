/*
 * check.h: the few assertion macros the unit tests share. A failed check
 * prints where and what, and the test keeps going so that one run shows
 * every failure; check_done() prints the tally and gives the exit status.
 */
#ifndef RINGMAIL_TEST_CHECK_H
#define RINGMAIL_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_passed;
static int check_failed;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (cond) {                                                                                \
            check_passed++;                                                                        \
        } else {                                                                                   \
            check_failed++;                                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define CHECK_INT(got, want)                                                                       \
    do {                                                                                           \
        long long check_g_ = (long long)(got), check_w_ = (long long)(want);                       \
        if (check_g_ == check_w_) {                                                                \
            check_passed++;                                                                        \
        } else {                                                                                   \
            check_failed++;                                                                        \
            fprintf(stderr, "%s:%d: %s == %lld, want %lld\n", __FILE__, __LINE__, #got, check_g_,  \
                    check_w_);                                                                     \
        }                                                                                          \
    } while (0)

#define CHECK_STR(got, want)                                                                       \
    do {                                                                                           \
        const char *check_g_ = (got), *check_w_ = (want);                                          \
        if (check_g_ && check_w_ && strcmp(check_g_, check_w_) == 0) {                             \
            check_passed++;                                                                        \
        } else {                                                                                   \
            check_failed++;                                                                        \
            fprintf(stderr, "%s:%d: %s == \"%s\", want \"%s\"\n", __FILE__, __LINE__, #got,        \
                    check_g_ ? check_g_ : "(null)", check_w_ ? check_w_ : "(null)");               \
        }                                                                                          \
    } while (0)

#define CHECK_MEM(got, got_len, want, want_len)                                                    \
    do {                                                                                           \
        size_t check_gl_ = (got_len), check_wl_ = (want_len);                                      \
        if (check_gl_ == check_wl_ && memcmp((got), (want), check_gl_) == 0) {                     \
            check_passed++;                                                                        \
        } else {                                                                                   \
            check_failed++;                                                                        \
            fprintf(stderr, "%s:%d: %s (%zu bytes) differs from %s (%zu bytes)\n", __FILE__,       \
                    __LINE__, #got, check_gl_, #want, check_wl_);                                  \
        }                                                                                          \
    } while (0)

/* Prints the tally in the form CI reads ("N passed, N failed"). */
static inline int check_done(void)
{
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
