/* lookups: resolves each name on its command line and prints what it did,
 * "lookup NAME MS ADDRESS" per lookup, MS measured around the call with
 * CLOCK_MONOTONIC. -a (default) uses getaddrinfo(AF_UNSPEC), -g gethostbyname, -2
 * gethostbyname2(AF_INET); -wait prints "ready" and waits for a line on stdin first. */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
    char mode = 'a';
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
        if (name[0] == '-') {
            mode = name[1];
            continue;
        }
        char addr[INET6_ADDRSTRLEN] = "error";
        double t0 = now_ms();
        if (mode == 'a') {
            struct addrinfo hints = {0}, *res = NULL;
            hints.ai_family = AF_UNSPEC;
            hints.ai_socktype = SOCK_STREAM;
            int rc = getaddrinfo(name, NULL, &hints, &res);
            double ms = now_ms() - t0;
            if (rc == 0 && res->ai_family == AF_INET)
                inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, addr,
                          sizeof addr);
            if (res)
                freeaddrinfo(res);
            printf("lookup %s %.3f %s\n", name, ms, addr);
        } else {
            struct hostent *h = mode == 'g' ? gethostbyname(name)
                                            : gethostbyname2(name, AF_INET);
            double ms = now_ms() - t0;
            if (h && h->h_addr_list[0])
                inet_ntop(AF_INET, h->h_addr_list[0], addr, sizeof addr);
            printf("lookup %s %.3f %s\n", name, ms, addr);
        }
        fflush(stdout);
    }
    return 0;
}
