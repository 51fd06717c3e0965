using System.Diagnostics;
using System.Threading.Channels;

namespace P2PLocal.Rpc.Reliability.Tests.Legacy;

/// <summary>legacy_node.py (a stand-in for the Python p2p-local, standard library only) in its own process, driven by lines.</summary>
public sealed class LegacyPythonNode : IAsyncDisposable
{
    private readonly LineProcess _node;
    private readonly Process _process;

    private LegacyPythonNode(LineProcess node)
    {
        _node = node;
        _process = node.Process;
    }

    /// <summary>Where its SimpleXMLRPCServer listens (on localhost).</summary>
    public int Port { get; private set; }

    /// <summary>Starts the node and waits for its READY line.</summary>
    /// <param name="advertisedIp">The ip its beacon carries (the real one sends gethostbyname(gethostname()), often 127.0.1.1).</param>
    public static async Task<LegacyPythonNode> StartAsync(string name, int discoveryPort, string protocol = "itecnet", string advertisedIp = "127.0.1.1", double timer = 0.5)
    {
        var script = Path.Combine(AppContext.BaseDirectory, "Legacy", "legacy_node.py");
        var info = new ProcessStartInfo("python3");
        foreach (var argument in new[] { "-u", script, protocol, name, advertisedIp, discoveryPort.ToString(System.Globalization.CultureInfo.InvariantCulture), timer.ToString(System.Globalization.CultureInfo.InvariantCulture) })
            info.ArgumentList.Add(argument);
        var node = new LegacyPythonNode(new LineProcess(info));
        var ready = await node.NextLineAsync();
        Assert.StartsWith("READY ", ready);
        node.Port = int.Parse(ready["READY ".Length..], System.Globalization.CultureInfo.InvariantCulture);
        return node;
    }

    /// <summary>Sends one command and returns its one-line answer.</summary>
    public async Task<string> AskAsync(string command)
    {
        await _node.SendLineAsync(command);
        return await NextLineAsync();
    }

    private async Task<string> NextLineAsync()
    {
        try
        {
            return await _node.Lines.ReadAsync().AsTask().Within();
        }
        catch (ChannelClosedException)
        {
            throw new InvalidOperationException("legacy_node.py exited: " + _node.Stderr);
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                await _node.SendLineAsync("quit");
                await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
            }
        }
        catch (Exception e) when (e is TimeoutException or IOException)
        {
            _process.Kill(entireProcessTree: true);
        }
        finally
        {
            _node.Dispose();
        }
    }
}
