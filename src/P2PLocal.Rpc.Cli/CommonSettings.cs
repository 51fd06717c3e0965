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
    /// <summary><c>--network-key-file</c>, <c>--key-file</c> and <c>--trust</c> (issue 10), read when the node starts.</summary>
    public (string? NetworkKeyFile, string? KeyFile, string[] Trust) SecurityOptions { get; init; } = (null, null, []);

    /// <summary>The tool node's security: open unless <c>--network-key-file</c> or <c>--key-file</c> was given.</summary>
    /// <exception cref="SecurityOptionException">A key file cannot be read or holds no usable key, or a trusted id is not an id.</exception>
    public NodeSecurity CreateSecurity()
    {
        try
        {
            return SecurityOptions.NetworkKeyFile is { } keyFile ? NodeSecurity.SharedKey(File.ReadAllText(keyFile).Trim())
                : SecurityOptions.KeyFile is { } identityFile ? NodeSecurity.Pinned(NodeIdentity.LoadOrCreate(identityFile), SecurityOptions.Trust)
                : NodeSecurity.Open;
        }
        catch (Exception e) when (e is ArgumentException or IOException or UnauthorizedAccessException)
        {
            throw new SecurityOptionException(e.Message, e);
        }
    }

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

    // Secure mode (issue 10). The network key is read from a file, never taken on the command line (process lists show it).
    public Option<string?> NetworkKeyFile { get; } = new("--network-key-file")
    {
        Description = "Join a secure group: a file holding the network key (NodeSecurity.SharedKey).",
        Recursive = true,
    };

    public Option<string?> KeyFile { get; } = new("--key-file")
    {
        Description = "Pinned mode: this tool's identity (PEM, created 0600 if missing); use with --trust.",
        Recursive = true,
    };

    public Option<string[]> Trust { get; } = new("--trust")
    {
        Description = "Pinned mode: the node ids this tool trusts (with --key-file).",
        Recursive = true,
        AllowMultipleArgumentsPerToken = true,
    };

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

    public IEnumerable<Option> All => [Port, Protocol, Scope, Json, Wait, NetworkKeyFile, KeyFile, Trust];

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
            waitGiven)
        {
            SecurityOptions = (result.GetValue(NetworkKeyFile), result.GetValue(KeyFile), result.GetValue(Trust) ?? []),
        };
    }

    private static void Check(OptionResult result, bool valid, string error)
    {
        if (!valid)
            result.AddError(error);
    }
}

/// <summary>Options that several commands declare alike.</summary>
internal static class CountOption
{
    /// <summary>An optional count of at least 1 (<c>--max-items</c>, <c>--count</c>).</summary>
    public static Option<long?> Create(string name, string description)
    {
        var option = new Option<long?>(name) { Description = description };
        option.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<long?>() is not > 0)
                r.AddError($"{name} must be at least 1.");
        });
        return option;
    }
}

/// <summary>A secure-mode option (a key file, a network key, a trusted id) cannot be used; the message says why.</summary>
internal sealed class SecurityOptionException(string message, Exception inner) : Exception(message, inner);
