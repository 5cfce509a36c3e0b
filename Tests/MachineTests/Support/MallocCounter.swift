import Foundation
import ProcessSupport
import TestSupport

/// A malloc counter preloaded into a child (LD_PRELOAD): every malloc, calloc, realloc,
/// posix_memalign, aligned_alloc and memalign is counted; SIGUSR2 appends the count to the file
/// named by MALLOC_COUNT_FILE. Built with gcc on first use. How a test checks that a code path
/// allocates nothing: compare two counts taken around it.
enum MallocCounter {
    static let source = #"""
    #define _GNU_SOURCE
    #include <fcntl.h>
    #include <signal.h>
    #include <stddef.h>
    #include <stdlib.h>
    #include <unistd.h>
    extern void *__libc_malloc(size_t), *__libc_calloc(size_t, size_t), *__libc_realloc(void *, size_t);
    extern void *__libc_memalign(size_t, size_t);
    static volatile unsigned long counted;
    static void bump(void) { __atomic_add_fetch(&counted, 1, __ATOMIC_RELAXED); }
    void *malloc(size_t n) { bump(); return __libc_malloc(n); }
    void *calloc(size_t a, size_t b) { bump(); return __libc_calloc(a, b); }
    void *realloc(void *p, size_t n) { bump(); return __libc_realloc(p, n); }
    void *memalign(size_t a, size_t n) { bump(); return __libc_memalign(a, n); }
    void *aligned_alloc(size_t a, size_t n) { bump(); return __libc_memalign(a, n); }
    int posix_memalign(void **p, size_t a, size_t n) { bump(); *p = __libc_memalign(a, n); return *p ? 0 : 12; }
    static int out = -1;
    static void report(int sig) {
        (void)sig;
        char b[32]; int i = 31; b[i] = '\n';
        unsigned long v = __atomic_load_n(&counted, __ATOMIC_RELAXED);
        do { b[--i] = (char)('0' + v % 10); v /= 10; } while (v);
        if (out >= 0) { ssize_t r = write(out, b + i, (size_t)(32 - i)); (void)r; }
    }
    __attribute__((constructor)) static void start(void) {
        const char *path = getenv("MALLOC_COUNT_FILE");
        if (path) out = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        struct sigaction sa = { 0 };
        sa.sa_handler = report;
        sa.sa_flags = SA_RESTART;
        sigaction(SIGUSR2, &sa, 0);
    }
    """#

    /// The shared object, built once per test process.
    static let library: Result<String, HarnessError> = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vmm-malloccount-\(getpid())")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let c = dir.appendingPathComponent("malloccount.c").path, so = dir.appendingPathComponent("malloccount.so").path
        do {
            try source.write(toFile: c, atomically: true, encoding: .utf8)
            let run = try ChildProcess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", so, c], timeoutSeconds: 120)
            guard run.status == 0 else { return .failure(HarnessError("gcc: \(run.output)")) }
            return .success(so)
        } catch {
            return .failure(HarnessError("\(error)"))
        }
    }()

    /// Asks `pid` for its count and waits for the answer (the count-th line of `file`).
    static func count(pid: Int32, file: String, answers: Int) -> UInt64? {
        kill(pid, SIGUSR2)
        var value: UInt64?
        pollUntil {
            let lines = ((try? String(contentsOfFile: file, encoding: .utf8)) ?? "").split(separator: "\n")
            if lines.count >= answers { value = UInt64(lines[answers - 1]) }
            return value != nil
        }
        return value
    }
}
