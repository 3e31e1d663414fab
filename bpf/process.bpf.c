/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Process lifecycle: exec, fork, exit. Included by agent.bpf.c (one object, shared maps). */
#include "lib/maps.h"
#include "lib/filter.h"
#include "lib/record.h"
#include "lib/task.h"
#include "lib/path.h"
#include <bpf/bpf_tracing.h>

struct prev_comm {
	char comm[TASK_COMM_CAP];
};

/*
 * begin_new_exec() sets the new comm (__set_task_comm) before sched_process_exec fires, so the
 * comm the task had before the exec ("runc:[2:INIT]" for a runc exec) is stashed per tid at
 * sys_enter_execve/execveat and taken at sched_process_exec (keyed by old_pid: a non-leader
 * thread that execs takes the leader's pid in de_thread()).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct prev_comm);
} exec_prev_comm SEC(".maps");

/*
 * runc's init ("runc:[2:INIT]"), crun and youki re-exec themselves before the user's command.
 * Compared byte by byte: string literals would add a .rodata.str1.1 map to the object.
 */
static __always_inline int comm_is_runtime(const char *c)
{
	if (c[0] == 'r' && c[1] == 'u' && c[2] == 'n' && c[3] == 'c')
		return 1;
	if (c[0] == 'c' && c[1] == 'r' && c[2] == 'u' && c[3] == 'n')
		return 1;
	return c[0] == 'y' && c[1] == 'o' && c[2] == 'u' && c[3] == 'k' && c[4] == 'i';
}

static __always_inline void stash_prev_comm(void)
{
	struct prev_comm v = {};
	__u32 tid = (__u32)bpf_get_current_pid_tgid();

	if (!current_selected())
		return;
	bpf_get_current_comm(v.comm, sizeof(v.comm));
	bpf_map_update_elem(&exec_prev_comm, &tid, &v, BPF_ANY);
}

static __always_inline void drop_prev_comm(void)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	bpf_map_delete_elem(&exec_prev_comm, &tid);
}

static __always_inline void fill_exec(struct task_struct *task, __u32 old_pid, struct linux_binprm *bprm)
{
	struct scratch_record *s;
	struct exec_event *e;
	struct prev_comm *prev;
	struct mm_struct *mm;
	__u64 uid_gid, arg_start, arg_end, argv_total;
	__u32 off, n, flags = 0;
	long r;

	s = scratch_acquire(EVENT_KIND_EXEC);
	if (!s)
		return;
	e = (void *)s->data;
	__builtin_memset(e, 0, sizeof(*e));

	uid_gid = bpf_get_current_uid_gid();
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->uid = (__u32)uid_gid;
	e->gid = uid_gid >> 32;
	e->loginuid = task_loginuid(task);
	e->start_boottime = BPF_CORE_READ(task, start_boottime);
	e->pid_ns_inum = task_pid_ns_inum(task);
	e->mnt_ns_inum = task_mnt_ns_inum(task);
	bpf_get_current_comm(e->comm, sizeof(e->comm));

	prev = bpf_map_lookup_elem(&exec_prev_comm, &old_pid);
	if (prev) {
		__builtin_memcpy(e->prev_comm, prev->comm, sizeof(e->prev_comm));
		flags |= EXEC_FLAG_PREV_COMM_KNOWN;
		if (comm_is_runtime(e->prev_comm))
			flags |= EXEC_FLAG_PREV_RUNTIME;
		bpf_map_delete_elem(&exec_prev_comm, &old_pid);
	}

	/* filename as the kernel resolved it for the exec (bprm->filename) */
	off = sizeof(*e);
	r = bpf_probe_read_kernel_str(s->data + off, EXEC_FILENAME_CAP, BPF_CORE_READ(bprm, filename));
	n = r > 0 ? r - 1 : 0; /* drop the NUL */
	if (r == EXEC_FILENAME_CAP)
		flags |= EXEC_FLAG_FILENAME_TRUNCATED;
	n &= EXEC_FILENAME_CAP - 1;
	e->filename_len = n;
	off += n;

	/* argv: the NUL-separated block the kernel just copied to the new stack */
	mm = BPF_CORE_READ(task, mm);
	arg_start = BPF_CORE_READ(mm, arg_start);
	arg_end = BPF_CORE_READ(mm, arg_end);
	argv_total = arg_end > arg_start ? arg_end - arg_start : 0;
	e->argv_original_len = argv_total > 0xffffffffULL ? 0xffffffffU : (__u32)argv_total;
	n = argv_total;
	if (argv_total > EXEC_ARGV_CAP) {
		n = EXEC_ARGV_CAP;
		flags |= EXEC_FLAG_ARGV_TRUNCATED;
	}
	/* clang may recompute off from a register the verifier has no bound for; the mask restates off <= 4095 */
	off &= SCRATCH_MASK >> 1;
	if (n > 0 && n <= EXEC_ARGV_CAP) {
		if (bpf_probe_read_user(s->data + off, n, (void *)arg_start)) {
			n = 0;
			flags |= EXEC_FLAG_ARGV_UNREADABLE;
		}
	} else {
		n = 0;
	}
	e->argv_len = n;
	off += n;

	n = read_cwd(task, s->data, off, &flags);
	e->cwd_len = n;
	off += n;

	e->flags = flags;
	fill_header(&e->hdr, EVENT_KIND_EXEC, off);
	scratch_emit(s, EVENT_KIND_EXEC, off);
	scratch_release(s);
}

