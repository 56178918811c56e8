/* opens N PATH: opens PATH N times with openat(2) directly; prints how many it made. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 10;
    const char *path = argc > 2 ? argv[2] : "/dev/null";
    int done = 0;
    usleep(100000); /* let the tracer's tracepoint settle before the first open */
    for (int i = 0; i < n; i++) {
        int fd = syscall(SYS_openat, AT_FDCWD, path, O_RDONLY);
        if (fd >= 0) { close(fd); done++; }
    }
    printf("openat=%d\n", done);
    return 0;
}
