/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Reserve / fill header / submit, wake-up policy and drop accounting. */
#ifndef EBPF_LIB_RECORD_H
#define EBPF_LIB_RECORD_H

#include "maps.h"

static __always_inline void count_drop(__u32 kind)
{
	__u64 *n = bpf_map_lookup_elem(&drop_counters, &kind);
	if (n)
		*n += 1; /* per-CPU slot: no atomics needed */
}

/*
 * Records are submitted without waking the consumer; the consumer's poll timeout bounds latency.
 * Once enough data waits, force a wake-up so a burst is drained before the buffer fills.
 */
static __always_inline __u64 wakeup_flags(void)
{
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_threshold_bytes)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

static __always_inline void fill_header(struct event_header *h, __u16 kind, __u32 size)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	h->kind = kind;
	h->abi_version = EVENT_ABI_VERSION;
	h->size = size;
	h->boot_ns = bpf_ktime_get_boot_ns();
	h->cgroup_id = bpf_get_current_cgroup_id();
	h->tgid = pid_tgid >> 32;
	h->tid = (__u32)pid_tgid;
}

/* Fixed-size records: reserve in the ring buffer, zeroed so padding never leaks kernel memory. */
static __always_inline void *reserve_record(__u16 kind, __u32 size)
{
	void *rec = bpf_ringbuf_reserve(&events, size, 0);
	if (!rec) {
		count_drop(kind);
		return 0;
	}
	__builtin_memset(rec, 0, size);
	fill_header(rec, kind, size);
	return rec;
}

static __always_inline void submit_record(void *rec)
{
	bpf_ringbuf_submit(rec, wakeup_flags());
}

/*
 * Variable-length records: built in the per-CPU scratch buffer, emitted at their real size.
 * Returns 0 when the scratch is in use by a program this one preempted (counted as a drop).
 */
static __always_inline struct scratch_record *scratch_acquire(__u16 kind)
{
	__u32 zero = 0;
	struct scratch_record *s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return 0;
	if (__sync_fetch_and_add(&s->busy, 1) != 0) {
		__sync_fetch_and_add(&s->busy, -1);
		count_drop(kind);
		return 0;
	}
	return s;
}

static __always_inline void scratch_release(struct scratch_record *s)
{
	__sync_fetch_and_add(&s->busy, -1);
}

/* size: the record's data bytes, already written to header.size */
static __always_inline void scratch_emit_flags(struct scratch_record *s, __u16 kind, __u32 size, __u64 flags)
{
	size &= SCRATCH_MASK;
	if (size < sizeof(struct event_header))
		size = sizeof(struct event_header);
	if (bpf_ringbuf_output(&events, s->data, size, flags))
		count_drop(kind);
}

static __always_inline void scratch_emit(struct scratch_record *s, __u16 kind, __u32 size)
{
	scratch_emit_flags(s, kind, size, wakeup_flags());
}

#endif
