using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Ebpf.Api.Grpc;

public static class GrpcEndpointRouteBuilderExtensions
{
    // One catch-all per route builder answers unknown services and methods with UNIMPLEMENTED.
    private static readonly ConditionalWeakTable<IEndpointRouteBuilder, object> FallbackMapped = new();

    /// <summary>
    /// Maps every method of <paramref name="service"/> to <c>POST /{service}/{method}</c>, plus a catch-all that ends
    /// gRPC requests for unknown services or methods with UNIMPLEMENTED. Options default to the
    /// <see cref="GrpcServerOptions"/> registered in DI, else to <c>new GrpcServerOptions()</c>. Server streams end with
    /// UNAVAILABLE when the host's ApplicationStopping fires.
    /// </summary>
    public static IEndpointConventionBuilder MapGrpcService(
        this IEndpointRouteBuilder endpoints, GrpcServiceDefinition service, GrpcServerOptions? options = null)
    {
        options ??= endpoints.ServiceProvider.GetService<GrpcServerOptions>() ?? new GrpcServerOptions();
        var logger = endpoints.ServiceProvider.GetService<ILoggerFactory>()?.CreateLogger("Ebpf.Api.Grpc")
            ?? NullLogger.Instance;
        var stopping = endpoints.ServiceProvider.GetService<IHostApplicationLifetime>()?.ApplicationStopping ?? CancellationToken.None;
        var handler = new GrpcEndpointHandler(options, logger, stopping);

        var builders = new List<IEndpointConventionBuilder>();
        foreach (var method in service.Methods.Values)
        {
            var fullMethod = $"/{service.ServiceName}/{method.Name}";
            builders.Add(endpoints.MapPost(fullMethod, (HttpContext context) => handler.HandleAsync(context, fullMethod, method))
                .WithDisplayName($"gRPC {fullMethod}"));
        }

        if (!FallbackMapped.TryGetValue(endpoints, out _))
        {
            FallbackMapped.AddOrUpdate(endpoints, new object());
            var fallback = endpoints.MapPost("/{**grpcUnimplemented}",
                    (HttpContext context) => handler.HandleAsync(context, context.Request.Path.Value ?? "/", method: null))
                .WithDisplayName("gRPC unimplemented");
            fallback.Add(b => ((RouteEndpointBuilder)b).Order = int.MaxValue - 1);
            builders.Add(fallback);
        }

        return new CompositeConventionBuilder(builders);
    }

    private sealed class CompositeConventionBuilder(List<IEndpointConventionBuilder> builders) : IEndpointConventionBuilder
    {
        public void Add(Action<EndpointBuilder> convention)
        {
            foreach (var builder in builders)
            {
                builder.Add(convention);
            }
        }

        public void Finally(Action<EndpointBuilder> finallyConvention)
        {
            foreach (var builder in builders)
            {
                builder.Finally(finallyConvention);
            }
        }
    }
}
