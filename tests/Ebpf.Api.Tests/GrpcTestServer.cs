using Ebpf.Api.ExecTrace;
using Ebpf.Api.Grpc;
using Ebpf.Api.Streaming;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Ebpf.Api.Tests;

/// <summary>Real Kestrel on 127.0.0.1 with a random port, HTTP/2 only, serving <see cref="TestExecTraceService"/>.</summary>
internal sealed class GrpcTestServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private GrpcTestServer(WebApplication app, TestExecTraceService service, Uri address)
    {
        _app = app;
        Service = service;
        Address = address;
    }

    public TestExecTraceService Service { get; }

    public Uri Address { get; }

    public static async Task<GrpcTestServer> StartAsync(
        GrpcServerOptions? serverOptions = null, RecordHub? hub = null, GrpcListenOptions? listen = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        listen ??= new GrpcListenOptions();
        listen.Port = 0;
        builder.WebHost.ConfigureKestrel(k => k.ListenGrpc(listen));
        var app = builder.Build();
        var service = new TestExecTraceService(hub ?? new RecordHub());
        app.MapExecTraceService(service, serverOptions ?? new GrpcServerOptions());
        await app.StartAsync();
        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var scheme = listen.CertificatePath is null ? "http" : "https";
        var port = new Uri(bound.Replace("[::]", "localhost", StringComparison.Ordinal)).Port;
        return new GrpcTestServer(app, service, new Uri($"{scheme}://127.0.0.1:{port}"));
    }

    public ExecTraceClient CreateClient(string? token = null) =>
        new(new GrpcClientOptions { Address = Address, BearerToken = token });

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
