/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Which tasks produce records. Cgroup records bypass this (low rate, needed to map containers). */
#ifndef EBPF_LIB_FILTER_H
#define EBPF_LIB_FILTER_H

#include "maps.h"

static __always_inline int current_in_container_root(void)
{
	/* bpf_get_current_ancestor_cgroup_id walks the v2 (default) hierarchy and returns 0 past the
	 * task's own level, so the loop ends at the first miss. */
	for (int level = 1; level <= MAX_ANCESTOR_LEVEL; level++) {
		__u64 id = bpf_get_current_ancestor_cgroup_id(level);
		if (!id)
			return 0;
		if (bpf_map_lookup_elem(&container_roots, &id))
			return 1;
	}
	return 0;
}

/* 1 when the current task's events are wanted under filter_mode */
static __always_inline int current_selected(void)
{
	if (ignore_tgid && (__u32)(bpf_get_current_pid_tgid() >> 32) == ignore_tgid)
		return 0;
	if (filter_mode == FILTER_MODE_ALL)
		return 1;
	if (filter_mode == FILTER_MODE_NOT_ROOT)
		return bpf_get_current_ancestor_cgroup_id(1) != 0;
	return current_in_container_root();
}

#endif
