"""(d): N containers at once, each created, started, waited for and deleted, the way a
containerd shim drives a runtime.  Kept to the standard library's cheapest modules (it is
timed along with the runtime it drives): posix_spawn, waitpid, pidfd + poll, threads.

    shim_driver.py N BUNDLES PIDDIR PREFIX RUNTIME [ARGS...]

Container i is PREFIX+i with bundle BUNDLES/PREFIX+i.  Exit status 1 if any step failed.
"""

import os
import select
import sys
import threading


def run(argv: list[str]) -> int:
    pid = os.posix_spawnp(argv[0], argv, os.environ)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def one(rt: list[str], cid: str, bundle: str, pid_file: str, failures: list[str]) -> None:
    if run([*rt, "create", "--bundle", bundle, "--pid-file", pid_file, cid]):
        failures.append(f"{cid}: create")
        return
    with open(pid_file) as f:
        init = int(f.read())
    try:
        pidfd = os.pidfd_open(init)  # not our child: the init went to the nearest reaper
    except ProcessLookupError:
        pidfd = -1
    try:
        if run([*rt, "start", cid]):
            failures.append(f"{cid}: start")
        elif pidfd >= 0:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            poller.poll()  # readable once the init has exited
    finally:
        if pidfd >= 0:
            os.close(pidfd)
    if run([*rt, "delete", cid]):
        failures.append(f"{cid}: delete")


def main() -> int:
    n, bundles, piddir, prefix = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    rt = sys.argv[5:]
    failures: list[str] = []
    threads = [threading.Thread(target=one, args=(rt, f"{prefix}{i}", f"{bundles}/{prefix}{i}",
                                                  f"{piddir}/{prefix}{i}.pid", failures))
               for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for f in failures:
        sys.stderr.write(f"shim_driver: {f} failed\n")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
