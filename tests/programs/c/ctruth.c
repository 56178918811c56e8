/* ctruth: calls one function per kind of C value lumos decodes and prints, after each
 * call, a TRUTH line of what it passed and got back, for tests/tools/test_trace_c.py:
 *
 *   TRUTH {"f":"ints","args":{"a":-5,"b":200,"c":-30000,"d":4000000000,"e":-7},"ret":...}
 *
 * Strings are printed as hex ("s":"6869") or null for NULL; pointers as numbers.
 * Every function is noinline and used, so it exists with its own symbol. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline, used))

NOINLINE long ints(int a, unsigned char b, short c, unsigned int d, long e) {
    __asm__ volatile("");
    return a + b + c + (long)d + e;
}

NOINLINE const char *pick(const char *s, const char *t, int which) {
    __asm__ volatile("");
    return which ? t : s;
}

NOINLINE size_t seven(int a1, int a2, int a3, int a4, int a5, int a6, long a7) {
    __asm__ volatile("");
    return a1 + a2 + a3 + a4 + a5 + a6 + a7;
}

NOINLINE int mixed(double x, int n, void *p) {
    __asm__ volatile("");
    return (int)x + n + (p != NULL);
}

NOINLINE int leaf_tail(int n) { __asm__ volatile(""); return n * 3; }

/* compiled at -O2 into a jump to leaf_tail: no RET of its own */
NOINLINE int tail(int n) { return leaf_tail(n + 1); }

static void hexs(const char *s) {
    if (!s) { printf("null"); return; }
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) printf("%02x", *p);
    putchar('"');
}

int main(void) {
    static const char *strs[] = {"hello", "", "h\xc3\xa9llo w\xc3\xb6rld",
        "a string longer than thirty-two bytes, to be cut by --strlen", NULL};
    int marker = 0;
    for (int i = 0; i < 5; i++) {
        int a = -5 * i; unsigned char b = 200 + i; short c = -30000 + i;
        unsigned int d = 4000000000u + i; long e = -7L * i * 1000000000L;
        long r = ints(a, b, c, d, e);
        printf("TRUTH {\"f\":\"ints\",\"args\":{\"a\":%d,\"b\":%u,\"c\":%d,\"d\":%u,\"e\":%ld},"
               "\"ret\":%ld}\n", a, b, c, d, e, r);
        const char *s = strs[i], *t = strs[(i + 1) % 5];
        const char *got = pick(s, t, i % 2);
        printf("TRUTH {\"f\":\"pick\",\"args\":{\"s\":"); hexs(s);
        printf(",\"t\":"); hexs(t); printf(",\"which\":%d},\"ret\":", i % 2); hexs(got);
        printf("}\n");
        size_t z = seven(1, 2, 3, 4, 5, 6, 70000000000L + i);
        printf("TRUTH {\"f\":\"seven\",\"args\":{\"a1\":1,\"a2\":2,\"a3\":3,\"a4\":4,\"a5\":5,"
               "\"a6\":6,\"a7\":%ld},\"ret\":%zu}\n", 70000000000L + i, z);
        void *p = i % 2 ? (void *)&marker : NULL;
        int m = mixed(1.5 * i, i, p);
        printf("TRUTH {\"f\":\"mixed\",\"args\":{\"n\":%d,\"p\":%lu},\"ret\":%d}\n", i,
               (unsigned long)(uintptr_t)p, m);
        int tr = tail(i);
        printf("TRUTH {\"f\":\"tail\",\"args\":{\"n\":%d},\"ret\":%d}\n", i, tr);
    }
    /* A string on a page this process never touched (a file mapped, not yet read): a
     * probe cannot fault it in, so it must be shown as unreadable, never as "". */
    char path[] = "/tmp/ctruth-XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0 && write(fd, "untouched page\0", 15) == 15) {
        char *cold = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
        if (cold != MAP_FAILED) {
            const char *got = pick(cold, "warm", 0);
            printf("TRUTH {\"f\":\"pick\",\"cold\":true,\"args\":{\"s\":");
            hexs(cold); printf(",\"t\":"); hexs("warm");
            printf(",\"which\":0},\"ret\":"); hexs(got); printf("}\n");
            munmap(cold, 4096);
        }
        close(fd);
        unlink(path);
    }
    return 0;
}
