/* USDT test program: probes with and without a semaphore, arguments in every form the
 * compiler picks (registers, stack slots, %rip-relative globals, constants, indexed
 * memory). It prints each probe's arguments as it fires them: the ground truth.
 *
 *   usdt N [wait]   fire N rounds; with "wait", first print "ready" and read a line,
 *                   and after the rounds print the semaphores, read a line, print them again
 *
 * Lines: "plain I COUNTER 5 NAME", "mixed SC SH BIG T", "mem ID VAL T", "global COUNTER
 * T3" every round;
 * "tick I SQ NAME" and "words -I I*7" only while their semaphore is set (traced),
 * "untraced I" otherwise; "sem TICK WORDS" (the semaphores' values) at the end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

long counter = 1000;                      /* a global: read %rip-relative */
int table[8] = {10, -20, 30, -40, 50, -60, 70, -80};
static const char *names[] = {"alpha", "beta", "gamma", "d\xc3\xa9" "lta \xc3\xbc" "n\xc3\xaf" "code"};

struct item { long id; int vals[4]; };

/* sdt.h decides when it is read whether probes have semaphores: the probes without
 * one are written here, before the header is read again with _SDT_HAS_SEMAPHORES. */
#include <sys/sdt.h>

__attribute__((noinline)) static void plain_probes(int i, struct item *it, const int *t,
                                                   signed char sc, short sh,
                                                   unsigned long big) {
    int k = i & 3;
    const char *name = names[k];
    counter += i;
    DTRACE_PROBE4(lumos, plain, i, counter, 5, name);
    DTRACE_PROBE4(lumos, mixed, sc, sh, big, t[k]);
    DTRACE_PROBE3(lumos, mem, it->id, it->vals[k], *t);
    printf("plain %d %ld 5 %s\n", i, counter, name);
    printf("mixed %d %d %lu %d\n", sc, sh, big, t[k]);
    printf("mem %ld %d %d\n", it->id, it->vals[k], *t);
}

__attribute__((noinline)) static void global_probe(void) {
    DTRACE_PROBE2(lumos, global, counter, table[3]);  /* globals as memory operands */
    printf("global %ld %d\n", counter, table[3]);
}

#undef _SYS_SDT_H
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>

__extension__ unsigned short lumos_tick_semaphore __attribute__((unused))
    __attribute__((section(".probes")));
__extension__ unsigned short lumos_words_semaphore __attribute__((unused))
    __attribute__((section(".probes")));

__attribute__((noinline)) static void guarded_probes(int i) {
    const char *name = names[i & 3];
    if (lumos_tick_semaphore) {  /* the arguments are only worked out while traced */
        long sq = (long)i * i;
        DTRACE_PROBE3(lumos, tick, i, sq, name);
        printf("tick %d %ld %s\n", i, sq, name);
    } else {
        printf("untraced %d\n", i);
    }
    if (lumos_words_semaphore) {
        DTRACE_PROBE2(lumos, words, (long)-i, (unsigned int)(i * 7));
        printf("words %ld %u\n", (long)-i, (unsigned int)(i * 7));
    }
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 10;
    if (argc > 2 && strcmp(argv[2], "wait") == 0) {
        char line[64];
        printf("ready\n");
        fflush(stdout);
        if (!fgets(line, sizeof line, stdin))
            return 1;
    }
    /* touch the strings first: a BPF program cannot fault a page in, so a string the
     * program has not read yet may be unreadable at its probe (so it is for bpftrace) */
    volatile size_t touched = 0;
    for (int k = 0; k < 4; k++)
        touched += strlen(names[k]);
    struct item it = {77, {1, 2, 3, 4}};
    for (int i = 0; i < n; i++) {
        it.id = 77 + i;
        it.vals[i & 3] = i * 3;
        plain_probes(i, &it, table + (i & 1), (signed char)(-i), (short)(-300 * i),
                     0xfffffffffffffff0UL - i);
        global_probe();
        guarded_probes(i);
        fflush(stdout);
    }
    printf("sem %u %u\n", lumos_tick_semaphore, lumos_words_semaphore);
    fflush(stdout);
    if (argc > 2 && strcmp(argv[2], "wait") == 0) {
        char line[64];
        if (!fgets(line, sizeof line, stdin))
            return 1;
        printf("sem %u %u\n", lumos_tick_semaphore, lumos_words_semaphore);
    }
    return 0;
}
