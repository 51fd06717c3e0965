using System.CommandLine;
using System.Diagnostics;
using System.Net.Sockets;
using P2PLocal.Rpc.Cli.Doctor;
using P2PLocal.Rpc.Cli.Output;
using Spectre.Console;

namespace P2PLocal.Rpc.Cli.Commands;

/// <summary>
/// <c>p2plocal doctor [peer]</c>: why a peer is missing. Checks the interfaces, the port, our own beacon, who else is
/// heard over the whole wait, and for a named peer each step of reaching it. Exit code 0 when no check fails.
/// </summary>
internal static class DoctorCommand
{
    /// <summary>How long our own hello may take to come back before the check fails (it takes a millisecond).</summary>
    private static readonly TimeSpan s_ownBeaconWait = TimeSpan.FromSeconds(2);

    public static Command Create(CommonOptions common, CliConsole console)
    {
        var peer = new Argument<string?>("peer") { Description = "A peer to check end to end (optional).", Arity = ArgumentArity.ZeroOrOne };
        var timeout = CallCommand.TimeoutOption();
        timeout.DefaultValueFactory = _ => 5;
        var command = new Command("doctor", "Run checks and print each as ok / warn / fail with the fix. Listens for the whole --wait (default 4 s, longer than one default beacon interval).")
        {
            peer,
            timeout,
        };
        command.SetAction((result, cancellationToken) =>
        {
            var settings = common.Read(result, TimeSpan.FromSeconds(4));
            return CliApp.RunGuardedAsync(console, () => RunAsync(settings, result.GetValue(peer), CallCommand.Timeout(result, timeout), console, cancellationToken));
        });
        return command;
    }

    internal static async Task<int> RunAsync(CommonSettings settings, string? peer, TimeSpan timeout, CliConsole console, CancellationToken cancellationToken)
    {
        var checks = new List<Check>();
        var routes = DiscoveryDiagnostics.GetBeaconRoutes(settings.Scope, settings.Port);
        checks.Add(Interfaces(routes, settings));

        Session session;
        try
        {
            session = await Session.StartAsync(settings, timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException e)
        {
            checks.Add(Check.Fail(CheckIds.Bind, $"cannot bind UDP port {settings.Port} with address reuse: {e.SocketErrorCode} ({e.Message}).",
                $"Another program holds the port without address reuse (`ss -ulpn 'sport = :{settings.Port}'` names it): stop it, or give the nodes another port (NodeOptions.DiscoveryPort, --port)."));
            return Report(checks, settings, peer, console);
        }

        await using (session.ConfigureAwait(false))
        {
            var started = Stopwatch.StartNew();
            checks.Add(Check.Ok(CheckIds.Bind, $"UDP port {settings.Port} bound with address reuse: nodes on this host share it."));

            var own = await session.Probe.WaitForAsync(session.IsOwn, s_ownBeaconWait, cancellationToken).ConfigureAwait(false);
            checks.Add(own is not null
                ? Check.Ok(CheckIds.OwnBeacon, $"our own hello came back in {started.Elapsed.TotalMilliseconds:0.0} ms (from {own.Source.Address}).")
                : Check.Fail(CheckIds.OwnBeacon, $"our own beacon did not come back in {s_ownBeaconWait.TotalSeconds:0} s: something drops broadcast UDP to port {settings.Port} on this host.",
                    $"Allow UDP port {settings.Port} in the firewall (e.g. `sudo ufw allow {settings.Port}/udp`, or `sudo firewall-cmd --add-port={settings.Port}/udp`)."));

            var left = settings.Wait - started.Elapsed;
            if (left > TimeSpan.Zero)
                await Task.Delay(left, cancellationToken).ConfigureAwait(false);

            var local = routes.Select(r => r.Advertised).ToHashSet();
            checks.AddRange(NetworkChecks.Run(session.Probe.Heard, settings, session.Node.InstanceId, local));
            if (peer is not null)
                checks.AddRange(await PeerChecks.RunAsync(session, peer, settings, timeout, cancellationToken).ConfigureAwait(false));
        }

        return Report(checks, settings, peer, console);
    }

    private static Check Interfaces(IReadOnlyList<BeaconRoute> routes, CommonSettings settings)
    {
        var list = string.Join("; ", routes.Select(r => $"{r.Interface} {r.Advertised} -> {r.Destination}"));
        if (settings.Scope == DiscoveryScope.Loopback)
            return Check.Ok(CheckIds.Interfaces, $"loopback scope: beacons go to {list}; nothing leaves this host.");
        return routes.Count > 0
            ? Check.Ok(CheckIds.Interfaces, $"a Lan-scope node beacons by {routes.Count} interface address{(routes.Count == 1 ? "" : "es")}: {list}.")
            : Check.Fail(CheckIds.Interfaces, "no up IPv4 interface with a broadcast address: a Lan-scope node here can be seen by nobody.",
                "Connect to a network (point-to-point links and VPN tunnels have no broadcast), or list the peers in NodeOptions.Seeds.");
    }

    private static int Report(List<Check> checks, CommonSettings settings, string? peer, CliConsole console)
    {
        var passed = checks.TrueForAll(c => c.Status != CheckStatus.Fail);
        if (settings.Json)
        {
            console.WriteJson(new DoctorJson(Schema.Version, PeersCommand.Network(settings), peer, settings.Wait.TotalSeconds, passed,
                [.. checks.Select(c => new CheckJson(c.Id, c.Status.ToString().ToLowerInvariant(), c.Summary, c.Fix))]));
        }
        else
        {
            foreach (var check in checks)
            {
                var status = check.Status switch
                {
                    CheckStatus.Ok => "[green]ok  [/]",
                    CheckStatus.Warn => "[yellow]warn[/]",
                    _ => "[red]fail[/]",
                };
                console.Ansi.MarkupLine($"{status}  {Markup.Escape(check.Id),-15} {Markup.Escape(check.Summary)}");
                if (check.Fix is not null)
                    console.Ansi.MarkupLine($"      {"",-15} [dim]fix:[/] {Markup.Escape(check.Fix)}");
            }

            var failed = checks.Count(c => c.Status == CheckStatus.Fail);
            var warned = checks.Count(c => c.Status == CheckStatus.Warn);
            console.WriteLine(passed
                ? $"All {checks.Count} checks passed{(warned > 0 ? $" ({warned} with a warning)" : "")}."
                : $"{failed} of {checks.Count} checks failed.");
        }

        return passed ? ExitCodes.Ok : ExitCodes.Failed;
    }
}
