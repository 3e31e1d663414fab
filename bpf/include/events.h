/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The kernel -> user-space record ABI. Single source of truth: the C# mirrors in
 * src/Ebpf.Events/NativeRecords.cs are checked against the BTF of the compiled object
 * (tests/Ebpf.Events.Tests/BtfLayoutTests.cs), so every change here must be mirrored there.
 *
 * Rules (see docs/abi.md):
 *  - fixed-width fields only, no bool, explicit padding that the programs zero;
 *  - every record starts with struct event_header; header.size is the number of bytes of the
 *    record that carry data (fixed part + trailing bytes), never more than the ring-buffer sample;
 *  - enum event_kind and every flag value are append-only;
 *  - fields are only ever appended to the end of a fixed part (and the trailing-data lengths say
 *    where the trailing bytes are), so an older decoder can read a newer record by its known prefix.
 *    A layout change that cannot follow this rule bumps EVENT_ABI_VERSION.
 */
#ifndef EBPF_EVENTS_H
#define EBPF_EVENTS_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* an enum rather than a #define so it is in the object's BTF and checked with the rest */
enum event_abi {
	EVENT_ABI_VERSION = 1,
};

enum event_kind {
	EVENT_KIND_UNKNOWN = 0,
	EVENT_KIND_EXEC = 1,
	EVENT_KIND_FORK = 2,
	EVENT_KIND_EXIT = 3,
	EVENT_KIND_CONNECT = 4,
	EVENT_KIND_FILE_OPEN = 5,
	EVENT_KIND_CGROUP_MKDIR = 6,
	EVENT_KIND_CGROUP_RMDIR = 7,
	/* one past the last kind: sizes the drop_counters map */
	EVENT_KIND_MAX = 8,
};

/* Capture caps (bytes). Trailing strings never exceed them. */
enum event_caps {
	EXEC_FILENAME_CAP = 512,
	EXEC_ARGV_CAP = 4096,
	EXEC_CWD_CAP = 512,
	FILE_PATH_CAP = 512,
	CGROUP_PATH_CAP = 512,
	UNIX_PATH_CAP = 108,
	TASK_COMM_CAP = 16,
};

/* exec_event.flags */
enum exec_flags {
	EXEC_FLAG_ARGV_TRUNCATED = 1 << 0,
	EXEC_FLAG_FILENAME_TRUNCATED = 1 << 1,
	EXEC_FLAG_CWD_TRUNCATED = 1 << 2,
	/* the comm before the exec named a container runtime (runc/crun/youki init) */
	EXEC_FLAG_PREV_RUNTIME = 1 << 3,
	/* prev_comm was captured at sys_enter_execve(at); unset when that stash was missing */
	EXEC_FLAG_PREV_COMM_KNOWN = 1 << 4,
	/* argv could not be read from the new mm (argv_len is 0) */
	EXEC_FLAG_ARGV_UNREADABLE = 1 << 5,
};

/* file_open_event.flags */
enum file_open_flags {
	FILE_OPEN_FLAG_PATH_TRUNCATED = 1 << 0,
	/* the user pointer could not be read: path_len is 0 */
	FILE_OPEN_FLAG_PATH_UNREADABLE = 1 << 1,
};

/* cgroup_event.flags */
enum cgroup_flags {
	CGROUP_FLAG_PATH_TRUNCATED = 1 << 0,
};

struct event_header {
	__u16 kind;        /* enum event_kind */
	__u16 abi_version; /* EVENT_ABI_VERSION */
	__u32 size;        /* bytes of this record that carry data, header included */
	__u64 boot_ns;     /* bpf_ktime_get_boot_ns() */
	__u64 cgroup_id;   /* cgroup v2 id of the current task */
	__u32 tgid;        /* current tgid (initial pid namespace) */
	__u32 tid;         /* current tid (initial pid namespace) */
};

/*
 * sched_process_exec. Followed by trailing bytes, in this order:
 * filename[filename_len] argv[argv_len] cwd[cwd_len]. argv is the raw mm->arg_start..arg_end
 * block: NUL-separated arguments. Lengths exclude any terminating NUL of filename and cwd.
 */
struct exec_event {
	struct event_header hdr;
	__u32 ppid;            /* real_parent tgid */
	__u32 uid;
	__u32 gid;
	__u32 loginuid;        /* (u32)-1 when unset or the kernel has no audit */
	__u64 start_boottime;  /* task->start_boottime, ns */
	__u32 pid_ns_inum;
	__u32 mnt_ns_inum;
	__u32 flags;           /* enum exec_flags */
	__u32 argv_original_len; /* arg_end - arg_start before capping */
	__u16 filename_len;
	__u16 argv_len;
	__u16 cwd_len;
	__u16 pad0;
	char comm[TASK_COMM_CAP];      /* comm after the exec */
	char prev_comm[TASK_COMM_CAP]; /* comm when execve was entered */
};

struct fork_event {
	struct event_header hdr; /* tgid/tid: the parent */
	__u32 parent_tgid;
	__u32 parent_pid;
	__u32 child_tgid;
	__u32 child_pid;
	__u64 child_start_boottime;
	__u64 child_cgroup_id;
};

struct exit_event {
	struct event_header hdr;
	__s32 exit_code;      /* task->exit_code: wait(2) status, (code << 8) | signal */
	__u32 group_dead;     /* 1: last thread of the process */
	__u64 start_boottime; /* group leader's start_boottime */
};

struct connect_event {
	struct event_header hdr;
	__s32 fd;
	__s32 result;        /* 0 or -errno (-EINPROGRESS for non-blocking sockets) */
	__u16 family;        /* AF_UNIX / AF_INET / AF_INET6 */
	__u16 port;          /* host byte order */
	__u16 unix_path_len; /* bytes of sun_path used; abstract sockets start with a NUL byte */
	__u16 pad0;
	__u8 addr[16];       /* network byte order; AF_INET uses the first 4 bytes */
	char unix_path[UNIX_PATH_CAP];
	__u32 pad1;
};

/* openat / openat2 / open. Followed by path[path_len] (no NUL). */
struct file_open_event {
	struct event_header hdr;
	__s32 dirfd;  /* AT_FDCWD (-100) for open(2) */
	__s32 flags;  /* open flags */
	__u32 mode;
	__s32 result; /* fd or -errno */
	__u16 path_len;
	__u16 file_flags; /* enum file_open_flags */
	__u32 pad0;
};

/* cgroup_mkdir / cgroup_rmdir on the v2 hierarchy. Followed by path[path_len] (no NUL). */
struct cgroup_event {
	struct event_header hdr; /* the task that created/removed the directory */
	__u64 target_cgroup_id;
	__u32 level;
	__u16 path_len;
	__u16 cgroup_flags; /* enum cgroup_flags */
};

_Static_assert(sizeof(struct event_header) == 32, "event_header size");
_Static_assert(sizeof(struct exec_event) == 112, "exec_event size");
_Static_assert(sizeof(struct fork_event) == 64, "fork_event size");
_Static_assert(sizeof(struct exit_event) == 48, "exit_event size");
_Static_assert(sizeof(struct connect_event) == 176, "connect_event size");
_Static_assert(sizeof(struct file_open_event) == 56, "file_open_event size");
_Static_assert(sizeof(struct cgroup_event) == 48, "cgroup_event size");

/* Largest record: sizes the per-CPU scratch buffer the variable-length records are built in. */
#define EVENT_MAX_SIZE (sizeof(struct exec_event) + EXEC_FILENAME_CAP + EXEC_ARGV_CAP + EXEC_CWD_CAP)

#endif /* EBPF_EVENTS_H */
