/* loops KIND N [ARG]: a tight loop of one kind of kernel event, for the benchmarks; prints
 * how many it made and the wall time per operation:
 *
 *     loops exec N MARK    fork + execve("/bin/true", MARK, "arg two") + wait, N times
 *     loops open N PATH    openat(PATH) + close, N times
 *     loops pingpong N     N round trips over two pipes with a child process (each one
 *                          wakes the other: 2 wake-ups and 2 context switches a trip)
 *     loops touch N        N page faults: fresh anonymous pages, one byte each
 *
 *     kind=open n=500000 ns_per_op=812.4
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: loops KIND N [ARG]\n"); return 2; }
    const char *kind = argv[1];
    long n = atol(argv[2]);
    const char *arg = argc > 3 ? argv[3] : "/dev/null";
    double t0 = now();
    if (!strcmp(kind, "exec")) {
        for (long i = 0; i < n; i++) {
            pid_t pid = fork();
            if (pid == 0) {
                char *const av[] = {"/bin/true", (char *)arg, "arg two", NULL};
                execv(av[0], av);
                _exit(127);
            }
            waitpid(pid, NULL, 0);
        }
    } else if (!strcmp(kind, "open")) {
        for (long i = 0; i < n; i++) {
            int fd = syscall(SYS_openat, AT_FDCWD, arg, O_RDONLY);
            if (fd >= 0) close(fd);
        }
    } else if (!strcmp(kind, "pingpong")) {
        int ab[2], ba[2];
        char c = 0;
        if (pipe(ab) || pipe(ba)) { perror("pipe"); return 1; }
        if (fork() == 0) {
            for (long i = 0; i < n; i++)
                if (read(ab[0], &c, 1) != 1 || write(ba[1], &c, 1) != 1) _exit(1);
            _exit(0);
        }
        for (long i = 0; i < n; i++)
            if (write(ab[1], &c, 1) != 1 || read(ba[0], &c, 1) != 1) return 1;
        wait(NULL);
    } else if (!strcmp(kind, "touch")) {
        long pg = sysconf(_SC_PAGESIZE), chunk = 16384;
        for (long done = 0; done < n; done += chunk) {
            long pages = n - done < chunk ? n - done : chunk;
            char *p = mmap(0, pages * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED) { perror("mmap"); return 1; }
            for (long i = 0; i < pages; i++) p[i * pg] = 1;
            munmap(p, pages * pg);
        }
    } else {
        fprintf(stderr, "unknown kind %s\n", kind);
        return 2;
    }
    printf("kind=%s n=%ld ns_per_op=%.1f\n", kind, n, (now() - t0) / n);
    return 0;
}
