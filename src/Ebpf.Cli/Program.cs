using System.CommandLine;
using Ebpf.Cli;
using Ebpf.Cli.Commands;
using Ebpf.Cli.Policy;

return await CliRoot.RunAsync(args, Console.Out, Console.Error);

namespace Ebpf.Cli
{
    /// <summary>The kubectl-exectrace command tree. Commands write to the invocation's Output/Error writers so tests can run them in-process.</summary>
    public static class CliRoot
    {
        /// <summary>Exit code for bad flags, unreadable or invalid input files.</summary>
        public const int UsageError = 2;

        private const string Description = """
            kubectl exectrace: who ran kubectl exec, and what the session did.

            Asks the ebpf-agent (a DaemonSet: each agent records its own node) over gRPC. Without --agent or $EBPF_AGENT,
            the agent is found through your kubeconfig (the agent pod on the target pod's node, or --node) and reached
            with `kubectl port-forward`. With neither --node nor a pod, sessions, findings, show, status and watch ask
            every agent of the cluster and merge the answers (watch: as records arrive, each line naming its node); so
            does a comma-separated --agent list. pod talks to the agent of the pod's node.

            Examples:
              kubectl exectrace sessions --since 1h
              kubectl exectrace sessions -n shop --pod web-0 -o wide
              kubectl exectrace show 7f3a9c02
              kubectl exectrace pod web-0 -n shop
              kubectl exectrace watch --kind session,finding
              kubectl exectrace findings --since 2d -o json
              kubectl exectrace status --agent 10.0.3.17:50051
              kubectl exectrace sessions --user alice --agent 10.0.3.17:50051,10.0.4.22:50051
              kubectl exectrace policy eval --policy audit-policy.yaml --user alice --verb create --resource pods/exec

            Exit codes: 0 ok, 1 not found or rejected by the agent, 2 bad flags, 3 agent unreachable,
            4 partial: some of several agents could not be asked (warnings name them; the rest was printed).
            """;

        public static RootCommand Create(CliEnvironment? environment = null)
        {
            var root = new RootCommand(Description);
            foreach (var command in TraceCommands.Create(environment ?? CliEnvironment.Process))
                root.Subcommands.Add(command);
            root.Subcommands.Add(PolicyCommand.Create());
            return root;
        }

        /// <summary>Parses and runs <paramref name="args"/>; parse errors exit with <see cref="UsageError"/>.</summary>
        public static int Run(string[] args, TextWriter output, TextWriter error, CliEnvironment? environment = null) =>
            RunAsync(args, output, error, environment).GetAwaiter().GetResult();

        /// <summary>
        /// Parses and runs <paramref name="args"/>. <paramref name="cancellationToken"/> stops long-running commands
        /// (watch) like Ctrl-C does.
        /// </summary>
        public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CliEnvironment? environment = null,
            CancellationToken cancellationToken = default)
        {
            var parseResult = Create(environment).Parse(args);
            if (parseResult.Errors.Count > 0)
            {
                foreach (var parseError in parseResult.Errors)
                    await error.WriteLineAsync($"error: {parseError.Message}").ConfigureAwait(false);
                await error.WriteLineAsync("run with --help for usage").ConfigureAwait(false);
                return UsageError;
            }
            return await parseResult.InvokeAsync(new InvocationConfiguration { Output = output, Error = error }, cancellationToken).ConfigureAwait(false);
        }
    }
}
