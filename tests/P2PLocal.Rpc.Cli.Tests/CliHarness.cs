using System.Text;
using System.Text.Json;
using P2PLocal.Rpc.Cli;
using P2PLocal.Rpc.Cli.Output;

namespace P2PLocal.Rpc.Cli.Tests;

/// <summary>What one run of the tool printed and returned.</summary>
public sealed record CliResult(int ExitCode, string Out, string Error)
{
    public JsonElement Json() => JsonDocument.Parse(Out).RootElement;

    /// <summary>Each line of JSON Lines output.</summary>
    public List<JsonElement> JsonLines() =>
        [.. Out.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(l => JsonDocument.Parse(l).RootElement)];

    public override string ToString() => $"exit {ExitCode}\nstdout:\n{Out}\nstderr:\n{Error}";
}

/// <summary>
/// Runs <c>p2plocal</c> in-process through its entry point, always in loopback scope on the test's own discovery port:
/// the tool never sends off loopback in a test.
/// </summary>
public static class Cli
{
    private static string[] Loopback(int port, string[] args)
    {
        Assert.DoesNotContain("--scope", args);
        return [.. args, "--scope", "loopback", "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture)];
    }

    public static async Task<CliResult> RunAsync(int port, params string[] args)
    {
        var output = new LineWriter();
        var error = new LineWriter();
        var code = await CliApp.RunAsync(Loopback(port, args), new CliConsole(output, error)).Within();
        return new CliResult(code, output.ToString(), error.ToString());
    }

    /// <summary>
    /// A loopback node of another protocol. It ignores the tool's hello, so it is heard only on its own timer: every
    /// 100 ms here.
    /// </summary>
    public static Task<Node> StartOtherProtocolAsync(string name, string protocol, int port) => Node.StartAsync(new NodeOptions
    {
        Name = name,
        Protocol = protocol,
        Scope = DiscoveryScope.Loopback,
        DiscoveryPort = port,
        AdvertiseInterval = TimeSpan.FromMilliseconds(100),
    });

    /// <summary>Starts a long-running command (watch, listen); stop it with <see cref="RunningCli.StopAsync"/>.</summary>
    public static RunningCli Start(int port, params string[] args)
    {
        var output = new LineWriter();
        var error = new LineWriter();
        var stop = new CancellationTokenSource();
        var run = Task.Run(() => CliApp.RunAsync(Loopback(port, args), new CliConsole(output, error), stop.Token));
        return new RunningCli(run, output, error, stop);
    }
}

public sealed class RunningCli(Task<int> run, LineWriter output, LineWriter error, CancellationTokenSource stop) : IAsyncDisposable
{
    public LineWriter Output => output;

    /// <summary>Waits for a line of standard output that matches; fails the test if the command ends first.</summary>
    public async Task<string> WaitForLineAsync(Func<string, bool> match)
    {
        var line = output.WaitForLineAsync(match);
        var first = await Task.WhenAny(line, run).Within();
        if (first != line)
            Assert.Fail($"The command ended (exit {await run}) before the line came.\nstdout:\n{output}\nstderr:\n{error}");
        return await line;
    }

    /// <summary>Waits for the command to end by itself (<c>--count</c>, <c>--wait</c>) and returns what was printed.</summary>
    public async Task<CliResult> WaitForExitAsync()
    {
        var code = await run.Within();
        return new CliResult(code, output.ToString(), error.ToString());
    }

    /// <summary>Presses Ctrl+C and returns what was printed.</summary>
    public async Task<CliResult> StopAsync()
    {
        await stop.CancelAsync();
        var code = await run.Within();
        return new CliResult(code, output.ToString(), error.ToString());
    }

    public async ValueTask DisposeAsync()
    {
        await stop.CancelAsync();
        try
        {
            await run.Within();
        }
        catch (OperationCanceledException)
        {
        }

        stop.Dispose();
    }
}

/// <summary>A fresh network key in a temporary file, for <c>--network-key-file</c>; deleted on dispose.</summary>
public sealed class NetworkKeyFile : IDisposable
{
    private NetworkKeyFile(string key, string path)
    {
        Key = key;
        Path = path;
    }

    public string Key { get; }

    public string Path { get; }

    public static async Task<NetworkKeyFile> CreateAsync()
    {
        var file = new NetworkKeyFile(NodeSecurity.CreateNetworkKey(), System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"p2p-key-{Guid.NewGuid():N}"));
        await File.WriteAllTextAsync(file.Path, file.Key);
        return file;
    }

    public void Dispose() => File.Delete(Path);
}

/// <summary>A thread-safe captured stream of text that tests can wait on, line by line.</summary>
public sealed class LineWriter : TextWriter
{
    private readonly object _gate = new();
    private readonly StringBuilder _text = new();
    private readonly List<(Func<string, bool> Match, TaskCompletionSource<string> Done)> _waiters = [];
    private int _lineStart;

    public override Encoding Encoding => Encoding.UTF8;

    public override void Write(char value) => Write(value.ToString());

    public override void Write(string? value)
    {
        if (string.IsNullOrEmpty(value))
            return;
        List<(TaskCompletionSource<string>, string)> matched = [];
        lock (_gate)
        {
            _text.Append(value);
            int newline;
            while ((newline = IndexOfNewline()) >= 0)
            {
                var line = _text.ToString(_lineStart, newline - _lineStart).TrimEnd('\r');
                _lineStart = newline + 1;
                foreach (var waiter in _waiters.Where(w => w.Match(line)).ToList())
                {
                    _waiters.Remove(waiter);
                    matched.Add((waiter.Done, line));
                }
            }
        }

        foreach (var (done, line) in matched)
            done.TrySetResult(line);
    }

    public override void WriteLine(string? value) => Write(value + "\n");

    public override void WriteLine() => Write("\n");

    public Task<string> WaitForLineAsync(Func<string, bool> match)
    {
        lock (_gate)
        {
            var existing = _text.ToString(0, _lineStart).Split('\n').FirstOrDefault(l => match(l.TrimEnd('\r')));
            if (existing is not null)
                return Task.FromResult(existing);
            var done = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Add((match, done));
            return done.Task;
        }
    }

    public override string ToString()
    {
        lock (_gate)
            return _text.ToString();
    }

    private int IndexOfNewline()
    {
        for (var i = _lineStart; i < _text.Length; i++)
        {
            if (_text[i] == '\n')
                return i;
        }

        return -1;
    }
}

/// <summary>Sends a hand-made datagram to the loopback discovery port every 50 ms until disposed (a staged fault).</summary>
public sealed class BeaconStager : IAsyncDisposable
{
    private readonly BeaconSender _sender;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public BeaconStager(int port, params byte[][] datagrams)
    {
        _sender = new BeaconSender(port);
        _loop = Task.Run(async () =>
        {
            using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(50));
            do
            {
                foreach (var datagram in datagrams)
                    _sender.Send(datagram);
            }
            while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false));
        });
    }

    public BeaconStager(int port, params string[] texts) : this(port, [.. texts.Select(Encoding.UTF8.GetBytes)])
    {
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await _loop;
        }
        catch (OperationCanceledException)
        {
        }

        _sender.Dispose();
        _stop.Dispose();
    }
}
