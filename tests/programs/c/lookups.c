/* lookups: resolves each name on its command line and prints what it did,
 * "lookup NAME MS ADDRESS" per lookup, MS measured around the call with
 * CLOCK_MONOTONIC. -a (default) uses getaddrinfo(AF_UNSPEC), -g gethostbyname, -2
 * gethostbyname2(AF_INET); -wait prints "ready" and waits for a line on stdin first;
 * -r N looks each later name up N times and prints "lookups NAME N MS" (the total). */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

static double lookup(char mode, const char *name, char *addr, size_t size);

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
    char mode = 'a';
    long repeat = 1;
    for (int i = 1; i < argc; i++) {
        const char *name = argv[i];
        if (!strcmp(name, "-wait")) {
            char line[64];
            printf("ready\n");
            fflush(stdout);
            if (!fgets(line, sizeof line, stdin))
                return 1;
            continue;
        }
        if (!strcmp(name, "-r") && i + 1 < argc) {
            repeat = atol(argv[++i]);
            continue;
        }
        if (name[0] == '-') {
            mode = name[1];
            continue;
        }
        char addr[INET6_ADDRSTRLEN] = "error";
        if (repeat > 1) {
            double total = 0;
            for (long k = 0; k < repeat; k++)
                total += lookup(mode, name, addr, sizeof addr);
            printf("lookups %s %ld %.3f %s\n", name, repeat, total, addr);
        } else {
            double ms = lookup(mode, name, addr, sizeof addr);
            printf("lookup %s %.3f %s\n", name, ms, addr);
        }
        fflush(stdout);
    }
    return 0;
}

/* One lookup: its duration in ms; addr gets the first IPv4 address, or stays "error". */
static double lookup(char mode, const char *name, char *addr, size_t size) {
    double t0 = now_ms(), ms;
    if (mode == 'a') {
        struct addrinfo hints = {0}, *res = NULL;
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        int rc = getaddrinfo(name, NULL, &hints, &res);
        ms = now_ms() - t0;
        if (rc == 0 && res->ai_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, addr, size);
        if (res)
            freeaddrinfo(res);
    } else {
        struct hostent *h = mode == 'g' ? gethostbyname(name) : gethostbyname2(name, AF_INET);
        ms = now_ms() - t0;
        if (h && h->h_addr_list[0])
            inet_ntop(AF_INET, h->h_addr_list[0], addr, size);
    }
    return ms;
}
