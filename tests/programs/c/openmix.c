/* openmix [-w] [-u UID] [-n ROUNDS] SPEC...: makes each open a SPEC names, ROUNDS times, and
 * prints one line per open with what it asked and what the kernel answered:
 *
 *     call=openat flags=0101 mode=0640 fd=3 err=0 path=/tmp/x
 *
 * SPEC is CALL:HOW:PATH with CALL open|openat|openat2 (raw syscalls: no libc wrapper
 * decides for us) and HOW r (O_RDONLY), w (O_WRONLY|O_CREAT|O_TRUNC, 0640),
 * x (O_WRONLY|O_CREAT|O_EXCL, 0600), d (O_RDONLY|O_DIRECTORY). -u drops to UID first
 * (so that root-only files fail with EACCES). -w prints "ready pid=N" and waits for a line
 * on stdin before the first open. Successful fds are closed at once.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <errno.h>

int main(int argc, char **argv) {
    int rounds = 1, opt, wait = 0;
    while ((opt = getopt(argc, argv, "wu:n:")) != -1) {
        if (opt == 'u') {
            uid_t uid = atoi(optarg);
            if (setresgid(uid, uid, uid) || setresuid(uid, uid, uid)) { perror("setresuid"); return 1; }
        } else if (opt == 'w') {
            wait = 1;
        } else if (opt == 'n') {
            rounds = atoi(optarg);
        } else {
            return 2;
        }
    }
    if (wait) {
        char buf[16];
        printf("ready pid=%d\n", getpid());
        fflush(stdout);
        if (!fgets(buf, sizeof buf, stdin)) return 0;
    } else {
        usleep(100000); /* let the tracer settle */
    }
    for (int r = 0; r < rounds; r++) {
        for (int i = optind; i < argc; i++) {
            char call[16], how;
            int n = 0;
            if (sscanf(argv[i], "%15[a-z0-9]:%c:%n", call, &how, &n) != 2 || !n) {
                fprintf(stderr, "bad spec %s\n", argv[i]);
                return 2;
            }
            const char *path = argv[i] + n;
            int flags = O_RDONLY, mode = 0;
            if (how == 'w') { flags = O_WRONLY | O_CREAT | O_TRUNC; mode = 0640; }
            if (how == 'x') { flags = O_WRONLY | O_CREAT | O_EXCL; mode = 0600; }
            if (how == 'd') flags = O_RDONLY | O_DIRECTORY;
            long fd;
            if (!strcmp(call, "open")) {
                fd = syscall(SYS_open, path, flags, mode);
            } else if (!strcmp(call, "openat")) {
                fd = syscall(SYS_openat, AT_FDCWD, path, flags, mode);
            } else {
                struct open_how oh = { .flags = flags, .mode = mode };
                fd = syscall(SYS_openat2, AT_FDCWD, path, &oh, sizeof oh);
            }
            int err = fd < 0 ? errno : 0;
            printf("call=%s flags=0%o mode=0%o fd=%ld err=%d path=%s\n", call, flags, mode,
                   fd < 0 ? -1L : fd, err, path);
            if (fd >= 0) close(fd);
        }
    }
    fflush(stdout);
    return 0;
}
