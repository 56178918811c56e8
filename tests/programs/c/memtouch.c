/* memtouch [-r] PAGES: page faults with known counts, in two steps the caller paces.
 *
 *   memtouch PAGES      maps PAGES fresh anonymous pages, prints "ready pid=N", waits for
 *                       a line on stdin, writes one byte per page (one minor fault each),
 *                       prints what getrusage(2) counted meanwhile, waits for a line, exits.
 *   memtouch -r PAGES   writes every page first (under a cgroup memory limit they are
 *                       pushed out to swap), prints "ready", waits, then reads every page
 *                       again: swap-ins; prints the major faults and the system's pswpin,
 *                       pswpin+zswpin+swpin_zero counts (/proc/vmstat) meanwhile.
 *
 *     pages=1000 minflt=1000 majflt=0 swapins=0 pswpin=0
 *
 * Each page's bytes are never all zero (a zero page is not written to swap at all).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

static long vmstat(const char *key) {
    char line[256];
    long v = 0;
    size_t n = strlen(key);
    FILE *f = fopen("/proc/vmstat", "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && line[n] == ' ') { v = atol(line + n + 1); break; }
    fclose(f);
    return v;
}

static long swapins(void) { return vmstat("pswpin") + vmstat("zswpin") + vmstat("swpin_zero"); }

static void wait_line(void) {
    char buf[64];
    if (!fgets(buf, sizeof buf, stdin)) exit(0);
}

int main(int argc, char **argv) {
    int reread = argc > 2 && !strcmp(argv[1], "-r");
    long pages = atol(argv[argc - 1]);
    long pg = sysconf(_SC_PAGESIZE);
    volatile char *p = mmap(0, pages * pg, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { perror("mmap"); return 1; }
    if (reread)
        for (long i = 0; i < pages; i++) p[i * pg] = (char)(i % 251 + 1);
    printf("ready pid=%d\n", getpid());
    fflush(stdout);
    wait_line();
    struct rusage a, b;
    long s0 = swapins(), w0 = vmstat("pswpin");
    getrusage(RUSAGE_SELF, &a);
    long sum = 0;
    for (long i = 0; i < pages; i++) {
        if (reread) sum += p[i * pg];
        else p[i * pg] = 1;
    }
    getrusage(RUSAGE_SELF, &b);
    long s1 = swapins(), w1 = vmstat("pswpin");
    printf("pages=%ld minflt=%ld majflt=%ld swapins=%ld pswpin=%ld sum=%ld\n", pages,
           b.ru_minflt - a.ru_minflt, b.ru_majflt - a.ru_majflt, s1 - s0, w1 - w0, sum);
    fflush(stdout);
    wait_line();
    return 0;
}
