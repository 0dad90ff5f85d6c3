"""`pyruntime serve`: a warm interpreter that runs verbs for the `pyruntime` client.

Each verb as a fresh CPython costs ~15 ms of start-up plus its imports; create + start +
delete pays that three times.  The server imports everything once and forks a worker per
call; the worker becomes the caller (its fds, environment, cwd, umask, cgroup) and runs
the same CLI code a cold `pyruntime` would.  The client (native/client/pyruntime.c) stays
the parent of the container's processes, so clients that reap them (containerd's shim,
conmon) see what runc gives them.

    protocol.py   records of NUL-terminated fields over SOCK_SEQPACKET, with fds
    arena.py      a plan laid out at a fixed address the client maps too
    worker.py     one call: become the caller, run the verb, report the exit status
    admission.py  which callers a worker may act for (the server's equals only)
    buildid.py    the build id client and server must share (else the call runs cold)
    server.py     listen, preload, keep spare workers forked (and replace dead ones)
"""
