/* sleeper MS...: calls sleepy(ms) once per argument; sleepy sleeps that many ms.
 * Also recurse(n): n nested calls, each sleeping 1 ms, to test recursion. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

__attribute__((noinline)) int sleepy(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    return ms;
}

__attribute__((noinline)) int recurse(int n) {
    sleepy(1);
    return n <= 0 ? 0 : 1 + recurse(n - 1);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == 'r') {
            printf("recurse %d\n", recurse(atoi(argv[i] + 1)));
        } else {
            printf("sleepy %d\n", sleepy(atoi(argv[i])));
        }
    }
    return 0;
}
