using System.CommandLine;
using System.Text;
using P2PLocal.Rpc.Cli.Output;

namespace P2PLocal.Rpc.Cli.Commands;

/// <summary><c>p2plocal listen</c>: every datagram heard on the discovery port, decoded. It never sends.</summary>
internal static class ListenCommand
{
    public static Command Create(CommonOptions common, CliConsole console)
    {
        var command = new Command("listen", "Print every datagram heard on the discovery port, decoded (hello, alive, bye; other protocols, legacy, undecodable), until Ctrl+C (or --wait). Sends nothing.");
        command.SetAction((result, cancellationToken) =>
        {
            var settings = common.Read(result, Timeout.InfiniteTimeSpan);
            return CliApp.RunGuardedAsync(console, () => RunAsync(settings, console, cancellationToken));
        });
        return command;
    }

    private static async Task<int> RunAsync(CommonSettings settings, CliConsole console, CancellationToken cancellationToken)
    {
        var queue = new PrintQueue<HeardDatagram>();
        // Listen prints as it goes: it keeps nothing, so a long run on a busy port does not grow.
        await using var probe = DiscoveryProbe.Open(settings.Port, settings.Scope, maxKept: 0);
        probe.Received += queue.Add;
        if (!settings.Json)
            console.WriteLine($"Listening on UDP port {settings.Port} (scope {settings.ScopeName}; our protocol {settings.Protocol}){(settings.WaitGiven ? $" for {settings.Wait.TotalSeconds:0.###} s" : "; Ctrl+C stops")}.");

        await queue.PrintAsync(settings, datagram =>
        {
            if (settings.Json)
                console.WriteJson(ToJson(datagram, settings.Protocol), line: true);
            else
                console.WriteLine(Describe(datagram, settings.Protocol));
        }, count: null, cancellationToken).ConfigureAwait(false);
        queue.ReportDropped(console, "datagrams");
        return ExitCodes.Ok;
    }

    /// <summary>What the datagram is: a beacon kind, <c>legacy</c>, or <c>undecodable</c>.</summary>
    internal static string Decoded(HeardDatagram datagram) => datagram.Beacon switch
    {
        null => "undecodable",
        { IsLegacy: true } => "legacy",
        _ => "beacon",
    };

    internal static DatagramJson ToJson(HeardDatagram datagram, string protocol)
    {
        var beacon = datagram.Beacon;
        var text = TryText(datagram.Bytes);
        return new DatagramJson(
            Schema.Version,
            datagram.Time,
            datagram.Source.ToString(),
            datagram.Length,
            Decoded(datagram),
            beacon is null ? null : beacon.Kind.ToString().ToLowerInvariant(),
            beacon?.Protocol,
            beacon is null ? null : beacon.Protocol == protocol,
            beacon?.Name,
            beacon?.EndPoint.ToString(),
            beacon is null or { IsLegacy: true } ? null : beacon.InstanceId,
            beacon is null or { IsLegacy: true } ? null : (long)beacon.AdvertiseInterval.TotalMilliseconds,
            beacon is null or { IsLegacy: true } ? null : beacon.StartedAt,
            beacon?.LibraryVersion,
            text,
            text is null ? Convert.ToBase64String(datagram.Bytes) : null);
    }

    internal static string Describe(HeardDatagram datagram, string protocol)
    {
        var head = $"{datagram.Time.ToLocalTime():HH:mm:ss.fff}  {datagram.Source,-21}";
        if (datagram.Beacon is not { } beacon)
        {
            var text = TryText(datagram.Bytes);
            var shown = text is null ? $"0x{Convert.ToHexString(datagram.Bytes.AsSpan(0, Math.Min(32, datagram.Bytes.Length)))}" : Quote(text);
            return $"{head}  undecodable  {datagram.Length} bytes  {shown}";
        }

        var other = beacon.Protocol == protocol ? "" : $"  (other protocol {beacon.Protocol})";
        if (beacon.IsLegacy)
            return $"{head}  legacy  {beacon.Protocol}  {beacon.Name}  {beacon.EndPoint}  (Python p2p-local: speaks XML-RPC){other}";
        return $"{head}  {beacon.Kind.ToString().ToLowerInvariant(),-5}  {beacon.Protocol}  {beacon.Name}  {beacon.EndPoint}  " +
            $"instance {beacon.InstanceId}  every {beacon.AdvertiseInterval.TotalMilliseconds:0} ms  version {beacon.LibraryVersion ?? "-"}{other}";
    }

    private static readonly UTF8Encoding s_strictUtf8 = new(false, throwOnInvalidBytes: true);

    private static string? TryText(byte[] bytes)
    {
        try
        {
            return s_strictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            return null;
        }
    }

    private static string Quote(string text)
    {
        var cut = text.Length > 80 ? text[..80] + "..." : text;
        var builder = new StringBuilder("\"");
        foreach (var c in cut)
            builder.Append(char.IsControl(c) ? $"\\u{(int)c:x4}" : c.ToString());
        return builder.Append('"').ToString();
    }
}
