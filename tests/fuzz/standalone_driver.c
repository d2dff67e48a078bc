/*
 * standalone_driver: runs a libFuzzer-style target without libFuzzer, for
 * compilers that lack it. It replays every file of the seed corpus, then
 * feeds random inputs (mutated seeds and fresh bytes) until the time is up.
 * Not coverage-guided: the clang build is the real fuzzer; this keeps the
 * targets compiled and exercised everywhere.
 *
 * usage: fuzz_X SECONDS [CORPUS_DIR]
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SEEDS        256
#define DRIVER_MAX_INPUT 8192

static uint8_t *seeds[MAX_SEEDS];
static size_t seed_len[MAX_SEEDS];
static size_t nseeds;

static void load_corpus(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    if (!d)
        return;
    while ((e = readdir(d)) && nseeds < MAX_SEEDS) {
        char path[4096];
        FILE *f;
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        f = fopen(path, "rb");
        if (!f)
            continue;
        seeds[nseeds] = malloc(DRIVER_MAX_INPUT);
        seed_len[nseeds] = fread(seeds[nseeds], 1, DRIVER_MAX_INPUT, f);
        fclose(f);
        LLVMFuzzerTestOneInput(seeds[nseeds], seed_len[nseeds]);
        nseeds++;
    }
    closedir(d);
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 5;
    time_t end;
    unsigned long runs = 0;
    static uint8_t buf[DRIVER_MAX_INPUT];

    if (argc > 2)
        load_corpus(argv[2]);
    srand((unsigned)time(NULL));
    end = time(NULL) + (time_t)seconds;
    while (time(NULL) < end) {
        size_t len, i;
        if (nseeds && rand() % 4) {
            size_t s = (size_t)rand() % nseeds;
            len = seed_len[s];
            memcpy(buf, seeds[s], len);
            for (i = 0; i < 1 + (size_t)rand() % 8 && len; i++)
                buf[(size_t)rand() % len] = (uint8_t)rand();
            if (rand() % 2 && len)
                len = (size_t)rand() % len + 1;
        } else {
            len = (size_t)rand() % 1024;
            for (i = 0; i < len; i++)
                buf[i] = (uint8_t)(rand() % 3 ? "250- \r\n.ATS0123456789"[rand() % 22] : rand());
        }
        LLVMFuzzerTestOneInput(buf, len);
        runs++;
    }
    for (size_t i = 0; i < nseeds; i++)
        free(seeds[i]);
    printf("standalone fuzz driver: %lu runs, %zu seeds\n", runs, nseeds);
    return 0;
}
