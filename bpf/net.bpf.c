/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* connect(2): the arguments are stashed at sys_enter and the record is emitted at sys_exit with the result. */
#include "lib/maps.h"
#include "lib/filter.h"
#include "lib/record.h"

#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10

struct connect_args {
	__u64 uaddr;   /* user pointer to the sockaddr */
	__u32 addrlen;
	__s32 fd;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32); /* tid */
	__type(value, struct connect_args);
} connect_args_by_tid SEC(".maps");

static __always_inline void stash_connect(__s32 fd, __u64 uaddr, __u32 addrlen)
{
	struct connect_args a = { .uaddr = uaddr, .addrlen = addrlen, .fd = fd };
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u16 family = 0;

	if (!current_selected())
		return;
	if (bpf_probe_read_user(&family, sizeof(family), (void *)uaddr))
		return;
	if (family != AF_UNIX && family != AF_INET && family != AF_INET6)
		return;
	bpf_map_update_elem(&connect_args_by_tid, &tid, &a, BPF_ANY);
}

static __always_inline void fill_connect(const struct connect_args *a, __s32 result)
{
	struct connect_event *e;
	__u16 family = 0, port_be = 0;
	__u32 n;

	e = reserve_record(EVENT_KIND_CONNECT, sizeof(*e));
	if (!e)
		return;
	e->fd = a->fd;
	e->result = result;
	/* the kernel already copied the sockaddr, so the user page is present; a racing writer could
	 * change it, which only matters for telemetry, not for the connect itself */
	bpf_probe_read_user(&family, sizeof(family), (void *)a->uaddr);
	e->family = family;
	if (family == AF_INET) {
		bpf_probe_read_user(&port_be, sizeof(port_be), (void *)(a->uaddr + 2));
		bpf_probe_read_user(e->addr, 4, (void *)(a->uaddr + 4));
	} else if (family == AF_INET6) {
		bpf_probe_read_user(&port_be, sizeof(port_be), (void *)(a->uaddr + 2));
		bpf_probe_read_user(e->addr, 16, (void *)(a->uaddr + 8)); /* after sin6_flowinfo */
	} else if (family == AF_UNIX) {
		n = a->addrlen > 2 ? a->addrlen - 2 : 0;
		if (n > UNIX_PATH_CAP)
			n = UNIX_PATH_CAP;
		if (n > 0 && bpf_probe_read_user(e->unix_path, n, (void *)(a->uaddr + 2)))
			n = 0;
		e->unix_path_len = n;
	}
	e->port = __builtin_bswap16(port_be);
	submit_record(e);
}

/* ---- hooks ---- */

SEC("tracepoint/syscalls/sys_enter_connect")
int enter_connect(struct trace_event_raw_sys_enter *ctx)
{
	stash_connect((__s32)ctx->args[0], ctx->args[1], (__u32)ctx->args[2]);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_connect")
int exit_connect(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct connect_args *a = bpf_map_lookup_elem(&connect_args_by_tid, &tid);

	if (!a)
		return 0;
	fill_connect(a, (__s32)ctx->ret);
	bpf_map_delete_elem(&connect_args_by_tid, &tid);
	return 0;
}
