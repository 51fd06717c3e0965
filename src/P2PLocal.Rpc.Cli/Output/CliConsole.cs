using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Spectre.Console;

namespace P2PLocal.Rpc.Cli.Output;

/// <summary>
/// Where a command writes: standard output (tables, or JSON with <c>--json</c>) and standard error (what went wrong).
/// Tests pass string writers; <see cref="ForProcess"/> is the real console.
/// </summary>
internal sealed class CliConsole
{
    private readonly object _gate = new();

    /// <param name="output">Standard output.</param>
    /// <param name="error">Standard error.</param>
    /// <param name="interactive">True on a terminal: live views redraw in place instead of printing one line per change.</param>
    /// <param name="width">The width tables are laid out for.</param>
    public CliConsole(TextWriter output, TextWriter error, bool interactive = false, int width = 250)
    {
        Out = output;
        Error = error;
        Interactive = interactive;
        Ansi = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output),
            Ansi = interactive ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = interactive ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = interactive ? InteractionSupport.Yes : InteractionSupport.No,
        });
        if (!interactive)
            Ansi.Profile.Width = width;
    }

    public TextWriter Out { get; }

    public TextWriter Error { get; }

    public IAnsiConsole Ansi { get; }

    public bool Interactive { get; }

    /// <summary>The process's console; live views only when standard output is a terminal.</summary>
    public static CliConsole ForProcess()
    {
        var redirected = Console.IsOutputRedirected;
        return new CliConsole(Console.Out, Console.Error, interactive: !redirected, width: redirected ? 250 : Math.Max(Console.WindowWidth, 80));
    }

    /// <summary>Writes one JSON document: indented for one-shot commands, one line each for streams (JSON Lines).</summary>
    public void WriteJson<T>(T value, bool line = false)
    {
        var context = line ? CliJson.Compact : CliJson.Indented;
        var text = JsonSerializer.Serialize(value, (JsonTypeInfo<T>)context.GetTypeInfo(typeof(T))!);
        WriteLine(text);
    }

    /// <summary>Writes a line of plain text to standard output.</summary>
    public void WriteLine(string text)
    {
        lock (_gate)
        {
            Out.WriteLine(text);
            Out.Flush();
        }
    }

    /// <summary>Writes <c>error: ...</c> to standard error.</summary>
    public void Fail(string message)
    {
        lock (_gate)
        {
            Error.WriteLine($"error: {message}");
            Error.Flush();
        }
    }
}
