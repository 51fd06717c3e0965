using System.CommandLine;
using System.Diagnostics;
using P2PLocal.Rpc.Cli.Output;

namespace P2PLocal.Rpc.Cli.Commands;

/// <summary>
/// <c>call</c> on a function that streams its results (README "Streamed results"): each item on a line of its own as it
/// arrives, until the producer ends the stream, <c>--max-items</c>, or Ctrl+C. Leaving early disposes the enumerator,
/// which cancels the producer on the peer.
/// </summary>
internal static class StreamCall
{
    public const string Item = "item";
    public const string End = "end";

    /// <summary><c>--max-items</c>: leave a stream after this many items.</summary>
    public static Option<long?> MaxItemsOption() =>
        CountOption.Create("--max-items", "For a function that streams: stop after this many items; the peer's producer is cancelled.");

    /// <summary>
    /// Whether the peer lists <paramref name="function"/> as streaming (<c>stream&lt;T&gt;</c>); false when it does not
    /// list it (the call then gets the peer's own answer).
    /// </summary>
    public static async Task<bool> IsStreamAsync(Node node, string peer, string function, CancellationToken cancellationToken)
    {
        var functions = await node.GetFunctionsAsync(peer, cancellationToken).ConfigureAwait(false);
        return functions.FirstOrDefault(f => f.Name == function)?.IsStream == true;
    }

    /// <summary>Reads the stream and prints it; see the class remarks for when it ends.</summary>
    /// <returns>
    /// <see cref="ExitCodes.Ok"/> when the stream ended or <c>--max-items</c> were read; <see cref="ExitCodes.Failed"/> when
    /// it failed (after the items that came), as a call does; <see cref="ExitCodes.Interrupted"/> on Ctrl+C.
    /// </returns>
    public static async Task<int> RunAsync(Node node, CommonSettings settings, string peer, string function, Dictionary<string, object?> kwargs,
        long? maxItems, CliConsole console, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        long items = 0;
        var complete = true;
        try
        {
            await foreach (var item in node.RequestStreamAsync(peer, function, kwargs, cancellationToken).ConfigureAwait(false))
            {
                var json = JsonValues.ToJson(item);
                if (settings.Json)
                    console.WriteJson(new StreamItemJson(Schema.Version, Item, items, json), line: true);
                else
                    console.WriteLine(json?.ToJsonString(CliJson.Compact.Options) ?? "null");
                if (++items == maxItems)
                {
                    complete = false;
                    break; // disposing the enumerator cancels the producer
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Ctrl+C: the token cancelled the producer; what came is printed, and the end says it was cut short.
            if (settings.Json)
                WriteEnd(console, settings, peer, function, items, complete: false, null, clock);
            console.Fail($"interrupted after {items} item{(items == 1 ? "" : "s")}; the stream was cancelled.");
            return ExitCodes.Interrupted;
        }
        catch (Exception e) when (CallCommand.IsCallFailure(e, cancellationToken))
        {
            // After the items that came (a producer that threw: RemoteException), as a failed call.
            console.Fail(CallCommand.Describe(e));
            if (settings.Json)
                WriteEnd(console, settings, peer, function, items, complete: false, e, clock);
            return ExitCodes.Failed;
        }

        if (settings.Json)
            WriteEnd(console, settings, peer, function, items, complete, null, clock);
        return ExitCodes.Ok;
    }

    /// <summary>The last JSON line: how many items, whether the producer ended the stream, and the error if it failed.</summary>
    private static void WriteEnd(CliConsole console, CommonSettings settings, string peer, string function, long items, bool complete, Exception? error, Stopwatch clock) =>
        console.WriteJson(new StreamEndJson(Schema.Version, End, PeersCommand.Network(settings), peer, function, error is null, items, complete,
            error is null ? null : CallCommand.ToError(error), clock.Elapsed.TotalMilliseconds), line: true);
}
