using System.CommandLine;
using System.CommandLine.Parsing;

namespace P2PLocal.Rpc.Cli;

/// <summary>The options every command takes, as parsed.</summary>
/// <param name="Port">The discovery port.</param>
/// <param name="Protocol">The discovery protocol name.</param>
/// <param name="Scope">Where to look: the LAN (the default for users) or this host only.</param>
/// <param name="Json">Write the machine-readable schema of docs/cli.md instead of tables.</param>
/// <param name="Wait">How long to listen at most.</param>
/// <param name="WaitGiven">True when <c>--wait</c> was on the command line (watch and listen then stop after it).</param>
internal sealed record CommonSettings(int Port, string Protocol, DiscoveryScope Scope, bool Json, TimeSpan Wait, bool WaitGiven)
{
    /// <summary>The scope as written on the command line and in JSON output.</summary>
    public string ScopeName => Scope == DiscoveryScope.Loopback ? "loopback" : "lan";
}

/// <summary>
/// The options on every command (<c>--port --protocol --scope --json --wait</c>), declared once on the root command as
/// recursive options.
/// </summary>
internal sealed class CommonOptions
{
    public Option<int> Port { get; } = new("--port")
    {
        Description = "The UDP discovery port.",
        DefaultValueFactory = _ => NodeOptions.DefaultDiscoveryPort,
        Recursive = true,
    };

    public Option<string> Protocol { get; } = new("--protocol")
    {
        Description = "The discovery protocol name: nodes of another protocol are invisible.",
        DefaultValueFactory = _ => "itecnet",
        Recursive = true,
    };

    public Option<string> Scope { get; } = new("--scope")
    {
        Description = "lan: every interface's broadcast address; loopback: this host only (127.255.255.255).",
        DefaultValueFactory = _ => "lan",
        Recursive = true,
    };

    public Option<bool> Json { get; } = new("--json")
    {
        Description = "Write JSON (schema in docs/cli.md) instead of tables.",
        Recursive = true,
    };

    public Option<double> Wait { get; } = new("--wait")
    {
        Description = "How long to listen at most, in seconds.",
        Recursive = true,
    };

    // Secure mode (issue 10) adds its options here, e.g. --key-file <path> and --network-key <key>: declare them
    // Recursive like the others, carry them in CommonSettings, and pass them to NodeOptions in Session.StartAsync.

    public CommonOptions()
    {
        Port.Validators.Add(r => Check(r, r.GetValueOrDefault<int>() is >= 1 and <= 65535, "--port must be 1 to 65535."));
        Scope.AcceptOnlyFromAmong("lan", "loopback");
        Protocol.Validators.Add(r =>
        {
            var value = r.GetValueOrDefault<string>();
            Check(r, !string.IsNullOrWhiteSpace(value) && !value.Contains('|', StringComparison.Ordinal), "--protocol must be non-empty and must not contain '|'.");
        });
        Wait.Validators.Add(r =>
        {
            var value = r.GetValueOrDefault<double>();
            Check(r, value is > 0 and <= 86_400, "--wait must be more than 0 and at most 86400 seconds.");
        });
    }

    public IEnumerable<Option> All => [Port, Protocol, Scope, Json, Wait];

    /// <summary>Reads the common options; <paramref name="defaultWait"/> is the command's own default for <c>--wait</c>.</summary>
    public CommonSettings Read(ParseResult result, TimeSpan defaultWait)
    {
        var waitGiven = result.GetResult(Wait) is { Implicit: false };
        return new CommonSettings(
            result.GetValue(Port),
            result.GetValue(Protocol)!,
            result.GetValue(Scope) == "loopback" ? DiscoveryScope.Loopback : DiscoveryScope.Lan,
            result.GetValue(Json),
            waitGiven ? TimeSpan.FromSeconds(result.GetValue(Wait)) : defaultWait,
            waitGiven);
    }

    private static void Check(OptionResult result, bool valid, string error)
    {
        if (!valid)
            result.AddError(error);
    }
}
