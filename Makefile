# One command per job. `make test` and `make run` pull in what they need, so each works on a fresh machine.
SHELL := /bin/bash
CONFIG ?= Release
DOTNET ?= dotnet
BPF_OUT := build/bpf
CLANG ?= clang
BPFTOOL ?= bpftool
ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
# One object: bpf/agent.bpf.c includes every hook family (bpf/*.bpf.c) so they share one ring buffer.
BPF_OBJECT := $(BPF_OUT)/agent.bpf.o
BPF_SOURCES := $(wildcard bpf/*.bpf.c bpf/include/*.h bpf/lib/*.h)
APT_PACKAGES := clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev runc busybox-static libbpf-tools iproute2 kubectl nodejs
ARGS ?=

.PHONY: deps bpf vmlinux build test run demo bench clean tracefs

## deps: install the Debian packages we build and test with (idempotent; quick when already installed)
deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

## tracefs: tracepoints are attached through tracefs; mount it when the host has not
tracefs:
	@mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing || echo "warning: could not mount tracefs at /sys/kernel/tracing"

## vmlinux: regenerate the committed CO-RE header from the running kernel's BTF
vmlinux:
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > bpf/include/vmlinux.h

## bpf: compile the CO-RE programs (embedded into Ebpf.Interop at build)
bpf: $(BPF_OBJECT)

# -g: the object must carry BTF (CO-RE relocations, and the layout test reads the record structs from it).
# -mcpu=v3: atomic fetch-and-add with a result (the per-CPU scratch guard). llvm-strip -g drops DWARF only; .BTF stays.
$(BPF_OBJECT): $(BPF_SOURCES) | deps
	@mkdir -p $(BPF_OUT)
	$(CLANG) -g -O2 -mcpu=v3 -Wall -Werror -target bpf -D__TARGET_ARCH_$(ARCH) -Ibpf/include -Ibpf/lib -Ibpf -c bpf/agent.bpf.c -o $@
	@llvm-strip -g $@ 2>/dev/null || true

## build: BPF objects and every .NET project
build: bpf
	$(DOTNET) build Ebpf.sln -c $(CONFIG) --nologo -v q

## test: everything (kernel tests need root; in CI they fail loudly if they cannot run)
test: build tracefs
	$(DOTNET) test Ebpf.sln -c $(CONFIG) --no-build --nologo $(ARGS)

## run: the agent in standalone mode on this machine, store under ./data
run: build tracefs
	$(DOTNET) src/Ebpf.Agent/bin/$(CONFIG)/net10.0/ebpf-agent.dll run --standalone --data-dir ./data --print $(ARGS)

## demo: a one-minute scenario on this machine: two runc pods, two users' kubectl execs, kubectl exectrace output
demo: build tracefs
	bash deploy/demo/demo.sh

## bench: every benchmark, printing numbers (see docs/benchmarks.md; takes several minutes, needs root for capture)
BENCH_RUN = $(DOTNET) run -c $(CONFIG) --no-build --project
bench: build
	$(BENCH_RUN) bench/Ebpf.Bench.Capture
	$(BENCH_RUN) bench/Ebpf.Bench.Audit -- 200000 400
	$(BENCH_RUN) bench/Ebpf.Bench.Policy -- 2
	$(BENCH_RUN) bench/Ebpf.Bench.Identity -- cpu
	$(BENCH_RUN) bench/Ebpf.Bench.Identity -- memory
	$(BENCH_RUN) bench/Ebpf.Bench.Correlation
	$(BENCH_RUN) bench/Ebpf.Bench.Store -- 1000000
	$(BENCH_RUN) bench/Ebpf.Bench.Grpc

clean:
	rm -rf build && $(DOTNET) clean Ebpf.sln -v q >/dev/null
