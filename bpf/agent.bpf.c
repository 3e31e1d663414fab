/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one loadable object (build/bpf/agent.bpf.o): every hook family is compiled in this unit so
 * they share one ring buffer, one set of maps and one .rodata configuration. Static linking with
 * `bpftool gen object` would need extern maps and globals in every family file for no gain.
 */
#include "lib/maps.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * Never read by a program. clang only emits BTF for types that a variable or function uses, and the
 * records are written through scratch pointers and casts (a pointer member would only emit a FWD); this anchor puts every record struct and
 * ABI enum into the object's BTF, which the user-space layout test (alignchecker) compares with
 * the C# mirrors.
 */
struct abi_types {
	struct event_header header;
	struct exec_event exec;
	struct fork_event fork;
	struct exit_event exit;
	struct connect_event connect;
	struct file_open_event file_open;
	struct cgroup_event cgroup;
	enum event_abi abi;
	enum event_kind kind;
	enum event_caps caps;
	enum exec_flags exec_flags;
	enum file_open_flags file_open_flags;
	enum cgroup_flags cgroup_flags;
	enum filter_mode filter_mode;
};
const volatile struct abi_types abi_types_anchor = {};

#include "process.bpf.c"
#include "net.bpf.c"
#include "file.bpf.c"
#include "cgroup.bpf.c"
