/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* A bounded d_path(): the task's working directory as the task sees it (relative to its fs->root). */
#ifndef EBPF_LIB_PATH_H
#define EBPF_LIB_PATH_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include "maps.h"

/* components walked; a deeper cwd is reported truncated (its leading components are missing) */
#define CWD_MAX_DEPTH 32
#define CWD_NAME_MAX 255
/* the path is assembled backwards in the last KiB of the scratch buffer, away from the record */
#define CWD_TMP_OFFSET (SCRATCH_SIZE - 1024)

_Static_assert(EVENT_MAX_SIZE <= CWD_TMP_OFFSET, "cwd assembly area overlaps the record");
_Static_assert(CWD_TMP_OFFSET + EXEC_CWD_CAP + CWD_NAME_MAX < SCRATCH_SIZE, "cwd assembly area overflows the scratch");

static __always_inline struct mount *real_mount_of(struct vfsmount *vfs)
{
	return (struct mount *)((void *)vfs - bpf_core_field_offset(struct mount, mnt));
}

/*
 * Writes the cwd of task into data[dst..dst+len) and returns len (no NUL). Walks d_parent up to the
 * task's root, crossing mount points through mnt_parent/mnt_mountpoint like prepend_path() in
 * fs/d_path.c, at most CWD_MAX_DEPTH components and EXEC_CWD_CAP bytes.
 */
static __always_inline __u32 read_cwd(struct task_struct *task, __u8 *data, __u32 dst, __u32 *flags)
{
	__u8 *tmp = data + CWD_TMP_OFFSET;
	struct fs_struct *fs = BPF_CORE_READ(task, fs);
	struct dentry *dentry = BPF_CORE_READ(fs, pwd.dentry);
	struct vfsmount *vfs = BPF_CORE_READ(fs, pwd.mnt);
	struct dentry *root_dentry = BPF_CORE_READ(fs, root.dentry);
	struct vfsmount *root_vfs = BPF_CORE_READ(fs, root.mnt);
	struct mount *mnt = real_mount_of(vfs);
	__u32 pos = EXEC_CWD_CAP, len, n;
	int complete = 0;

	if (!fs || !dentry)
		return 0;
	for (int i = 0; i < CWD_MAX_DEPTH; i++) {
		struct dentry *parent;
		const unsigned char *name;

		if (dentry == root_dentry && vfs == root_vfs) {
			complete = 1;
			break;
		}
		parent = BPF_CORE_READ(dentry, d_parent);
		if (dentry == parent) {
			/* root of a mount: continue from where it is mounted */
			struct mount *up = BPF_CORE_READ(mnt, mnt_parent);
			if (up == mnt) {
				complete = 1; /* the namespace root: the task's root is not above us */
				break;
			}
			dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = up;
			vfs = (struct vfsmount *)((void *)up + bpf_core_field_offset(struct mount, mnt));
			continue;
		}
		len = BPF_CORE_READ(dentry, d_name.len);
		name = BPF_CORE_READ(dentry, d_name.name);
		if (len == 0 || len > CWD_NAME_MAX || len + 1 > pos)
			break;
		pos -= len;
		pos &= EXEC_CWD_CAP - 1;
		if (bpf_probe_read_kernel(tmp + pos, len & CWD_NAME_MAX, name))
			break;
		pos -= 1;
		pos &= EXEC_CWD_CAP - 1;
		tmp[pos] = '/';
		dentry = parent;
	}
	if (!complete)
		*flags |= EXEC_FLAG_CWD_TRUNCATED;
	if (pos == EXEC_CWD_CAP) {
		/* the root itself */
		data[dst & SCRATCH_MASK] = '/';
		return 1;
	}
	n = (EXEC_CWD_CAP - pos) & (EXEC_CWD_CAP - 1);
	if (dst > SCRATCH_SIZE - EXEC_CWD_CAP - 1024 || n == 0)
		return 0;
	if (bpf_probe_read_kernel(data + dst, n, tmp + (pos & (EXEC_CWD_CAP - 1))))
		return 0;
	return n;
}

#endif
