global using Record = Ebpf.Api.V1.Record;
