using System.CommandLine;
using P2PLocal.Rpc.Cli.Output;
using Spectre.Console;

namespace P2PLocal.Rpc.Cli.Commands;

/// <summary><c>p2plocal peers [--watch]</c>: the nodes of this protocol on the port.</summary>
internal static class PeersCommand
{
    /// <summary>How long no new answer must come before the list is complete.</summary>
    private static readonly TimeSpan s_quiet = TimeSpan.FromMilliseconds(500);

    /// <summary>How often the watch view refreshes its "last seen" column and looks for expired peers.</summary>
    private static readonly TimeSpan s_refresh = TimeSpan.FromMilliseconds(250);

    public static Command Create(CommonOptions common, CliConsole console)
    {
        var watch = new Option<bool>("--watch") { Description = "Keep a live table, joins and leaves marked, until Ctrl+C (or --wait)." };
        var command = new Command("peers", "List the nodes on the discovery port: name, endpoint, instance, library version, legacy, last seen.")
        {
            watch,
        };
        command.SetAction((result, cancellationToken) =>
        {
            var settings = common.Read(result, TimeSpan.FromSeconds(2));
            return CliApp.RunGuardedAsync(console, () => result.GetValue(watch)
                ? WatchAsync(settings, console, cancellationToken)
                : ListAsync(settings, console, cancellationToken));
        });
        return command;
    }

    private static async Task<int> ListAsync(CommonSettings settings, CliConsole console, CancellationToken cancellationToken)
    {
        await using var session = await Session.StartAsync(settings, TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false);
        await session.SettleAsync(settings.Wait, s_quiet, cancellationToken).ConfigureAwait(false);
        var peers = Snapshot(session);
        if (settings.Json)
        {
            console.WriteJson(new PeersJson(Schema.Version, Network(settings), peers));
            return ExitCodes.Ok;
        }

        if (peers.Count == 0)
        {
            console.WriteLine($"No peers heard in {Seconds(settings.Wait)} on port {settings.Port} (protocol {settings.Protocol}, scope {settings.ScopeName}). Run `p2plocal doctor` to find out why.");
            return ExitCodes.Ok;
        }

        var now = DateTimeOffset.UtcNow;
        console.Ansi.Write(Table(peers.Select(p => ("", p)), now, marks: false));
        return ExitCodes.Ok;
    }

    private static async Task<int> WatchAsync(CommonSettings settings, CliConsole console, CancellationToken cancellationToken)
    {
        await using var session = await Session.StartAsync(settings, TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (settings.WaitGiven)
            stop.CancelAfter(settings.Wait);

        // A join or leave wakes the loop at once; the timer only refreshes ages and catches expiries.
        var changed = new SemaphoreSlim(0);
        void Wake(object? sender, PeerInfo peer) => changed.Release();
        session.Node.Peers.Joined += Wake;
        session.Node.Peers.Left += Wake;
        try
        {
            var watch = new PeerWatch();
            var live = console.Interactive && !settings.Json;
            async Task Loop(Action<DateTimeOffset> refresh)
            {
                while (!stop.IsCancellationRequested)
                {
                    var now = DateTimeOffset.UtcNow;
                    foreach (var (change, peer) in watch.Update(Snapshot(session), now))
                    {
                        if (settings.Json)
                            console.WriteJson(new PeerEventJson(Schema.Version, change, now, peer), line: true);
                        else if (!live)
                            console.WriteLine($"{now:HH:mm:ss.fff} {(change == PeerWatch.Joined ? "+" : "-")} {peer.Name} {peer.Endpoint} instance {peer.Instance}{(peer.Legacy ? " (legacy)" : "")}");
                    }

                    refresh(now);
                    try
                    {
                        await changed.WaitAsync(s_refresh, stop.Token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException)
                    {
                        break;
                    }
                }
            }

            if (live)
            {
                await console.Ansi.Live(new Table()).StartAsync(ctx => Loop(now =>
                {
                    ctx.UpdateTarget(Table(watch.Rows(now), now, marks: true));
                    ctx.Refresh();
                })).ConfigureAwait(false);
            }
            else
            {
                await Loop(_ => { }).ConfigureAwait(false);
            }
        }
        finally
        {
            session.Node.Peers.Joined -= Wake;
            session.Node.Peers.Left -= Wake;
            changed.Dispose();
        }

        return ExitCodes.Ok;
    }

    /// <summary>The peers the tool's node sees, each with the library version its latest beacon carried.</summary>
    internal static List<PeerJson> Snapshot(Session session)
    {
        var versions = new Dictionary<string, string?>();
        foreach (var datagram in session.Probe.Heard)
        {
            if (datagram.Beacon is { IsLegacy: false } beacon)
                versions[beacon.InstanceId] = beacon.LibraryVersion;
        }

        return [.. session.Node.Peers
            .OrderBy(p => p.Name, StringComparer.Ordinal).ThenBy(p => p.InstanceId, StringComparer.Ordinal)
            .Select(p => ToJson(p, versions.GetValueOrDefault(p.InstanceId)))];
    }

    internal static PeerJson ToJson(PeerInfo peer, string? libraryVersion) => new(
        peer.Name,
        peer.EndPoint.ToString(),
        peer.InstanceId,
        libraryVersion,
        peer.IsLegacy,
        peer.LastSeen,
        peer.IsLegacy ? null : peer.StartedAt,
        peer.IsLegacy ? null : (long)peer.AdvertiseInterval.TotalMilliseconds,
        PeerId: peer.PeerId); // the verified id of a secure peer (issue 10); null for open peers


    internal static NetworkJson Network(CommonSettings settings) => new(settings.Port, settings.Protocol, settings.ScopeName);

    private static Table Table(IEnumerable<(string Mark, PeerJson Peer)> rows, DateTimeOffset now, bool marks)
    {
        var table = new Table().Border(TableBorder.Simple);
        if (marks)
            table.AddColumn("");
        table.AddColumns("name", "endpoint", "instance", "version", "legacy", "last seen");
        var list = rows.ToList();
        var secure = list.Any(r => r.Peer.PeerId is not null); // the peer id column only where a secure peer is listed
        if (secure)
            table.AddColumn("peer id");
        foreach (var (mark, peer) in list)
        {
            List<string> cells = marks ? [mark switch { PeerWatch.Joined => "[green]+[/]", PeerWatch.Left => "[red]-[/]", _ => "" }] : [];
            table.AddRow([.. cells,
                Markup.Escape(peer.Name), Markup.Escape(peer.Endpoint), Markup.Escape(peer.Instance.Length == 0 ? "-" : peer.Instance),
                Markup.Escape(peer.LibraryVersion ?? "-"), peer.Legacy ? "yes" : "no",
                mark == PeerWatch.Left ? "left" : Ago(now - peer.LastSeen), .. (secure ? [Markup.Escape(peer.PeerId ?? "-")] : Array.Empty<string>())]);
        }

        return table;
    }

    internal static string Ago(TimeSpan age) => age < TimeSpan.FromSeconds(1)
        ? $"{Math.Max(0, (int)age.TotalMilliseconds)} ms ago"
        : $"{age.TotalSeconds:0.0} s ago";

    internal static string Seconds(TimeSpan span) => $"{span.TotalSeconds:0.###} s";
}
