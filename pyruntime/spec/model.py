"""The typed model of config.json (OCI runtime-spec 1.0 - 1.2): the one place that knows its shape.

Only shapes live here (see record.py for how annotations become decoders); rules that
relate fields to each other live in validate.py.
"""

from __future__ import annotations

from pyruntime.spec.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations are never evaluated; importing typing costs ~2 ms
    from typing import Any

    # integers that record.py checks against their C type's range (the Go types of the
    # runtime-spec, narrowed to the C fields they go to, e.g. a device's u32 major);
    # `u32[0, 99]` narrows a field further, to what its meaning allows
    u16 = u32 = u64 = i32 = i64 = int


class Root(Record):
    path: str
    readonly: bool = False


class User(Record):
    uid: u32[0, 4294967294] = 0  # (uid_t)-1 means "unchanged" to setresuid
    gid: u32[0, 4294967294] = 0
    umask: u32[0, 0o777, oct] | None = None
    additional_gids: list[u32] = []
    username: str | None = None


class Capabilities(Record):
    bounding: list[str] | None = None
    effective: list[str] | None = None
    inheritable: list[str] | None = None
    permitted: list[str] | None = None
    ambient: list[str] | None = None


class Rlimit(Record):
    type: str
    hard: u64
    soft: u64


class ConsoleSize(Record):
    height: u16 = 0
    width: u16 = 0


class IOPriority(Record):
    class_: str
    priority: i32[0, 7] = 0  # ioprio levels
    _json_names = {"class_": "class"}


class Scheduler(Record):
    policy: str
    nice: i32[-20, 19] = 0
    priority: i32 = 0
    flags: list[str] = []
    runtime: u64 = 0
    deadline: u64 = 0
    period: u64 = 0


class Process(Record):
    args: list[str] | None = None
    command_line: str | None = None
    cwd: str
    env: list[str] = []
    terminal: bool = False
    console_size: ConsoleSize | None = None
    user: User | None = None
    capabilities: Capabilities | None = None
    rlimits: list[Rlimit] = []
    no_new_privileges: bool = False
    apparmor_profile: str | None = None
    oom_score_adj: i32[-1000, 1000] | None = None  # OOM_SCORE_ADJ_MIN..MAX
    selinux_label: str | None = None
    io_priority: IOPriority | None = None
    scheduler: Scheduler | None = None
    exec_cpu_affinity: Any = None
    _json_names = {"io_priority": "ioPriority"}


class IDMapping(Record):
    container_id: u32
    host_id: u32
    size: u32[1, 4294967295]
    _json_names = {"container_id": "containerID", "host_id": "hostID"}


class Mount(Record):
    destination: str
    type: str | None = None
    source: str | None = None
    options: list[str] = []
    uid_mappings: list[IDMapping] = []
    gid_mappings: list[IDMapping] = []


class Hook(Record):
    path: str
    args: list[str] = []
    env: list[str] | None = None  # None: the runtime's environment (runc's), [] : empty
    timeout: i32[1, 2147483647] | None = None  # seconds


class Hooks(Record):
    prestart: list[Hook] = []
    create_runtime: list[Hook] = []
    create_container: list[Hook] = []
    start_container: list[Hook] = []
    poststart: list[Hook] = []
    poststop: list[Hook] = []


class Namespace(Record):
    type: str
    path: str | None = None


class Device(Record):
    type: str
    path: str
    major: u32 | None = None
    minor: u32 | None = None
    file_mode: u32 | None = None
    uid: u32 | None = None
    gid: u32 | None = None


class DeviceRule(Record):
    allow: bool
    type: str | None = None
    major: i64[-1, 2147483647] | None = None  # -1 (as null): any; the device filter's int32
    minor: i64[-1, 2147483647] | None = None
    access: str | None = None


class Memory(Record):
    limit: i64 | None = None
    reservation: i64 | None = None
    swap: i64 | None = None
    kernel: i64 | None = None
    kernel_tcp: i64 | None = None
    swappiness: u64 | None = None
    disable_oom_killer: bool | None = None
    use_hierarchy: bool | None = None
    check_before_update: bool | None = None
    _json_names = {"kernel_tcp": "kernelTCP", "disable_oom_killer": "disableOOMKiller"}


class CPU(Record):
    shares: u64 | None = None
    quota: i64 | None = None
    burst: u64 | None = None
    period: u64 | None = None
    realtime_runtime: i64 | None = None
    realtime_period: u64 | None = None
    cpus: str | None = None
    mems: str | None = None
    idle: i64 | None = None


