# syntax=docker/dockerfile:1
# Builds the same way the Makefile does: BPF objects with clang (CO-RE, vmlinux.h committed, so no host BTF
# is needed at build time), then the .NET agent published self-contained. Runtime: Debian with libbpf1.

FROM debian:bookworm AS bpf
RUN apt-get update && apt-get install -y --no-install-recommends clang llvm libbpf-dev make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY bpf/ bpf/
# `deps` is skipped: the packages are installed above.
RUN make bpf APT_PACKAGES=

FROM mcr.microsoft.com/dotnet/sdk:10.0-bookworm-slim AS dotnet
WORKDIR /src
COPY Directory.Build.props Directory.Packages.props global.json Ebpf.sln ./
COPY src/ src/
COPY --from=bpf /src/build/bpf/ build/bpf/
RUN dotnet publish src/Ebpf.Agent -c Release -r linux-x64 --self-contained -p:SkipBpfBuild=true -o /out/agent \
    && dotnet publish src/Ebpf.Cli -c Release -r linux-x64 --self-contained -p:SkipBpfBuild=true -o /out/cli

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libbpf1 libelf1 zlib1g ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=dotnet /out/agent /opt/ebpf-agent
COPY --from=dotnet /out/cli /opt/kubectl-exectrace
RUN ln -s /opt/ebpf-agent/ebpf-agent /usr/local/bin/ebpf-agent \
    && ln -s /opt/kubectl-exectrace/kubectl-exectrace /usr/local/bin/kubectl-exectrace
ENV DOTNET_gcServer=0 DOTNET_GCHeapHardLimitPercent=0x4B
# Root is required to load BPF programs; the DaemonSet drops every capability it can (deploy/least-privilege).
ENTRYPOINT ["/usr/local/bin/ebpf-agent"]
CMD ["run"]
