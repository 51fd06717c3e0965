namespace P2PLocal.Rpc.Cli;

/// <summary>The tool's exit codes (docs/cli.md); stable, scripts test them.</summary>
internal static class ExitCodes
{
    /// <summary>Done; for <c>doctor</c>, no check failed (warnings allowed).</summary>
    public const int Ok = 0;

    /// <summary>The call, the listing or a doctor check failed; standard error says why.</summary>
    public const int Failed = 1;

    /// <summary>The command line is wrong (unknown option, bad value, kwargs that are not JSON).</summary>
    public const int Usage = 2;

    /// <summary>The named peer was not seen within <c>--wait</c>.</summary>
    public const int PeerNotSeen = 3;

    /// <summary>Interrupted (Ctrl+C) before the answer was complete.</summary>
    public const int Interrupted = 130;
}
