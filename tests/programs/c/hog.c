/* hog MS | hog -s N: burn MS milliseconds of CPU time, or sleep 1 ms N times; then print
 * what the kernel's scheduler accounted for this task (/proc/self/schedstat: time on the
 * CPU, time spent runnable waiting on a run queue, number of times it got a CPU):
 *
 *     pid=123 run_ns=500123456 wait_ns=498765432 slices=140
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double cpu_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
    if (argc > 2 && !strcmp(argv[1], "-s")) {
        for (int i = atoi(argv[2]); i > 0; i--) usleep(1000);
    } else {
        double ms = argc > 1 ? atof(argv[1]) : 1000;
        volatile unsigned long spin = 0;
        while (cpu_ms() < ms)
            for (int i = 0; i < 100000; i++) spin++;
    }
    unsigned long long run, wait, slices;
    FILE *f = fopen("/proc/self/schedstat", "r");
    if (!f || fscanf(f, "%llu %llu %llu", &run, &wait, &slices) != 3) { perror("schedstat"); return 1; }
    printf("pid=%d run_ns=%llu wait_ns=%llu slices=%llu\n", getpid(), run, wait, slices);
    return 0;
}
