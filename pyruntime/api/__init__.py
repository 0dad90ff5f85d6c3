"""pyruntime as a Python API, for test harnesses that run real containers (as root).

    from pyruntime.api import Bundle, Runtime

    rt = Runtime("/tmp/state")                     # the CLI's --root
    b = Bundle.busybox("/tmp/b", args=["echo", "hi"])
    assert rt.run(b, "c1").stdout == b"hi\\n"      # Result(returncode, stdout, stderr)
    with rt.create(b, "c2") as c:                  # deleted (force) on exit
        c.start()
        print(c.exec(["id", "-u"]).stdout, c.state()["status"])
        c.kill("KILL")
        assert c.wait() == 137                     # 128+N for signal N

It calls the code the CLI runs (pyruntime/api/runtime.py says where); a failure of the
runtime raises ContainerError with the CLI's one-line message.  The pytest plugin
(pyruntime/api/pytest_plugin.py) gives the fixtures pyruntime_runtime and oci_bundle.
Nothing in the CLI imports this package.
"""

from pyruntime.api.bundle import DELETE, Bundle, deep_merge
from pyruntime.api.errors import ContainerError, Result
from pyruntime.api.runtime import Container, Runtime

__all__ = ["DELETE", "Bundle", "Container", "ContainerError", "Result", "Runtime",
           "deep_merge"]
