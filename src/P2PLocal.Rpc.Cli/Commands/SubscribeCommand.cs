using System.CommandLine;
using System.CommandLine.Parsing;
using System.Text;
using P2PLocal.Rpc.Cli.Output;

namespace P2PLocal.Rpc.Cli.Commands;

/// <summary>
/// <c>p2plocal subscribe &lt;topic&gt;... [--count N]</c>: the events peers publish on the topics (README "Events to every
/// peer"), as they arrive, until Ctrl+C, <c>--count</c> or <c>--wait</c>.
/// </summary>
internal static class SubscribeCommand
{
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
        var queue = new PrintQueue<EventJson>();
        List<IDisposable> subscriptions = [];
        // Subscribed before the node starts: no publisher ever sees the tool without its topics.
        await using var session = await Session.StartAsync(settings, TimeSpan.FromSeconds(5), node =>
        {
            foreach (var topic in topics)
            {
                subscriptions.Add(node.Subscribe<object?>(topic, (value, sender) =>
                    queue.Add(new EventJson(Schema.Version, DateTimeOffset.UtcNow, topic, sender.Name, sender.InstanceId, sender.PeerId, JsonValues.ToJson(value)))));
            }
        }, cancellationToken).ConfigureAwait(false);
        if (!settings.Json)
        {
            var until = (count is null ? "" : $" until {count} event{(count == 1 ? "" : "s")}") + (settings.WaitGiven ? $" for at most {settings.Wait.TotalSeconds:0.###} s" : "; Ctrl+C stops");
            console.WriteLine($"Subscribed to {string.Join(", ", topics)} as {session.Node.Name} on UDP port {settings.Port} (scope {settings.ScopeName}, protocol {settings.Protocol}){until}.");
        }

        long printed;
        try
        {
            printed = await queue.PrintAsync(settings, received =>
            {
                if (settings.Json)
                    console.WriteJson(received, line: true);
                else
                    console.WriteLine(Describe(received));
            }, count, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            foreach (var subscription in subscriptions)
                subscription.Dispose();
        }

        queue.ReportDropped(console, "events");
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
