/*
 * ldso - the attacker's "dynamic loader" (tests/security/test_sec_exe_overwrite.py).
 * Freestanding (no libc: a libc would read the main program's auxv as its own), built
 * -nostdlib -static-pie and installed as the image's /lib64/ld-linux-x86-64.so.2, so the
 * kernel runs it for any dynamic program the container executes.  It reports what
 * /proc/self/exe is, whether an O_PATH handle to it can be had, the file's identity
 * (st_dev:st_ino) and whether it could be reopened for writing; it writes nothing to it.
 */
#define _GNU_SOURCE
#include <asm/unistd.h>
#include <fcntl.h>
#include <sys/stat.h>

static long sys3(long n, long a, long b, long c)
{
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}

static long sys4(long n, long a, long b, long c, long d)
{
    long r;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
                     : "rcx", "r11", "memory");
    return r;
}

static unsigned long len(const char *s)
{
    unsigned long n = 0;
    while (s[n])
        n++;
    return n;
}

static void put(const char *s) { sys3(__NR_write, 1, (long)s, (long)len(s)); }

static void putnum(unsigned long v)
{
    char b[24];
    int i = 23;
    b[i] = 0;
    do
        b[--i] = (char)('0' + v % 10);
    while ((v /= 10) && i > 0);
    put(b + i);
}

static void status(const char *what, long rc)
{
    put(what);
    if (rc < 0) {
        put(": denied errno=");
        putnum((unsigned long)-rc);
    } else {
        put(": ok");
    }
    put("\n");
}

void _start_c(void)
{
    char target[512];
    char path[32] = "/proc/self/fd/";
    struct stat st;
    long n, fd, w;
    int i = 14, d;

    put("interpreter of: ");
    n = sys4(__NR_readlinkat, AT_FDCWD, (long)"/proc/self/exe", (long)target, sizeof target - 1);
    if (n >= 0) {
        target[n] = 0;
        put(target);
    }
    put("\n");
    fd = sys4(__NR_openat, AT_FDCWD, (long)"/proc/self/exe", O_PATH | O_CLOEXEC, 0);
    status("open_path", fd);
    if (fd >= 0 && sys4(__NR_newfstatat, fd, (long)"", (long)&st, AT_EMPTY_PATH) == 0) {
        put("identity: ");
        putnum(st.st_dev);
        put(":");
        putnum(st.st_ino);
        put("\n");
        d = (int)fd;
        if (d >= 10)
            path[i++] = (char)('0' + d / 10);
        path[i++] = (char)('0' + d % 10);
        path[i] = 0;
        w = sys4(__NR_openat, AT_FDCWD, (long)path, O_WRONLY | O_CLOEXEC, 0);
        status("open_write", w);
    }
    sys3(__NR_exit_group, 0, 0, 0);
}

__asm__(".globl _start\n_start:\n and $-16, %rsp\n call _start_c\n hlt\n");
