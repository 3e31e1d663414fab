/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* CO-RE reads of task_struct fields the records need. */
#ifndef EBPF_LIB_TASK_H
#define EBPF_LIB_TASK_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>

static __always_inline __u64 task_cgroup_id(struct task_struct *task)
{
	return BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
}

static __always_inline __u32 task_pid_ns_inum(struct task_struct *task)
{
	/* the active pid namespace is the one at the level of the task's own struct pid
	 * (task_active_pid_ns); nsproxy->pid_ns_for_children can differ after unshare */
	struct pid *pid = BPF_CORE_READ(task, thread_pid);
	unsigned int level = BPF_CORE_READ(pid, level);
	struct upid upid = {};

	bpf_core_read(&upid, sizeof(upid), &pid->numbers[level & 31]);
	return BPF_CORE_READ(upid.ns, ns.inum);
}

static __always_inline __u32 task_mnt_ns_inum(struct task_struct *task)
{
	return BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
}

static __always_inline __u32 task_loginuid(struct task_struct *task)
{
	if (bpf_core_field_exists(task->loginuid))
		return BPF_CORE_READ(task, loginuid.val);
	return (__u32)-1;
}

/* 1 when the thread group has no live thread left: do_exit decrements signal->live before the
 * sched_process_exit tracepoint, so this works on kernels whose tracepoint lacks group_dead */
static __always_inline __u32 task_group_dead(struct task_struct *task)
{
	return BPF_CORE_READ(task, signal, live.counter) == 0;
}

#endif
