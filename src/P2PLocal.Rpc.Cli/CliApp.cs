using System.CommandLine;
using System.Net.Sockets;
using P2PLocal.Rpc.Cli.Commands;
using P2PLocal.Rpc.Cli.Output;

namespace P2PLocal.Rpc.Cli;

/// <summary>The <c>p2plocal</c> command line: the entry point tests call in-process.</summary>
internal static class CliApp
{
    /// <summary>Builds the commands and runs <paramref name="args"/>.</summary>
    /// <param name="args">The arguments, without the program name.</param>
    /// <param name="console">Where output and errors go.</param>
    /// <param name="cancellationToken">Ctrl+C: watch and listen stop cleanly, other commands exit with 130.</param>
    /// <returns>The exit code (see <see cref="ExitCodes"/>).</returns>
    public static async Task<int> RunAsync(string[] args, CliConsole console, CancellationToken cancellationToken = default)
    {
        var common = new CommonOptions();
        var root = new RootCommand($"p2plocal {DiscoveryDiagnostics.LibraryVersion}: see the P2PLocal.Rpc nodes on the network, call a function by hand, publish and print events, and find out why a peer is missing.")
        {
            PeersCommand.Create(common, console),
            MethodsCommand.Create(common, console),
            CallCommand.Create(common, console),
            ListenCommand.Create(common, console),
            PublishCommand.Create(common, console),
            SubscribeCommand.Create(common, console),
            DoctorCommand.Create(common, console),
        };
        foreach (var option in common.All)
            root.Options.Add(option);

        var result = root.Parse(args);
        if (result.Errors.Count > 0)
        {
            foreach (var error in result.Errors)
                console.Fail(error.Message);
            console.Error.WriteLine("Run `p2plocal --help` (or `p2plocal <command> --help`) for usage.");
            return ExitCodes.Usage;
        }

        var configuration = new InvocationConfiguration { Output = console.Out, Error = console.Error };
        return await result.InvokeAsync(configuration, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Runs a command, turning the failures every command shares into a message and an exit code.</summary>
    public static async Task<int> RunGuardedAsync(CliConsole console, Func<Task<int>> run)
    {
        try
        {
            return await run().ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            console.Fail("interrupted.");
            return ExitCodes.Interrupted;
        }
        catch (SecurityOptionException e)
        {
            console.Fail(e.Message);
            return ExitCodes.Usage;
        }
        catch (SocketException e)
        {
            console.Fail($"cannot open the network: {e.SocketErrorCode}: {e.Message}. Another program may hold the port without address reuse; choose another --port, or stop that program.");
            return ExitCodes.Failed;
        }
    }
}
