/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* cgroup directory creation/removal on the v2 hierarchy. Never filtered: low rate, and user space
 * needs every one of them to keep its cgroup-id -> container map complete. */
#include "lib/maps.h"
#include "lib/record.h"
#include "lib/task.h"

/* The tracepoints fire for every hierarchy (v1 controllers too on a hybrid host). The v2 root is
 * the one the current task's dfl_cgrp belongs to (cgrp_dfl_root), so compare roots. */
static __always_inline int cgroup_on_default_hierarchy(struct cgroup *cgrp)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task_btf();
	struct cgroup_root *dfl = BPF_CORE_READ(task, cgroups, dfl_cgrp, root);

	return BPF_CORE_READ(cgrp, root) == dfl;
}

static __always_inline void fill_cgroup(__u16 kind, struct cgroup *cgrp, const char *path)
{
	struct scratch_record *s;
	struct cgroup_event *e;
	__u32 n = 0, size;
	long r;

	if (!cgroup_on_default_hierarchy(cgrp))
		return;
	s = scratch_acquire(kind);
	if (!s)
		return;
	e = (void *)s->data;
	__builtin_memset(e, 0, sizeof(*e));
	e->target_cgroup_id = BPF_CORE_READ(cgrp, kn, id);
	e->level = BPF_CORE_READ(cgrp, level);
	r = bpf_probe_read_kernel_str(s->data + sizeof(*e), CGROUP_PATH_CAP, path);
	if (r > 0) {
		n = r - 1;
		if (r == CGROUP_PATH_CAP)
			e->cgroup_flags |= CGROUP_FLAG_PATH_TRUNCATED;
	}
	n &= CGROUP_PATH_CAP - 1;
	e->path_len = n;
	size = sizeof(*e) + n;
	fill_header(&e->hdr, kind, size);
	/*
	 * Wake the reader now, whatever the threshold: user space adds a new kubepods root to container_roots when it
	 * sees its mkdir, and must do so before the container's first process runs, or the in-kernel filter drops it.
	 * cgroup creation is rare, so this costs nothing measurable.
	 */
	scratch_emit_flags(s, kind, size, BPF_RB_FORCE_WAKEUP);
	scratch_release(s);
}

/* ---- hooks: TP_PROTO(struct cgroup *cgrp, const char *path) ---- */

SEC("raw_tracepoint/cgroup_mkdir")
int handle_cgroup_mkdir(struct bpf_raw_tracepoint_args *ctx)
{
	fill_cgroup(EVENT_KIND_CGROUP_MKDIR, (struct cgroup *)ctx->args[0], (const char *)ctx->args[1]);
	return 0;
}

SEC("raw_tracepoint/cgroup_rmdir")
int handle_cgroup_rmdir(struct bpf_raw_tracepoint_args *ctx)
{
	fill_cgroup(EVENT_KIND_CGROUP_RMDIR, (struct cgroup *)ctx->args[0], (const char *)ctx->args[1]);
	return 0;
}
