/* execloop: N execve() calls of a missing file as fast as one process can make them (each
 * fails with ENOENT: an exec event without a new process), then, after a pause, an exec of
 * LAST in place: the ground truth for an exec tracer under overflow. Prints "execs=K" (the
 * failed calls it made) on stderr before the last exec.
 *
 *   execloop 100000 /bin/true
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: execloop N LAST\n");
        return 2;
    }
    int n = atoi(argv[1]), failed = 0;
    char *missing[] = {"/nonexistent/lumos-execloop", "an-arg", NULL};
    for (int i = 0; i < n; i++)
        if (execve(missing[0], missing, environ) < 0 && errno == ENOENT)
            failed++;
    fprintf(stderr, "execs=%d\n", failed);
    usleep(500000); /* the tracer drains its ring meanwhile */
    char *last[] = {argv[2], NULL};
    execve(argv[2], last, environ);
    return 1;
}
