using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using P2PLocal.Rpc.Cli.Output;

namespace P2PLocal.Rpc.Cli.Commands;

/// <summary>
/// <c>p2plocal call &lt;peer&gt; &lt;function&gt; [key=value ...] [--kwargs JSON] [--max-items N]</c>: one dynamic call, result
/// as JSON; a function that streams (<c>stream&lt;T&gt;</c> in <c>$methods</c>) prints each item as it arrives (<see cref="StreamCall"/>).
/// </summary>
internal static class CallCommand
{
    public static Command Create(CommonOptions common, CliConsole console)
    {
        var peer = new Argument<string>("peer") { Description = "The peer's name." };
        var function = new Argument<string>("function") { Description = "The function's name." };
        var pairs = new Argument<string[]>("kwargs")
        {
            Description = "key=value pairs; a value is read as JSON where it can be (5, true, null, [1,2], {\"a\":1}) and as a string otherwise.",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var json = new Option<string>("--kwargs") { Description = "The kwargs as one JSON object, e.g. '{\"name\": \"Ann\"}'." };
        var timeout = TimeoutOption();
        var maxItems = StreamCall.MaxItemsOption();
        var command = new Command("call", "Call a function on a peer and print its result as JSON. A function that streams (its result is stream<...> in `methods`) prints each item on a line of its own as it arrives, until the stream ends, --max-items or Ctrl+C.")
        {
            peer,
            function,
            pairs,
            json,
            timeout,
            maxItems,
        };
        command.SetAction((result, cancellationToken) =>
        {
            var settings = common.Read(result, TimeSpan.FromSeconds(5));
            if (!TryReadKwargs(result.GetValue(json), result.GetValue(pairs) ?? [], out var kwargs, out var error))
            {
                console.Fail(error);
                return Task.FromResult(ExitCodes.Usage);
            }

            return CliApp.RunGuardedAsync(console, () =>
                RunAsync(settings, result.GetValue(peer)!, result.GetValue(function)!, kwargs, Timeout(result, timeout), result.GetValue(maxItems), console, cancellationToken));
        });
        return command;
    }

    /// <summary><c>--timeout</c>, shared with <c>methods</c>: the request timeout of the tool's node.</summary>
    internal static Option<double> TimeoutOption()
    {
        var option = new Option<double>("--timeout")
        {
            Description = "How long the call may take, in seconds, once connected (connecting takes at most 5 s more); the remote handler is cancelled then.",
            DefaultValueFactory = _ => 30,
        };
        option.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<double>() is not (> 0 and <= 86_400))
                r.AddError("--timeout must be more than 0 and at most 86400 seconds.");
        });
        return option;
    }

    internal static TimeSpan Timeout(ParseResult result, Option<double> option) => TimeSpan.FromSeconds(result.GetValue(option));

    /// <summary>Merges <c>--kwargs</c> and <c>key=value</c> pairs; a key given twice is an error.</summary>
    internal static bool TryReadKwargs(string? json, IEnumerable<string> pairs, out Dictionary<string, object?> kwargs, out string error)
    {
        error = "";
        try
        {
            kwargs = json is null ? new Dictionary<string, object?>(StringComparer.Ordinal) : JsonValues.ParseObject(json);
        }
        catch (JsonException e)
        {
            kwargs = [];
            error = $"--kwargs is not a JSON object: {e.Message}";
            return false;
        }

        foreach (var pair in pairs)
        {
            var equals = pair.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0)
            {
                error = $"'{pair}' is not key=value: write name=Ann, count=5, tags='[\"a\",\"b\"]', or use --kwargs '{{...}}'.";
                return false;
            }

            var key = pair[..equals];
            if (!kwargs.TryAdd(key, JsonValues.ParseArgument(pair[(equals + 1)..])))
            {
                error = $"kwarg '{key}' is given twice.";
                return false;
            }
        }

        return true;
    }

    private static async Task<int> RunAsync(CommonSettings settings, string name, string function, Dictionary<string, object?> kwargs,
        TimeSpan timeout, long? maxItems, CliConsole console, CancellationToken cancellationToken)
    {
        await using var session = await Session.StartAsync(settings, timeout, cancellationToken).ConfigureAwait(false);
        if (await session.WaitForPeerAsync(name, settings.Wait, cancellationToken).ConfigureAwait(false) is not { } peer)
        {
            console.Fail(session.NotSeenMessage(name, settings));
            return ExitCodes.PeerNotSeen;
        }

        var network = PeersCommand.Network(settings);
        var clock = Stopwatch.StartNew();
        try
        {
            // A legacy (XML-RPC) peer cannot stream, and may not answer introspection: call it as before.
            if (!peer.IsLegacy && await StreamCall.IsStreamAsync(session.Node, name, function, cancellationToken).ConfigureAwait(false))
                return await StreamCall.RunAsync(session.Node, settings, name, function, kwargs, maxItems, console, cancellationToken).ConfigureAwait(false);
            var result = await session.Node.RequestAsync(name, function, kwargs, cancellationToken).ConfigureAwait(false);
            var json = JsonValues.ToJson(result);
            if (settings.Json)
                console.WriteJson(new CallJson(Schema.Version, network, name, function, true, json, null, clock.Elapsed.TotalMilliseconds));
            else
                console.WriteLine(json?.ToJsonString(CliJson.Indented.Options) ?? "null");
            return ExitCodes.Ok;
        }
        catch (Exception e) when (IsCallFailure(e, cancellationToken))
        {
            console.Fail(Describe(e));
            if (settings.Json)
                console.WriteJson(new CallJson(Schema.Version, network, name, function, false, null, ToError(e), clock.Elapsed.TotalMilliseconds));
            return ExitCodes.Failed;
        }
    }

    /// <summary>The failures a call can end in (everything but the user's own Ctrl+C).</summary>
    internal static bool IsCallFailure(Exception e, CancellationToken cancellationToken) =>
        e is P2PException or TimeoutException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested);

    /// <summary>The exception type and message, as stderr shows them.</summary>
    internal static string Describe(Exception e) => $"{e.GetType().Name}: {e.Message}";

    internal static ErrorJson ToError(Exception e) => new(e.GetType().Name, e.Message, (e as RemoteException)?.RemoteType);
}
