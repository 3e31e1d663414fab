using Spectre.Console;

namespace Ebpf.Cli.Output;

/// <summary>Creates the Spectre console a command writes to: colours only for a terminal, a fixed width otherwise.</summary>
public static class CliConsole
{
    public static IAnsiConsole Create(TextWriter writer, bool interactive)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(writer),
            Ansi = interactive ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = interactive ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = interactive ? InteractionSupport.Detect : InteractionSupport.No,
        });
        // Piped output is read by scripts and pasted into tickets: don't wrap it at 80 columns.
        if (!interactive)
            console.Profile.Width = int.TryParse(Environment.GetEnvironmentVariable("COLUMNS"), out int columns) && columns > 40 ? columns : 240;
        return console;
    }
}
