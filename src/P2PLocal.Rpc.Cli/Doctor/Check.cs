namespace P2PLocal.Rpc.Cli.Doctor;

/// <summary>How a doctor check came out.</summary>
internal enum CheckStatus
{
    Ok,
    Warn,
    Fail,
}

/// <summary>One doctor check: a stable id (docs/cli.md), its outcome, what was found, and what to do about it.</summary>
internal sealed record Check(string Id, CheckStatus Status, string Summary, string? Fix = null)
{
    public static Check Ok(string id, string summary) => new(id, CheckStatus.Ok, summary);

    public static Check Warn(string id, string summary, string fix) => new(id, CheckStatus.Warn, summary, fix);

    public static Check Fail(string id, string summary, string fix) => new(id, CheckStatus.Fail, summary, fix);
}

/// <summary>The ids of the checks, as JSON output carries them.</summary>
internal static class CheckIds
{
    public const string Interfaces = "interfaces";
    public const string Bind = "bind";
    public const string OwnBeacon = "own-beacon";
    public const string OthersHeard = "others-heard";
    public const string OtherHosts = "other-hosts";
    public const string OtherProtocols = "other-protocols";
    public const string Legacy = "legacy-nodes";
    public const string Undecodable = "undecodable";
    public const string NameConflicts = "name-conflicts";
    public const string PeerSeen = "peer-seen";
    public const string PeerTcp = "peer-tcp";
    public const string PeerHello = "peer-hello";
    public const string PeerFunctions = "peer-functions";
    public const string PeerRoundTrip = "peer-rtt";
    public const string PeerContracts = "peer-contracts";
}
