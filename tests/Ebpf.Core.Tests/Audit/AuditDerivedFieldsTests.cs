using System.Text;
using Ebpf.Core.Audit;

namespace Ebpf.Core.Tests.Audit;

public sealed class AuditDerivedFieldsTests
{
    private static readonly AuditEventParser Parser = new();

    // Built from the audit.k8s.io/v1 schema (no public sample carries these shapes, see SOURCES.md).
    private static AuditEvent Event(string subresource, string requestUri, string extraUser = "", string requestObject = "")
    {
        var json = $$"""
        {"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Request","auditID":"a1","stage":"ResponseStarted",
         "requestURI":{{System.Text.Json.JsonSerializer.Serialize(requestUri)}},"verb":"create",
         "user":{"username":"system:serviceaccount:ci:runner","uid":"u1","groups":["system:serviceaccounts"]{{extraUser}}},
         "objectRef":{"resource":"pods","namespace":"prod","name":"api-0","apiVersion":"v1","subresource":"{{subresource}}"},
         "responseStatus":{"metadata":{},"code":101}{{requestObject}},
         "requestReceivedTimestamp":"2025-05-01T10:00:00.000001Z","stageTimestamp":"2025-05-01T10:00:00.100000Z"}
        """.Replace("\n", string.Empty, StringComparison.Ordinal);
        var item = Parser.ParseEvent(Encoding.UTF8.GetBytes(json));
        Assert.True(item.IsEvent, item.ToString());
        return item.Event!;
    }

    [Fact]
    public void Streaming_ExecWithEncodedArgv_DecodesPlusAndPercent()
    {
        var s = Event("exec", "/api/v1/namespaces/prod/pods/api-0/exec?command=sh&command=-c&command=echo+%22a+b%22+%26%26+cat+%2Fetc%2Fshadow%3B+id&command=caf%C3%A9&container=app&stdin=true&stdout=1&stderr=false&tty=0").Derived.Streaming!;

        Assert.Equal(["sh", "-c", "echo \"a b\" && cat /etc/shadow; id", "café"], s.Command);
        Assert.Equal("app", s.Container);
        Assert.True(s.Stdin);
        Assert.True(s.Stdout);
        Assert.False(s.Stderr);
        Assert.False(s.Tty);
        Assert.Null(s.QueryError);
    }

    [Theory]
    [InlineData("command=ls%2", "truncated %-escape")]
    [InlineData("command=ls%zz", "invalid %-escape")]
    [InlineData("command=%ff%fe", "not valid UTF-8")]
    [InlineData("command=ls;id", "';'")]
    [InlineData("command=l\u00e9", "non-ASCII")]
    public void Streaming_HostileEncoding_RejectedWithoutArgv(string query, string expected)
    {
        var s = Event("exec", "/api/v1/namespaces/prod/pods/api-0/exec?container=x&" + query).Derived.Streaming!;

        Assert.Empty(s.Command);
        Assert.Null(s.Container);
        Assert.Contains(expected, s.QueryError, StringComparison.Ordinal);
    }

    [Fact]
    public void Streaming_OverlongQuery_RejectedCleanly()
    {
        var s = Event("exec", "/api/v1/namespaces/prod/pods/api-0/exec?" + string.Concat(Enumerable.Repeat("command=a&", 7000))).Derived.Streaming!;

        Assert.Empty(s.Command);
        Assert.Contains("longer than", s.QueryError, StringComparison.Ordinal);
    }

    [Fact]
    public void Streaming_PortForward_ParsesRepeatedAndCommaPorts()
    {
        var s = Event("portforward", "/api/v1/namespaces/prod/pods/api-0/portforward?ports=8080&ports=5432,6379").Derived.Streaming!;

        Assert.Equal(AuditStreamingKind.PortForward, s.Kind);
        Assert.Equal([8080, 5432, 6379], s.Ports);
        Assert.Null(s.QueryError);
    }

    [Fact]
    public void Streaming_PortForwardBadPort_ReportsError()
    {
        var s = Event("portforward", "/api/v1/namespaces/prod/pods/api-0/portforward?ports=70000").Derived.Streaming!;

        Assert.Empty(s.Ports);
        Assert.Contains("invalid port", s.QueryError, StringComparison.Ordinal);
    }

    [Fact]
    public void Streaming_EphemeralContainers_TakesNameFromRequestObject()
    {
        var body = ""","requestObject":{"kind":"Pod","apiVersion":"v1","spec":{"ephemeralContainers":[{"name":"old"},{"name":"debugger-x7","image":"busybox"}]}}""";
        var s = Event("ephemeralcontainers", "/api/v1/namespaces/prod/pods/api-0/ephemeralcontainers", requestObject: body).Derived.Streaming!;

        Assert.Equal(AuditStreamingKind.EphemeralContainers, s.Kind);
        Assert.Equal("debugger-x7", s.Container);
        Assert.Equal("api-0", s.PodName);
    }

    [Fact]
    public void BoundToken_ExtraKeys_Extracted()
    {
        var extra = ""","extra":{"authentication.kubernetes.io/credential-id":["JTI=7c9a"],"authentication.kubernetes.io/node-name":["node-a"],"authentication.kubernetes.io/node-uid":["n-uid"],"authentication.kubernetes.io/pod-name":["runner-5f"],"authentication.kubernetes.io/pod-uid":["p-uid"]}""";
        var d = Event("exec", "/api/v1/namespaces/prod/pods/api-0/exec?command=id", extra).Derived;

        Assert.Equal(new AuditBoundTokenInfo
        {
            ServiceAccountNamespace = "ci",
            ServiceAccountName = "runner",
            PodName = "runner-5f",
            PodUid = "p-uid",
            NodeName = "node-a",
            NodeUid = "n-uid",
            CredentialId = "JTI=7c9a",
        }, d.BoundToken);
        Assert.False(d.IsImpersonated);
        Assert.Equal("system:serviceaccount:ci:runner", d.AttributedUser?.Username);
    }

    [Fact]
    public void Derived_NonStreamingEvent_HasNoStreamingOrToken()
    {
        var json = """{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"b","stage":"ResponseComplete","requestURI":"/api/v1/pods","verb":"list","user":{"username":"x","extra":{}},"stageTimestamp":"2025-01-01T00:00:00Z"}"""u8;
        var d = Parser.ParseEvent(json).Event!.Derived;

        Assert.Null(d.Streaming);
        Assert.Null(d.BoundToken);
        Assert.Equal(d.StageTime, d.RequestReceivedTime);
    }
}
