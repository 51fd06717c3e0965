using System.CommandLine;
using System.Diagnostics;
using P2PLocal.Rpc.Cli.Output;

namespace P2PLocal.Rpc.Cli.Commands;

/// <summary>
/// <c>p2plocal publish &lt;topic&gt; &lt;value&gt; [--wait-for peer]</c>: one event to every peer that subscribes to the topic
/// (README "Events to every peer"), once a peer is seen; says how many it reached.
/// </summary>
internal static class PublishCommand
{
    /// <summary>How long the counts (and, before publishing, the peer list) must stay unchanged to be complete.</summary>
    private static readonly TimeSpan s_quiet = TimeSpan.FromMilliseconds(500);

    /// <summary>How often the event counts are read while the event is on its way.</summary>
    private static readonly TimeSpan s_poll = TimeSpan.FromMilliseconds(20);

    public static Command Create(CommonOptions common, CliConsole console)
    {
        var topic = new Argument<string>("topic") { Description = $"The topic: 1 to {EventOptions.MaxTopicBytes} UTF-8 bytes." };
        topic.Validators.Add(r => SubscribeCommand.CheckTopics(r, [r.GetValueOrDefault<string>()]));
        var value = new Argument<string>("value")
        {
            Description = "The value: JSON where it parses (5, true, null, [1,2], {\"a\":1}), a string otherwise.",
        };
        var waitFor = new Option<string?>("--wait-for") { Description = "Publish once this peer is seen (by default, once any peer is)." };
        var command = new Command("publish", "Publish one event to every peer that subscribes to the topic, once a peer (or --wait-for) is seen, and say how many peers it reached.")
        {
            topic,
            value,
            waitFor,
        };
        command.SetAction((result, cancellationToken) =>
        {
            var settings = common.Read(result, TimeSpan.FromSeconds(5));
            return CliApp.RunGuardedAsync(console, () =>
                RunAsync(settings, result.GetValue(topic)!, JsonValues.ParseArgument(result.GetValue(value)!), result.GetValue(waitFor), console, cancellationToken));
        });
        return command;
    }

    private static async Task<int> RunAsync(CommonSettings settings, string topic, object? value, string? waitFor, CliConsole console, CancellationToken cancellationToken)
    {
        await using var session = await Session.StartAsync(settings, TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false);
        var clock = Stopwatch.StartNew();
        if (waitFor is not null)
        {
            if (await session.WaitForPeerAsync(waitFor, settings.Wait, cancellationToken).ConfigureAwait(false) is null)
            {
                console.Fail(session.NotSeenMessage(waitFor, settings));
                return ExitCodes.PeerNotSeen;
            }
        }
        else if (!await session.WaitForAnyPeerAsync(settings.Wait, cancellationToken).ConfigureAwait(false))
        {
            console.Fail(Session.NoPeerMessage(settings));
            return ExitCodes.PeerNotSeen;
        }

        // The others answer the tool's hello within milliseconds of the first: publish to all of them, as `peers` lists them.
        var left = settings.Wait - clock.Elapsed;
        await session.SettleAsync(left > TimeSpan.Zero ? left : TimeSpan.Zero, s_quiet, cancellationToken).ConfigureAwait(false);
        var peers = session.Node.Peers.Where(p => !p.IsLegacy).OrderBy(p => p.Name, StringComparer.Ordinal).ToList();

        // A peer sends its topics right after its hello (PROTOCOL.md, "Events"): once a call on the connection is answered,
        // the node knows whether the peer subscribes, so the event goes out at once and the counts below settle in a
        // round trip instead of a connect. A peer that cannot be reached is counted as a drop when the event is sent.
        await Task.WhenAll(peers.Select(p => ConnectAsync(session.Node, p.Name, cancellationToken))).ConfigureAwait(false);

        var before = session.Node.GetEventStatistics();
        clock.Restart();
        try
        {
            await session.Node.PublishAsync(topic, value, cancellationToken).ConfigureAwait(false);
        }
        catch (P2PException e)
        {
            console.Fail(CallCommand.Describe(e));
            return ExitCodes.Failed;
        }

        var (reached, dropped) = await CountAsync(session.Node, before, peers.Count, cancellationToken).ConfigureAwait(false);
        var names = peers.Select(p => p.Name).ToList();
        if (settings.Json)
            console.WriteJson(new PublishJson(Schema.Version, PeersCommand.Network(settings), topic, JsonValues.ToJson(value), reached > 0, names, reached, dropped, clock.Elapsed.TotalMilliseconds));
        else
            console.WriteLine($"topic '{topic}': reached {reached} peer{(reached == 1 ? "" : "s")} (of {names.Count} seen: {string.Join(", ", names)}){(dropped > 0 ? $"; dropped for {dropped}" : "")}.");

        if (dropped > 0)
            console.Fail($"the event was dropped for {dropped} peer{(dropped == 1 ? "" : "s")}: the connection could not be opened or was lost (run `p2plocal doctor <peer>`).");
        if (reached > 0)
            return ExitCodes.Ok;
        if (dropped == 0)
            console.Fail($"no peer subscribes to topic '{topic}' ({names.Count} seen), so nothing was sent. Check the topic's spelling, and that the receiving node subscribes to it (Node.Subscribe, or `p2plocal subscribe {topic}`).");
        return ExitCodes.Failed;
    }

    private static async Task ConnectAsync(Node node, string peer, CancellationToken cancellationToken)
    {
        try
        {
            await node.GetFunctionsAsync(peer, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (CallCommand.IsCallFailure(e, cancellationToken))
        {
            // Reported as a drop when the event is sent.
        }
    }

    /// <summary>
    /// Waits until the event is accounted for (sent or dropped) at every peer, or the counts stay unchanged for
    /// <see cref="s_quiet"/>: a peer that does not subscribe is sent nothing and counted nowhere.
    /// </summary>
    private static async Task<(long Reached, long Dropped)> CountAsync(Node node, EventStatistics before, int peers, CancellationToken cancellationToken)
    {
        var last = (-1L, -1L);
        var quiet = Stopwatch.StartNew();
        while (true)
        {
            var now = node.GetEventStatistics();
            var counts = (now.Sent - before.Sent, now.DroppedBySender - before.DroppedBySender);
            if (counts.Item1 + counts.Item2 >= peers)
                return counts;
            if (counts != last)
            {
                last = counts;
                quiet.Restart();
            }
            else if (quiet.Elapsed >= s_quiet)
            {
                return counts;
            }

            await Task.Delay(s_poll, cancellationToken).ConfigureAwait(false);
        }
    }
}
