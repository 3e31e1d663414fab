namespace Ebpf.Agent.Tests;

/// <summary>Locates the repository (the directory holding Ebpf.sln) from the test binaries.</summary>
internal static class RepoPaths
{
    public static string Root { get; } = Find();

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Ebpf.sln")))
                return dir.FullName;
        }
        throw new InvalidOperationException("Ebpf.sln not found above " + AppContext.BaseDirectory);
    }
}
