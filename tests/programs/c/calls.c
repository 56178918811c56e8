/* calls N: calls f() N times and g() on every even i; prints the counts it made. */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) int f(int x) { __asm__ volatile(""); return x + 1; }
__attribute__((noinline)) int g(int x) { __asm__ volatile(""); return x * 2; }

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    long s = 0;
    int nf = 0, ng = 0;
    for (int i = 0; i < n; i++) {
        s += f(i); nf++;
        if (i % 2 == 0) { s += g(i); ng++; }
    }
    printf("f=%d g=%d sum=%ld\n", nf, ng, s);
    return 0;
}
