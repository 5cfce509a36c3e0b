/* Kernel command line from the Multiboot information: "key=value key2=value2 flag". */
#include "lib.h"

const char *cmdline(void) {
    struct mb_info *mbi = mb_info();
    if (!mbi || !(mbi->flags & (1u << 2)) || !mbi->cmdline) return "";
    return (const char *)(uintptr_t)mbi->cmdline;
}

/* Value text of "key=" (or "" for a bare "key") at a word start; NULL when absent. */
static const char *lookup(const char *key) {
    const char *p = cmdline();
    size_t n = strlen(key);
    while (*p) {
        while (*p == ' ') p++;
        if (!strncmp(p, key, n) && (p[n] == '=' || p[n] == ' ' || !p[n]))
            return p[n] == '=' ? p + n + 1 : p + n;
        while (*p && *p != ' ') p++;
    }
    return NULL;
}

int cmdline_has(const char *key) { return lookup(key) != NULL; }

u64 cmdline_uint(const char *key, u64 dflt) {
    const char *v = lookup(key);
    if (!v || !*v || *v == ' ') return dflt;
    u64 r = 0;
    if (v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) {
        for (v += 2;; v++) {
            int d = *v >= '0' && *v <= '9' ? *v - '0' : *v >= 'a' && *v <= 'f' ? *v - 'a' + 10
                  : *v >= 'A' && *v <= 'F' ? *v - 'A' + 10 : -1;
            if (d < 0) break;
            r = r * 16 + (u64)d;
        }
    } else {
        while (*v >= '0' && *v <= '9') r = r * 10 + (u64)(*v++ - '0');
    }
    return r;
}
