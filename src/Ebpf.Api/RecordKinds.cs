using Ebpf.Api.V1;

namespace Ebpf.Api;

/// <summary>The <see cref="RecordKind"/> of a record, from which body it carries: used by stream filters and the store's index.</summary>
public static class RecordKinds
{
    public static RecordKind Of(Record record) => record.BodyCase switch
    {
        Record.BodyOneofCase.NodeEvent => RecordKind.NodeEvent,
        Record.BodyOneofCase.AuditEvent => RecordKind.AuditEvent,
        Record.BodyOneofCase.Session => RecordKind.Session,
        Record.BodyOneofCase.Attribution => RecordKind.Attribution,
        Record.BodyOneofCase.Finding => RecordKind.Finding,
        _ => RecordKind.Unspecified,
    };
}