static __always_inline void fill_fork(struct task_struct *parent, struct task_struct *child)
{
	struct fork_event *e = reserve_record(EVENT_KIND_FORK, sizeof(*e));
	if (!e)
		return;
	e->parent_tgid = BPF_CORE_READ(parent, tgid);
	e->parent_pid = BPF_CORE_READ(parent, pid);
	e->child_tgid = BPF_CORE_READ(child, tgid);
	e->child_pid = BPF_CORE_READ(child, pid);
	e->child_start_boottime = BPF_CORE_READ(child, start_boottime);
	e->child_cgroup_id = task_cgroup_id(child);
	submit_record(e);
}

static __always_inline void fill_exit(struct task_struct *task)
{
	struct exit_event *e;

	/* one record per process: the last thread to exit */
	if (!task_group_dead(task))
		return;
	e = reserve_record(EVENT_KIND_EXIT, sizeof(*e));
	if (!e)
		return;
	e->exit_code = BPF_CORE_READ(task, exit_code);
	e->group_dead = 1;
	e->start_boottime = BPF_CORE_READ(task, group_leader, start_boottime);
	submit_record(e);
}

/* ---- hooks (tracepoints); kprobe/fentry variants would call the same fill_* ---- */

SEC("tracepoint/syscalls/sys_enter_execve")
int enter_execve(void *ctx)
{
	stash_prev_comm();
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_execveat")
int enter_execveat(void *ctx)
{
	stash_prev_comm();
	return 0;
}

/* a failed exec leaves its stash behind; a successful one was consumed at sched_process_exec */
SEC("tracepoint/syscalls/sys_exit_execve")
int exit_execve(void *ctx)
{
	drop_prev_comm();
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_execveat")
int exit_execveat(void *ctx)
{
	drop_prev_comm();
	return 0;
}

/* TP_PROTO(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm) */
SEC("raw_tracepoint/sched_process_exec")
int handle_exec(struct bpf_raw_tracepoint_args *ctx)
{
	if (!current_selected())
		return 0;
	fill_exec((struct task_struct *)ctx->args[0], (__u32)ctx->args[1], (struct linux_binprm *)ctx->args[2]);
	return 0;
}

/* TP_PROTO(struct task_struct *parent, struct task_struct *child) */
SEC("raw_tracepoint/sched_process_fork")
int handle_fork(struct bpf_raw_tracepoint_args *ctx)
{
	if (!current_selected())
		return 0;
	fill_fork((struct task_struct *)ctx->args[0], (struct task_struct *)ctx->args[1]);
	return 0;
}

/* TP_PROTO(struct task_struct *p[, bool group_dead]): group_dead is recomputed (older kernels lack it) */
SEC("raw_tracepoint/sched_process_exit")
int handle_exit(struct bpf_raw_tracepoint_args *ctx)
{
	if (!current_selected())
		return 0;
	fill_exit((struct task_struct *)ctx->args[0]);
	return 0;
}
