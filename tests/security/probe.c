/*
 * probe - the attacker's tool inside a container (static, built by tests/security/conftest.py).
 * Never writes to anything it opens: it reports what it could open and how.
 *
 *   probe fds                 every open fd: "N -> target"
 *   probe exe PID             /proc/PID/exe: readlink, O_PATH open, reopen for writing
 *   probe ptrace PID          PTRACE_ATTACH (detached again at once if it worked)
 *   probe mem PID             open /proc/PID/mem and /proc/PID/environ for reading
 *   probe keyctl              keyctl(KEYCTL_GET_KEYRING_ID, session keyring)
 *
 * Run as the ELF interpreter of another program (installed as the rootfs's
 * /lib64/ld-linux-x86-64.so.2), it reports on /proc/self/exe: the program the kernel
 * was asked to run.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void result(const char *what, int rc)
{
    if (rc < 0)
        printf("%s: denied errno=%d (%s)\n", what, errno, strerror(errno));
    else
        printf("%s: ok\n", what);
}

static int fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    char path[300], target[4096];
    ssize_t n;

    if (!d) {
        perror("opendir /proc/self/fd");
        return 1;
    }
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d))
            continue;
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        n = readlink(path, target, sizeof target - 1);
        target[n > 0 ? n : 0] = '\0';
        printf("%s -> %s\n", e->d_name, target);
    }
    closedir(d);
    return 0;
}

static int exe(const char *pid)
{
    char path[64], target[4096], re[64];
    struct stat st;
    ssize_t n;
    int fd, wfd;

    snprintf(path, sizeof path, "/proc/%s/exe", pid);
    n = readlink(path, target, sizeof target - 1);
    if (n >= 0) {
        target[n] = '\0';
        printf("readlink: ok %s\n", target);
    } else {
        result("readlink", -1);
    }
    fd = open(path, O_PATH | O_CLOEXEC);
    result("open_path", fd);
    if (fd < 0)
        return 0;
    if (fstat(fd, &st) == 0)
        printf("identity: %llu:%llu\n", (unsigned long long)st.st_dev,
               (unsigned long long)st.st_ino);
    snprintf(re, sizeof re, "/proc/self/fd/%d", fd);
    wfd = open(re, O_WRONLY | O_CLOEXEC); /* no O_TRUNC, nothing is written */
    result("open_write", wfd);
    if (wfd >= 0)
        close(wfd);
    close(fd);
    return 0;
}

static int do_ptrace(const char *pid)
{
    pid_t p = atoi(pid);
    long rc = ptrace(PTRACE_ATTACH, p, 0, 0);

    result("ptrace_attach", (int)rc);
    if (rc == 0) {
        waitpid(p, NULL, __WALL);
        ptrace(PTRACE_DETACH, p, 0, 0);
    }
    return 0;
}

static int mem(const char *pid)
{
    char path[64];
    int fd;

    snprintf(path, sizeof path, "/proc/%s/mem", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    result("open_mem", fd);
    if (fd >= 0)
        close(fd);
    snprintf(path, sizeof path, "/proc/%s/environ", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        char buf[256];
        ssize_t n = read(fd, buf, sizeof buf);
        close(fd);
        if (n < 0) {
            result("read_environ", -1);
            return 0;
        }
    }
    result("read_environ", fd);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (getauxval(AT_BASE) != 0) { /* loaded as an interpreter */
        printf("interpreter of: %s\n", argc > 0 ? argv[0] : "?");
        return exe("self");
    }
    if (argc >= 2 && !strcmp(argv[1], "fds"))
        return fds();
    if (argc >= 3 && !strcmp(argv[1], "exe"))
        return exe(argv[2]);
    if (argc >= 3 && !strcmp(argv[1], "ptrace"))
        return do_ptrace(argv[2]);
    if (argc >= 3 && !strcmp(argv[1], "mem"))
        return mem(argv[2]);
    if (argc >= 2 && !strcmp(argv[1], "keyctl")) {
        result("keyctl", (int)syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* session */, 0));
        return 0;
    }
    fprintf(stderr, "usage: probe fds|exe PID|ptrace PID|mem PID|keyctl\n");
    return 2;
}
