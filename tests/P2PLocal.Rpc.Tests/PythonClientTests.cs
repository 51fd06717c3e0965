using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using P2PLocal.Rpc.Sample;

namespace P2PLocal.Rpc.Tests;

/// <summary>
/// The Python client (samples/python/p2plocal.py, written from PROTOCOL.md alone) against a C# node, in loopback
/// scope: proof that the spec is enough for a second implementation.
/// </summary>
public class PythonClientTests
{
    /// <summary>The Python sample, copied beside the tests (see the project file).</summary>
    private static string Script => Path.Combine(AppContext.BaseDirectory, "python", "example.py");

    [Fact]
    public async Task Python_client_discovers_a_node_calls_dynamic_typed_and_object_functions_gets_errors_and_cancels()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var bob = await TestNetwork.StartAsync("bob", port);
        bob.Register("greet", kwargs => $"Hello, {kwargs["name"]}!");
        var slowCancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        bob.Register("slow", async (_, cancellationToken) =>
        {
            using var registration = cancellationToken.Register(() => slowCancelled.TrySetResult());
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return null;
        });
        bob.Register(new Calculator()).Register(new Geometry());

        using var python = StartPython(Script, "bob", port.ToString(CultureInfo.InvariantCulture), "--wait-for-call");
        var stderr = python.StandardError.ReadToEndAsync();
        try
        {
            var output = new List<string>();
            async Task<string> ReadUntilAsync(string prefix)
            {
                while (await python.StandardOutput.ReadLineAsync().Within() is { } line)
                {
                    output.Add(line);
                    if (line.StartsWith(prefix, StringComparison.Ordinal))
                        return line;
                }

                throw new Xunit.Sdk.XunitException($"The Python client ended before '{prefix}':\n{string.Join('\n', output)}\n{await stderr}");
            }

            var serving = (await ReadUntilAsync("SERVING ")).Split(' ');
            var pythonPeer = await bob.Peers.WaitForAsync(serving[1]).Within();
            Assert.Equal(serving[2], pythonPeer.InstanceId);
            var left = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            bob.Peers.Left += (_, peer) => { if (peer.InstanceId == serving[2]) left.TrySetResult(); };

            await ReadUntilAsync("WAITING");
            // The other way round: the C# node calls the Python node's function.
            Assert.Contains("shout", await bob.GetMethodsAsync(serving[1]).Within());
            // The Python node serves no streams and its hello says so: the C# caller refuses at once, sending nothing.
            var refused = await Assert.ThrowsAsync<NotSupportedException>(() => bob.RequestStreamAsync(serving[1], "shout").ToListAsync().AsTask()).Within();
            Assert.Contains("'stream' feature", refused.Message, StringComparison.Ordinal);
            Assert.Equal("HI!", await bob.RequestAsync(serving[1], "shout", new Dictionary<string, object?> { ["text"] = "hi" }).Within()); // ends the script
            await ReadUntilAsync("DONE");
            var closed = Stopwatch.StartNew();
            await python.WaitForExitAsync().Within();
            Assert.True(python.ExitCode == 0, $"exit code {python.ExitCode}\n{string.Join('\n', output)}\n{await stderr}");

            Assert.Contains(output, l => l.StartsWith("found bob at 127.0.0.1:", StringComparison.Ordinal));
            Assert.Contains("function Multiply(a: int, b: int) -> int", output);
            Assert.Contains("function greet() -> object", output);
            // The fingerprint, computed in Python from PROTOCOL.md and the signatures the node sent, is the node's own.
            Assert.Contains($"contract P2PLocal.Rpc.Sample.ICalculator: fingerprint {Fingerprint<ICalculator>(bob)} matches", output);
            Assert.Contains($"contract P2PLocal.Rpc.Sample.IGeometry: fingerprint {Fingerprint<IGeometry>(bob)} matches", output);
            Assert.Contains("dynamic: greet -> Hello, Ann!", output);
            Assert.Contains("typed: Multiply -> 42", output);
            Assert.Contains("typed: SumAsync -> 10", output);
            // Objects: built from $methods' description of the [MessagePackObject] types (PROTOCOL.md, "Object values").
            Assert.Contains("function Measure(segment: P2PLocal.Rpc.Sample.Segment, decimals: int = 2) -> P2PLocal.Rpc.Sample.Measurement", output);
            Assert.Contains("object P2PLocal.Rpc.Sample.Segment as array: 0 From: P2PLocal.Rpc.Sample.Point (required), 1 To: P2PLocal.Rpc.Sample.Point (required), 2 Label: string", output);
            Assert.Contains("object P2PLocal.Rpc.Sample.Measurement as map: 'label' Label: string (required), 'length' Length: double", output);
            Assert.Contains("objects: Measure -> {'Label': 'diagonal', 'Length': 5.0}", output);
            Assert.Contains(output, l => l.StartsWith("error 3: Kwarg 'segment' of 'Measure' is not a valid P2PLocal.Rpc.Sample.Segment: Member 'To'", StringComparison.Ordinal));
            Assert.Contains("pipelined: 100 calls, sum 9900", output);
            Assert.Contains("error 2: Node 'bob' has no function 'fly'.", output);
            Assert.Contains(output, l => l.StartsWith("error 3: Kwarg 'a' of 'Multiply' is not a valid int", StringComparison.Ordinal));
            Assert.Contains("cancelled: slow", output);
            Assert.Contains("called: shout", output);
            await slowCancelled.Task.Within(); // the cancel reached the handler's token

            // The Python node said goodbye on close: it left before it could have expired (3.5 of its 3 s intervals).
            await left.Task.Within();
            Assert.True(closed.Elapsed < TimeSpan.FromSeconds(3 * 3.5), $"left after {closed.Elapsed}: by expiry, not by its goodbye");
        }
        finally
        {
            if (!python.HasExited)
                python.Kill(entireProcessTree: true);
        }
    }

    [Fact]
    public async Task Python_client_codec_and_beacon_unit_tests_pass()
    {
        using var python = StartPython("-m", "unittest", "test_p2plocal");
        var stdout = python.StandardOutput.ReadToEndAsync();
        var stderr = await python.StandardError.ReadToEndAsync().Within();
        await python.WaitForExitAsync().Within();
        Assert.True(python.ExitCode == 0, $"python3 -m unittest test_p2plocal failed:\n{await stdout}\n{stderr}");
        Assert.Contains("OK", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Python_client_reads_streams_within_its_window_stops_them_early_gets_their_errors_and_exchanges_events()
    {
        var port = TestNetwork.FreeUdpPort();
        const int ServerWindow = 8; // InteropTests.SERVER_WINDOW
        await using var bob = await Node.StartAsync(new NodeOptions(TestNetwork.Options("bob", port)) { StreamWindow = ServerWindow });
        long produced = 0, maxLead = long.MinValue;
        var gate = new Lock();
        var endlessCancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        bob.RegisterStream("count", (kwargs, ct) => Count((long)kwargs["n"]!, ct));
        bob.RegisterStream("endless", (_, ct) =>
        {
            ct.Register(() => endlessCancelled.TrySetResult());
            return Count(long.MaxValue, ct);
        });
        bob.RegisterStream("failing", (_, ct) => Failing(ct));
        // After reading `read` items, Python asks how many the producer made: never more than its window (+1 made and
        // waiting for credit) ahead.
        bob.Register("progress", kwargs =>
        {
            var now = Interlocked.Read(ref produced);
            lock (gate)
                maxLead = Math.Max(maxLead, now - (long)kwargs["read"]!);
            return now;
        });
        bob.Register("endless_cancelled", async (_, ct) =>
        {
            await endlessCancelled.Task.WaitAsync(TestNetwork.Patience, ct);
            return true;
        });
        bob.Register("greet", kwargs => $"Hello, {kwargs["name"]}!");
        bob.Register("publish", async (kwargs, ct) =>
        {
            var (topic, start, n) = ((string)kwargs["topic"]!, (long)kwargs["start"]!, (long)kwargs["n"]!);
            for (var i = start; i < start + n; i++)
                await bob.PublishAsync(topic, i, ct);
            return null;
        });
        var received = new List<long>();
        var twentyReceived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var subscription = bob.Subscribe<long>("cs.topic", value =>
        {
            lock (received)
            {
                received.Add(value);
                if (received.Count == 20)
                    twentyReceived.TrySetResult();
            }
        });
        bob.Register("events_received", async (_, ct) =>
        {
            await twentyReceived.Task.WaitAsync(TestNetwork.Patience, ct);
            lock (received)
                return received.ToArray();
        });

        using var python = StartPython(new Dictionary<string, string> { ["P2PLOCAL_TARGET"] = "bob", ["P2PLOCAL_DISCOVERY_PORT"] = port.ToString(CultureInfo.InvariantCulture) },
            "-m", "unittest", "-v", "test_p2plocal.InteropTests");
        string stderr;
        try
        {
            var stdout = python.StandardOutput.ReadToEndAsync();
            stderr = await python.StandardError.ReadToEndAsync().Within();
            await python.WaitForExitAsync().Within();
            Assert.True(python.ExitCode == 0, $"the Python InteropTests failed:\n{await stdout}\n{stderr}");
        }
        finally
        {
            if (!python.HasExited)
                python.Kill(entireProcessTree: true);
        }

        Assert.Contains("Ran 7 tests", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("skipped", stderr, StringComparison.Ordinal);

        await endlessCancelled.Task.Within(); // leaving the with block cancelled the producer here
        lock (gate)
            Assert.InRange(maxLead, 0, 4 + 1); // Python's window of 4 (below the node's 8) bounded the producer
        var statistics = bob.GetEventStatistics();
        Assert.True(statistics.Received >= 20 && statistics.Sent >= 21, $"received {statistics.Received}, sent {statistics.Sent}");

        async IAsyncEnumerable<object?> Count(long n, [EnumeratorCancellation] CancellationToken ct)
        {
            Interlocked.Exchange(ref produced, 0);
            for (var i = 0L; i < n; i++)
            {
                await Task.Yield();
                ct.ThrowIfCancellationRequested();
                Interlocked.Increment(ref produced);
                yield return i;
            }
        }

        static async IAsyncEnumerable<object?> Failing([EnumeratorCancellation] CancellationToken ct)
        {
            for (var i = 0; i < 3; i++)
            {
                await Task.Yield();
                yield return i;
            }

            ct.ThrowIfCancellationRequested();
            throw new InvalidOperationException("boom after 3 items");
        }
    }

    private static string Fingerprint<TContract>(Node node) =>
        node.Functions.First(f => f.Contract == typeof(TContract).FullName).Fingerprint!;

    private static Process StartPython(params string[] args) => StartPython(new Dictionary<string, string>(), args);

    private static Process StartPython(Dictionary<string, string> environment, params string[] args)
    {
        var start = new ProcessStartInfo("python3", args)
        {
            WorkingDirectory = Path.GetDirectoryName(Script)!,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var (name, value) in environment)
            start.Environment[name] = value;
        try
        {
            return Process.Start(start)!;
        }
        catch (Win32Exception e)
        {
            throw new InvalidOperationException("python3 is not on the PATH; install Python 3.8 or later to run the Python client test.", e);
        }
    }
}
