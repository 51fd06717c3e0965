using System.Diagnostics;

namespace P2PLocal.Rpc.Reliability.Tests;

/// <summary>A node in its own process (tests/P2PLocal.Rpc.TestHost), driven through stdin/stdout lines.</summary>
public sealed class HostProcess : IAsyncDisposable
{
    private readonly LineProcess _host;
    private readonly Process _process;

    private HostProcess(LineProcess host)
    {
        _host = host;
        _process = host.Process;
    }

    public int ServicePort { get; private set; }

    public string InstanceId { get; private set; } = "";

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>Where the test host's build output sits, next to this test assembly's.</summary>
    public static string HostDll
    {
        get
        {
            // tests/P2PLocal.Rpc.Reliability.Tests/bin/<Configuration>/net10.0/ -> tests/P2PLocal.Rpc.TestHost/bin/<Configuration>/net10.0/
            var here = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
            var tfm = here.Name;
            var configuration = here.Parent!.Name;
            var testsDir = here.Parent.Parent!.Parent!.Parent!.FullName;
            var dll = Path.Combine(testsDir, "P2PLocal.Rpc.TestHost", "bin", configuration, tfm, "P2PLocal.Rpc.TestHost.dll");
            return File.Exists(dll) ? dll : throw new FileNotFoundException("Build tests/P2PLocal.Rpc.TestHost first.", dll);
        }
    }

    /// <summary>Starts a host and waits for its READY line.</summary>
    /// <param name="netns">A network namespace to run it in (<c>ip netns exec</c>), or null for this one.</param>
    public static async Task<HostProcess> StartAsync(string name, int discoveryPort, string functions = "echo,whoami",
        string scope = "loopback", string? netns = null, int intervalMs = 1000, int servicePort = 0, string? networkKeyFile = null,
        string? ranFile = null)
    {
        var dotnet = Environment.ProcessPath is { } p && Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : "dotnet";
        var info = new ProcessStartInfo();
        if (netns is not null)
        {
            info.FileName = "ip";
            foreach (var arg in new[] { "netns", "exec", netns, dotnet })
                info.ArgumentList.Add(arg);
        }
        else
        {
            info.FileName = dotnet;
        }

        foreach (var arg in new[] { HostDll, "--name", name, "--port", discoveryPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
                     "--scope", scope, "--functions", functions, "--interval-ms", intervalMs.ToString(System.Globalization.CultureInfo.InvariantCulture),
                     "--service-port", servicePort.ToString(System.Globalization.CultureInfo.InvariantCulture) })
            info.ArgumentList.Add(arg);
        if (networkKeyFile is not null)
        {
            info.ArgumentList.Add("--network-key-file");
            info.ArgumentList.Add(networkKeyFile);
        }

        if (ranFile is not null)
        {
            info.ArgumentList.Add("--ran-file");
            info.ArgumentList.Add(ranFile);
        }

        var host = new HostProcess(new LineProcess(info));
        try
        {
            var ready = await host.ReadLineAsync(l => l.StartsWith("READY ", StringComparison.Ordinal));
            var parts = ready.Split(' ');
            host.ServicePort = int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture);
            host.InstanceId = parts[2];
            return host;
        }
        catch
        {
            await host.DisposeAsync();
            throw;
        }
    }

    /// <summary>Sends a command line and returns the first output line that <paramref name="isAnswer"/> accepts.</summary>
    public async Task<string> CommandAsync(string command, Func<string, bool> isAnswer)
    {
        await _host.SendLineAsync(command);
        return await ReadLineAsync(isAnswer);
    }

    public async Task<string> ReadLineAsync(Func<string, bool> accept)
    {
        using var timeout = new CancellationTokenSource(Net.Patience);
        try
        {
            await foreach (var line in _host.Lines.ReadAllAsync(timeout.Token))
            {
                if (accept(line))
                    return line;
            }
        }
        catch (OperationCanceledException)
        {
        }

        throw new PatienceExceededException(Net.Patience, $"the test host gave no expected line. stderr: {Stderr}");
    }

    public string Stderr => _host.Stderr;

    /// <summary>Kills the process outright: no goodbye, sockets closed by the kernel.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
            _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync().WaitAsync(Net.Patience);
    }

    /// <summary>Closes stdin: the host shuts its node down gracefully and exits.</summary>
    public async Task StopAsync()
    {
        if (_process.HasExited)
            return;
        _process.StandardInput.Close();
        try
        {
            await _process.WaitForExitAsync().WaitAsync(Net.Patience);
        }
        catch (TimeoutException)
        {
            await KillAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopAsync();
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or TimeoutException)
        {
            await KillAsync();
        }

        _host.Dispose();
    }
}
