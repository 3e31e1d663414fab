// Xunit has a Record type too; in these tests Record is always the journaled message.
global using Record = Ebpf.Api.V1.Record;
