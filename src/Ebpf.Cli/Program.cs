using System.CommandLine;
using Ebpf.Cli;
using Ebpf.Cli.Policy;

return CliRoot.Run(args, Console.Out, Console.Error);

namespace Ebpf.Cli
{
    /// <summary>The kubectl-exectrace command tree. Commands write to the invocation's Output/Error writers so tests can run them in-process.</summary>
    public static class CliRoot
    {
        /// <summary>Exit code for bad flags, unreadable or invalid input files.</summary>
        public const int UsageError = 2;

        public static RootCommand Create()
        {
            var root = new RootCommand("kubectl exectrace: who ran kubectl exec, and what the session did");
            root.Subcommands.Add(PolicyCommand.Create());
            return root;
        }

        /// <summary>Parses and runs <paramref name="args"/>; parse errors exit with <see cref="UsageError"/>.</summary>
        public static int Run(string[] args, TextWriter output, TextWriter error)
        {
            var parseResult = Create().Parse(args);
            if (parseResult.Errors.Count > 0)
            {
                foreach (var parseError in parseResult.Errors)
                    error.WriteLine($"error: {parseError.Message}");
                error.WriteLine("run with --help for usage");
                return UsageError;
            }
            return parseResult.Invoke(new InvocationConfiguration { Output = output, Error = error });
        }
    }
}
