using System.CommandLine;
using System.CommandLine.Parsing;
using System.Text;
using System.Threading.Channels;
using P2PLocal.Rpc.Cli.Output;

namespace P2PLocal.Rpc.Cli.Commands;

/// <summary>
/// <c>p2plocal subscribe &lt;topic&gt;... [--count N]</c>: the events peers publish on the topics (README "Events to every
/// peer"), as they arrive, until Ctrl+C, <c>--count</c> or <c>--wait</c>.
/// </summary>
internal static class SubscribeCommand
{
    /// <summary>Events waiting to be printed; a flood past it drops the oldest and says so (as <c>listen</c>).</summary>
    private const int MaxQueued = 10_000;

    public static Command Create(CommonOptions common, CliConsole console)
    {
        var topics = new Argument<string[]>("topic")
        {
            Description = $"The topics: each 1 to {EventOptions.MaxTopicBytes} UTF-8 bytes.",
            Arity = ArgumentArity.OneOrMore,
        };
        topics.Validators.Add(r => CheckTopics(r, r.GetValueOrDefault<string[]>() ?? []));
        var count = CountOption.Create("--count", "Stop after this many events.");
        var command = new Command("subscribe", "Print the events peers publish on the topics as they arrive (time, sender and its verified id when secure, topic, value as JSON), until Ctrl+C, --count or --wait.")
        {
            topics,
            count,
        };
        command.SetAction((result, cancellationToken) =>
        {
            var settings = common.Read(result, Timeout.InfiniteTimeSpan);
            return CliApp.RunGuardedAsync(console, () =>
                RunAsync(settings, [.. result.GetValue(topics)!.Distinct(StringComparer.Ordinal)], result.GetValue(count), console, cancellationToken));
        });
        return command;
    }

    /// <summary>Adds an error for a topic the library would refuse (empty, too long), or for more topics than a node may have.</summary>
    internal static void CheckTopics(SymbolResult result, IReadOnlyCollection<string?> topics)
    {
        var most = new EventOptions().MaxTopicsPerPeer;
        if (topics.Count > most)
            result.AddError($"at most {most} topics (Events.MaxTopicsPerPeer).");
        foreach (var topic in topics)
        {
            var bytes = Encoding.UTF8.GetByteCount(topic ?? "");
            if (bytes is < 1 or > EventOptions.MaxTopicBytes)
                result.AddError($"the topic '{topic}' is {bytes} UTF-8 bytes; a topic is 1 to {EventOptions.MaxTopicBytes}.");
        }
    }

    private static async Task<int> RunAsync(CommonSettings settings, string[] topics, long? count, CliConsole console, CancellationToken cancellationToken)
    {
        long dropped = 0;
        var queue = Channel.CreateBounded<EventJson>(new BoundedChannelOptions(MaxQueued) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true },
            _ => Interlocked.Increment(ref dropped));
        List<IDisposable> subscriptions = [];
        // Subscribed before the node starts: no publisher ever sees the tool without its topics.
        await using var session = await Session.StartAsync(settings, TimeSpan.FromSeconds(5), node =>
        {
            foreach (var topic in topics)
            {
                subscriptions.Add(node.Subscribe<object?>(topic, (value, sender) =>
                    queue.Writer.TryWrite(new EventJson(Schema.Version, DateTimeOffset.UtcNow, topic, sender.Name, sender.InstanceId, sender.PeerId, JsonValues.ToJson(value)))));
            }
        }, cancellationToken).ConfigureAwait(false);
        if (!settings.Json)
        {
            var until = (count is null ? "" : $" until {count} event{(count == 1 ? "" : "s")}") + (settings.WaitGiven ? $" for at most {settings.Wait.TotalSeconds:0.###} s" : "; Ctrl+C stops");
            console.WriteLine($"Subscribed to {string.Join(", ", topics)} as {session.Node.Name} on UDP port {settings.Port} (scope {settings.ScopeName}, protocol {settings.Protocol}){until}.");
        }

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (settings.WaitGiven)
            stop.CancelAfter(settings.Wait);
        long printed = 0;
        try
        {
            await foreach (var received in queue.Reader.ReadAllAsync(stop.Token).ConfigureAwait(false))
            {
                if (settings.Json)
                    console.WriteJson(received, line: true);
                else
                    console.WriteLine(Describe(received));
                if (++printed == count)
                    break;
            }
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            foreach (var subscription in subscriptions)
                subscription.Dispose();
        }

        if (Interlocked.Read(ref dropped) > 0)
            console.Fail($"{Interlocked.Read(ref dropped)} events arrived faster than they could be printed and were not shown.");
        var unreadable = session.Node.GetEventStatistics().HandlerFailures;
        if (unreadable > 0)
            console.Fail($"{unreadable} events could not be read as MessagePack values and were not shown.");
        if (printed < count && !cancellationToken.IsCancellationRequested)
        {
            console.Fail($"{printed} of {count} events arrived in {settings.Wait.TotalSeconds:0.###} s (--wait).");
            return ExitCodes.Failed;
        }

        return ExitCodes.Ok;
    }

    internal static string Describe(EventJson received) =>
        $"{received.Time.ToLocalTime():HH:mm:ss.fff}  {received.Sender}{(received.PeerId is null ? "" : $" (id {received.PeerId})")}  {received.Topic}  " +
        $"{received.Value?.ToJsonString(CliJson.Compact.Options) ?? "null"}";
}
