/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* open/openat/openat2: arguments stashed at sys_enter, record (path as passed + result) emitted at sys_exit. */
#include "lib/maps.h"
#include "lib/filter.h"
#include "lib/record.h"

#define AT_FDCWD -100

struct open_args {
	__u64 upath; /* user pointer: read at exit, when the kernel has faulted the page in */
	__s32 dirfd;
	__s32 flags;
	__u32 mode;
	__u32 pad0;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32); /* tid */
	__type(value, struct open_args);
} open_args_by_tid SEC(".maps");

/* the user space struct open_how (include/uapi/linux/openat2.h) */
struct user_open_how {
	__u64 flags;
	__u64 mode;
	__u64 resolve;
};

static __always_inline void stash_open(__s32 dirfd, __u64 upath, __s32 flags, __u32 mode)
{
	struct open_args a = { .upath = upath, .dirfd = dirfd, .flags = flags, .mode = mode };
	__u32 tid = (__u32)bpf_get_current_pid_tgid();

	if (!current_selected())
		return;
	bpf_map_update_elem(&open_args_by_tid, &tid, &a, BPF_ANY);
}

/* 1 when no allow-list is configured or the path starts with one of file_prefixes */
static __always_inline int path_allowed(const char *path)
{
	if (file_prefix_count == 0)
		return 1;
	for (__u32 slot = 0; slot < FILE_PREFIX_SLOTS; slot++) {
		int matched = 1;

		if (slot >= file_prefix_count)
			break;
		for (int i = 0; i < FILE_PREFIX_CAP; i++) {
			char c = file_prefixes[slot][i];
			if (c == 0)
				break;
			if (path[i] != c) {
				matched = 0;
				break;
			}
		}
		if (matched)
			return 1;
	}
	return 0;
}

static __always_inline void fill_file_open(const struct open_args *a, __s32 result)
{
	struct scratch_record *s;
	struct file_open_event *e;
	__u32 n = 0, size;
	__u16 file_flags = 0;
	long r;

	if (ignore_failed_opens && result < 0)
		return;
	s = scratch_acquire(EVENT_KIND_FILE_OPEN);
	if (!s)
		return;
	e = (void *)s->data;
	__builtin_memset(e, 0, sizeof(*e));

	r = bpf_probe_read_user_str(s->data + sizeof(*e), FILE_PATH_CAP, (void *)a->upath);
	if (r > 0) {
		n = r - 1;
		if (r == FILE_PATH_CAP)
			file_flags |= FILE_OPEN_FLAG_PATH_TRUNCATED;
	} else {
		s->data[sizeof(*e)] = 0;
		file_flags |= FILE_OPEN_FLAG_PATH_UNREADABLE;
	}
	if (!path_allowed((const char *)s->data + sizeof(*e)))
		goto out;

	e->dirfd = a->dirfd;
	e->flags = a->flags;
	e->mode = a->mode;
	e->result = result;
	n &= FILE_PATH_CAP - 1;
	e->path_len = n;
	e->file_flags = file_flags;
	size = sizeof(*e) + n;
	fill_header(&e->hdr, EVENT_KIND_FILE_OPEN, size);
	scratch_emit(s, EVENT_KIND_FILE_OPEN, size);
out:
	scratch_release(s);
}

static __always_inline void finish_open(__s32 result)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct open_args *a = bpf_map_lookup_elem(&open_args_by_tid, &tid);

	if (!a)
		return;
	fill_file_open(a, result);
	bpf_map_delete_elem(&open_args_by_tid, &tid);
}

/* ---- hooks ---- */

SEC("tracepoint/syscalls/sys_enter_openat")
int enter_openat(struct trace_event_raw_sys_enter *ctx)
{
	stash_open((__s32)ctx->args[0], ctx->args[1], (__s32)ctx->args[2], (__u32)ctx->args[3]);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_openat")
int exit_openat(struct trace_event_raw_sys_exit *ctx)
{
	finish_open((__s32)ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_openat2")
int enter_openat2(struct trace_event_raw_sys_enter *ctx)
{
	struct user_open_how how = {};

	bpf_probe_read_user(&how, sizeof(how), (void *)ctx->args[2]);
	stash_open((__s32)ctx->args[0], ctx->args[1], (__s32)how.flags, (__u32)how.mode);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_openat2")
int exit_openat2(struct trace_event_raw_sys_exit *ctx)
{
	finish_open((__s32)ctx->ret);
	return 0;
}

/* open(2) is still used by static binaries (busybox); reported with dirfd AT_FDCWD */
SEC("tracepoint/syscalls/sys_enter_open")
int enter_open(struct trace_event_raw_sys_enter *ctx)
{
	stash_open(AT_FDCWD, ctx->args[0], (__s32)ctx->args[1], (__u32)ctx->args[2]);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_open")
int exit_open(struct trace_event_raw_sys_exit *ctx)
{
	finish_open((__s32)ctx->ret);
	return 0;
}
