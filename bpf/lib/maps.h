/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Maps and load-time configuration shared by every hook family (one object, one ring buffer). */
#ifndef EBPF_LIB_MAPS_H
#define EBPF_LIB_MAPS_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "events.h"

enum filter_mode {
	FILTER_MODE_ALL = 0,
	FILTER_MODE_NOT_ROOT = 1,
	FILTER_MODE_CONTAINERS = 2,
};

#define FILE_PREFIX_SLOTS 4
#define FILE_PREFIX_CAP 64
/* cgroup levels searched for a container root (level 1 is a child of the v2 root) */
#define MAX_ANCESTOR_LEVEL 8
/* per-CPU scratch record: a power of two above EVENT_MAX_SIZE so offsets can be masked */
#define SCRATCH_SIZE 8192
#define SCRATCH_MASK (SCRATCH_SIZE - 1)

/*
 * Load-time configuration (.rodata: set by user space before load, constant to the verifier so
 * disabled branches are pruned). Names and defaults are part of the ABI: docs/abi.md.
 */
const volatile __u32 filter_mode = FILTER_MODE_CONTAINERS;
/* force a consumer wake-up once this many bytes wait in the ring buffer; 0: wake on every record */
const volatile __u64 wakeup_threshold_bytes = 64 * 1024;
/* tgid whose events are never emitted (the agent itself); 0: none */
const volatile __u32 ignore_tgid = 0;
/* 1: do not emit file opens that failed */
const volatile __u32 ignore_failed_opens = 0;
/* number of used slots in file_prefixes; 0: no allow-list, every path is emitted */
const volatile __u32 file_prefix_count = 0;
/* NUL-terminated path prefixes; an open is emitted when its path starts with one of them */
const volatile char file_prefixes[FILE_PREFIX_SLOTS][FILE_PREFIX_CAP] = {};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 * 1024 * 1024);
} events SEC(".maps");

/* ring-buffer reserve/output failures, per kind (key: enum event_kind) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EVENT_KIND_MAX);
	__type(key, __u32);
	__type(value, __u64);
} drop_counters SEC(".maps");

/* ids of the cgroups under which containers live (kubepods roots), filled by user space */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u64);
	__type(value, __u8);
} container_roots SEC(".maps");

struct scratch_record {
	__u32 busy; /* re-entrancy guard: a program preempted on this CPU keeps it set */
	__u32 pad0;
	__u8 data[SCRATCH_SIZE];
};

/* variable-length records are built here, then copied out with bpf_ringbuf_output at their real size */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch_record);
} scratch SEC(".maps");

#endif