class Pids(Record):
    limit: i64


class WeightDevice(Record):
    major: i64
    minor: i64
    weight: u16 | None = None
    leaf_weight: u16 | None = None


class ThrottleDevice(Record):
    major: i64
    minor: i64
    rate: u64


class BlockIO(Record):
    weight: u16 | None = None
    leaf_weight: u16 | None = None
    weight_device: list[WeightDevice] = []
    throttle_read_bps_device: list[ThrottleDevice] = []
    throttle_write_bps_device: list[ThrottleDevice] = []
    throttle_read_iops_device: list[ThrottleDevice] = []
    throttle_write_iops_device: list[ThrottleDevice] = []
    _json_names = {
        "throttle_read_iops_device": "throttleReadIOPSDevice",
        "throttle_write_iops_device": "throttleWriteIOPSDevice",
    }


class HugepageLimitStr(Record):
    page_size: str
    limit: u64


class RdmaLimit(Record):
    hca_handles: u32 | None = None
    hca_objects: u32 | None = None


class InterfacePriority(Record):
    name: str
    priority: u32


class Network(Record):
    """linux.resources.network: v1's net_cls and net_prio controllers."""

    class_id: u32 | None = None
    priorities: list[InterfacePriority] = []
    _json_names = {"class_id": "classID"}


class Resources(Record):
    devices: list[DeviceRule] = []
    memory: Memory | None = None
    cpu: CPU | None = None
    pids: Pids | None = None
    block_io: BlockIO | None = None
    hugepage_limits: list[HugepageLimitStr] = []
    network: Network | None = None
    rdma: dict[str, RdmaLimit] = {}
    unified: dict[str, str] = {}
    _json_names = {"block_io": "blockIO"}


class SyscallArg(Record):
    index: u32[0, 5]  # a syscall has six arguments
    value: u64
    value_two: u64 = 0
    op: str


class Syscall(Record):
    names: list[str]
    action: str
    errno_ret: u32[0, 65535] | None = None  # SECCOMP_RET_DATA
    args: list[SyscallArg] = []


class Seccomp(Record):
    default_action: str
    default_errno_ret: u32[0, 65535] | None = None
    architectures: list[str] = []
    flags: list[str] = []
    listener_path: str | None = None
    listener_metadata: str | None = None
    syscalls: list[Syscall] = []


class TimeOffset(Record):
    secs: i64 = 0
    nanosecs: u32[0, 999999999] = 0


class IntelRdt(Record):
    clos_id: str | None = None
    l3_cache_schema: str | None = None
    mem_bw_schema: str | None = None
    enable_cmt: bool = False
    enable_mbm: bool = False
    _json_names = {
        "clos_id": "closID",
        "l3_cache_schema": "l3CacheSchema",
        "mem_bw_schema": "memBwSchema",
        "enable_cmt": "enableCMT",
        "enable_mbm": "enableMBM",
    }


class MemoryPolicy(Record):
    mode: str
    nodes: str | None = None
    flags: list[str] = []


class NetDevice(Record):
    name: str | None = None


class Personality(Record):
    domain: str
    flags: list[str] = []


class Linux(Record):
    namespaces: list[Namespace] = []
    uid_mappings: list[IDMapping] = []
    gid_mappings: list[IDMapping] = []
    time_offsets: dict[str, TimeOffset] = {}
    devices: list[Device] = []
    net_devices: dict[str, NetDevice] = {}
    cgroups_path: str | None = None
    resources: Resources | None = None
    rootfs_propagation: str | None = None
    seccomp: Seccomp | None = None
    sysctl: dict[str, str] = {}
    masked_paths: list[str] = []
    readonly_paths: list[str] = []
    mount_label: str | None = None
    intel_rdt: IntelRdt | None = None
    memory_policy: MemoryPolicy | None = None
    personality: Personality | None = None


class Spec(Record):
    oci_version: str
    process: Process | None = None
    root: Root | None = None
    hostname: str | None = None
    domainname: str | None = None
    mounts: list[Mount] = []
    hooks: Hooks | None = None
    annotations: dict[str, str] = {}
    linux: Linux | None = None
    _json_names = {"oci_version": "ociVersion"}
    # not a config field: what validate() accepted with a warning, for the verb to log
    load_warnings = ()
