using System.CommandLine;
using System.Text.Json.Nodes;
using P2PLocal.Rpc.Cli.Output;
using P2PLocal.Rpc.Dispatch;
using Spectre.Console;

namespace P2PLocal.Rpc.Cli.Commands;

/// <summary><c>p2plocal methods &lt;peer&gt;</c>: each function of a peer with its kwargs, result type and contract fingerprint.</summary>
internal static class MethodsCommand
{
    public static Command Create(CommonOptions common, CliConsole console)
    {
        var peer = new Argument<string>("peer") { Description = "The peer's name." };
        var timeout = CallCommand.TimeoutOption();
        var command = new Command("methods", "List a peer's functions: kwargs (name, type, optional), result type and contract fingerprint.")
        {
            peer,
            timeout,
        };
        command.SetAction((result, cancellationToken) =>
        {
            var settings = common.Read(result, TimeSpan.FromSeconds(5));
            return CliApp.RunGuardedAsync(console, () => RunAsync(settings, result.GetValue(peer)!, CallCommand.Timeout(result, timeout), console, cancellationToken));
        });
        return command;
    }

    private static async Task<int> RunAsync(CommonSettings settings, string name, TimeSpan timeout, CliConsole console, CancellationToken cancellationToken)
    {
        await using var session = await Session.StartAsync(settings, timeout, cancellationToken).ConfigureAwait(false);
        var peer = await session.WaitForPeerAsync(name, settings.Wait, cancellationToken).ConfigureAwait(false);
        if (peer is null)
        {
            console.Fail(session.NotSeenMessage(name, settings));
            return ExitCodes.PeerNotSeen;
        }

        IReadOnlyList<FunctionDescriptor> functions;
        try
        {
            functions = await session.Node.GetFunctionsAsync(name, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (CallCommand.IsCallFailure(e, cancellationToken))
        {
            console.Fail(CallCommand.Describe(e));
            return ExitCodes.Failed;
        }

        var rows = functions.Select(ToJson).ToList();
        if (settings.Json)
        {
            console.WriteJson(new MethodsJson(Schema.Version, PeersCommand.Network(settings), peer.Name, peer.EndPoint.ToString(), peer.InstanceId, rows));
            return ExitCodes.Ok;
        }

        console.WriteLine($"{peer.Name} at {peer.EndPoint} (instance {peer.InstanceId}): {rows.Count} function{(rows.Count == 1 ? "" : "s")}");
        var table = new Table().Border(TableBorder.Simple).AddColumns("function", "kwargs", "returns", "contract", "fingerprint");
        foreach (var function in rows)
        {
            var kwargs = function.Dynamic
                ? "(any: dynamic)"
                : string.Join(", ", function.Kwargs.Select(k => $"{k.Name}: {k.Type}{(k.Optional ? " = " + (k.Default?.ToJsonString() ?? "default") : "")}"));
            table.AddRow(Markup.Escape(function.Name), Markup.Escape(kwargs), Markup.Escape(function.Returns), Markup.Escape(function.Contract ?? "-"), Markup.Escape(function.Fingerprint ?? "-"));
        }

        console.Ansi.Write(table);
        // The [MessagePackObject] types the functions reach, once each: how to build them by hand (PROTOCOL.md, "Object values").
        foreach (var type in rows.SelectMany(f => f.Types ?? []).DistinctBy(t => t.Name).OrderBy(t => t.Name, StringComparer.Ordinal))
        {
            var members = type.Members.Select(m => $"{m.Key.ToJsonString()} {m.Name}: {m.Type}{(m.Required ? " (required)" : "")}");
            console.WriteLine($"{type.Name} is {(type.Layout == "map" ? "a map" : "an array")}: {string.Join(", ", members)}");
        }

        return ExitCodes.Ok;
    }

    /// <summary>
    /// A function as JSON, with its contract's name and fingerprint when a generated service serves it (null for dynamic
    /// ones and for older nodes, whose <c>$methods</c> has no <c>contract</c> key), its kwargs' known defaults, and the
    /// object types it reaches (empty for older nodes).
    /// </summary>
    internal static FunctionJson ToJson(FunctionDescriptor function) => new(
        function.Name,
        [.. function.Parameters.Select(p => new ParameterJson(p.Name, p.Type, p.IsOptional, JsonValues.ToJson(p.DefaultValue)))],
        function.ReturnType,
        function.Fingerprint,
        Dynamic: function.Fingerprint is null && function.Parameters.Count == 0,
        Contract: function.Contract,
        Types: [.. function.ObjectTypes.Select(t => new ObjectTypeJson(t.Name, t.IsMap ? "map" : "array",
            [.. t.Members.Select(m => new MemberJson(m.Name, m.StringKey is { } key ? JsonValue.Create(key) : JsonValue.Create(m.IntKey ?? 0), m.Type, m.IsRequired))]))]);
}
