/* replay_main.c — a plain main() for a libFuzzer target, so that `make
 * check` replays the seed corpora (and every crash ever added to them) with
 * any compiler, without libFuzzer. Arguments are files or directories; with
 * none, the directory compiled in as FUZZ_CORPUS is replayed. Exit 0 when
 * every input ran (a crash shows as a signal, i.e. a failed test). */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fprintf(stderr, "replay: %s: out of memory\n", path);
            fclose(f);
            return -1;
        }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        uint8_t *b = realloc(buf, cap * 2);
        if (!b)
            free(buf);
        buf = b;
        cap *= 2;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 0;
}

/* Replays a file, or every file of a directory in name order; returns the
 * number of inputs run, or -1. */
static int replay(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return replay_file(path) == 0 ? 1 : -1;
    struct dirent **list;
    int n = scandir(path, &list, NULL, alphasort);
    if (n < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int count = 0, bad = 0;
    for (int i = 0; i < n; i++) {
        char file[4096];
        if (list[i]->d_name[0] != '.' &&
            (size_t)snprintf(file, sizeof file, "%s/%s", path, list[i]->d_name) < sizeof file &&
            stat(file, &st) == 0 && S_ISREG(st.st_mode)) {
            if (replay_file(file) == 0)
                count++;
            else
                bad = 1;
        }
        free(list[i]);
    }
    free(list);
    return bad ? -1 : count;
}

int main(int argc, char **argv)
{
    int total = 0;
    if (argc < 2) {
#ifdef FUZZ_CORPUS
        int n = replay(FUZZ_CORPUS);
        if (n < 0)
            return 1;
        if (n == 0) {
            fprintf(stderr, "replay: no inputs in %s\n", FUZZ_CORPUS);
            return 1;
        }
        printf("replayed %d input(s) of %s\n", n, FUZZ_CORPUS);
        return 0;
#else
        fprintf(stderr, "usage: %s FILE-OR-DIR...\n", argv[0]);
        return 2;
#endif
    }
    for (int i = 1; i < argc; i++) {
        int n = replay(argv[i]);
        if (n < 0)
            return 1;
        total += n;
    }
    printf("replayed %d input(s)\n", total);
    return 0;
}
