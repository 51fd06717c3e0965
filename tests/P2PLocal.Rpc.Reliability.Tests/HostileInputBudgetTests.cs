using System.Buffers;
using System.Buffers.Binary;
using System.Collections;
using System.Diagnostics;
using System.Text;
using MessagePack;
using P2PLocal.Rpc.Dispatch;

namespace P2PLocal.Rpc.Reliability.Tests;

/// <summary>
/// Issue 8 rows R5 (hash flooding), R6 (decode budget and work in flight), R10 (error replies above the caller's frame
/// limit) and U1 (invalid UTF-8): what one stranger's frame may cost a node, bounded by its options.
/// </summary>
public class HostileInputBudgetTests(ITestOutputHelper output)
{
    private const int ResultKind = 1;
    private const int ErrorKind = 2;
    private const int MethodNotFound = 2;
    private const int InvalidKwargs = 3;
    private const int Busy = 4;

    /// <summary>Loopback options with the decode limits under test; everything else as <see cref="Net.Options"/>.</summary>
    internal static NodeOptions Options(string name, int port, int? maxKwargsElements = null, int? elementsInFlight = null,
        long? bytesInFlight = null, int? maxFrameSize = null)
    {
        var defaults = new NodeOptions { Name = name };
        return new NodeOptions
        {
            Name = name,
            DiscoveryPort = port,
            Scope = DiscoveryScope.Loopback,
            AdvertiseInterval = TimeSpan.FromSeconds(1),
            ShutdownGracePeriod = TimeSpan.FromSeconds(1),
            MaxFrameSize = maxFrameSize ?? defaults.MaxFrameSize,
            MaxKwargsElements = maxKwargsElements ?? defaults.MaxKwargsElements,
            MaxKwargsElementsInFlight = elementsInFlight ?? defaults.MaxKwargsElementsInFlight,
            MaxRequestBytesInFlight = bytesInFlight ?? defaults.MaxRequestBytesInFlight,
        };
    }

    /// <summary>A map of <paramref name="count"/> uint64 keys to nil; colliding keys are (k &lt;&lt; 32) | k, whose long hash is 0.</summary>
    internal static byte[] IntegerKeyMap(int count, bool colliding)
    {
        var bytes = new byte[5 + (count * 10)];
        bytes[0] = 0xDF;
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(1), count);
        for (var k = 1; k <= count; k++)
        {
            var at = 5 + ((k - 1) * 10);
            bytes[at] = 0xCF;
            BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(at + 1), colliding ? ((ulong)k << 32) | (uint)k : (ulong)k);
            bytes[at + 9] = 0xC0;
        }

        return bytes;
    }

    /// <summary>An array32 of <paramref name="count"/> one-byte elements (0x80 empty map, 0x90 empty array, 0xC0 nil).</summary>
    internal static byte[] ArrayOf(int count, byte element)
    {
        var bytes = new byte[5 + count];
        bytes[0] = 0xDD;
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(1), count);
        bytes.AsSpan(5).Fill(element);
        return bytes;
    }

    /// <summary>Kwargs <c>{"value": value}</c>, with the value given as raw MessagePack.</summary>
    internal static byte[] ValueKwargs(byte[] value) => [.. Net.Pack(b => b.Map(1).Str("value")), .. value];

    /// <summary>Reads a result frame's value as a long.</summary>
    private static long ResultNumber(byte[] reply)
    {
        var reader = new MessagePackReader(reply);
        reader.ReadArrayHeader();
        Assert.Equal(ResultKind, reader.ReadInt32());
        reader.ReadUInt32();
        return reader.ReadInt64();
    }

    /// <summary>The kind, id, code, type and message of an error frame.</summary>
    internal static (int Kind, uint Id, int Code, string Type, string Message) Error(byte[] reply)
    {
        var reader = new MessagePackReader(reply);
        reader.ReadArrayHeader();
        var kind = reader.ReadInt32();
        var id = reader.ReadUInt32();
        return kind == ErrorKind ? (kind, id, reader.ReadInt32(), reader.ReadString()!, reader.ReadString()!) : (kind, id, 0, "", "");
    }

    private static int DistinctHashes<TKey>(IEnumerable<TKey> keys, IEqualityComparer<TKey> comparer) =>
        keys.Select(k => comparer.GetHashCode(k!)).Distinct().Count();

    [Fact]
    public async Task R5_colliding_integer_keys_hash_apart_in_every_map_a_node_decodes()
    {
        await using var node = await Net.StartAsync(Options("r5-unit", Net.FreeUdpPort()));
        var options = node.SerializerOptions;
        const int Count = 20_000;
        var map = IntegerKeyMap(Count, colliding: true);

        // Server side, dynamic kwargs (DynamicFunction): a nested map of the kwargs.
        var kwargs = KwargsCodec.ReadKwargs(ValueKwargs(map), options);
        var nested = Assert.IsType<Dictionary<object, object?>>(kwargs["value"]);
        // Caller side, dynamic result (Node.RequestAsync reads with KwargsCodec.ReadValue).
        var reader = new MessagePackReader(map);
        var result = Assert.IsType<Dictionary<object, object?>>(KwargsCodec.ReadValue(ref reader, options));
        // Typed object parameter or result (MessagePack's object formatter), and a typed dictionary.
        var typedObject = Assert.IsType<Dictionary<object, object>>(MessagePackSerializer.Deserialize<object>(map, options));
        var typedLong = MessagePackSerializer.Deserialize<Dictionary<ulong, object?>>(map, options);

        var spreads = new[]
        {
            ("dynamic kwargs", DistinctHashes(nested.Keys, nested.Comparer)),
            ("dynamic result", DistinctHashes(result.Keys, result.Comparer)),
            ("typed object", DistinctHashes(typedObject.Keys, typedObject.Comparer)),
            ("typed Dictionary<ulong, object>", DistinctHashes(typedLong.Keys, typedLong.Comparer)),
        };
        output.WriteLine("R5 distinct hash codes among " + Count + " colliding keys: " + string.Join(", ", spreads.Select(s => $"{s.Item1} {s.Item2}")));
        foreach (var (where, distinct) in spreads)
            Assert.True(distinct >= Count * 99 / 100, $"{where}: only {distinct} distinct hash codes for {Count} keys chosen to collide");

        // The comparer hashes every key type the readers produce, binary and containers included, without refusing any.
        var odd = Net.Pack(b => b.Map(3).Raw(0xC4, 1, 7).Number(1).Raw(0x91, 0x01).Number(2).Raw(0xCB, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0).Number(3));
        Assert.Equal(3, Assert.IsType<Dictionary<object, object>>(MessagePackSerializer.Deserialize<object>(odd, options)).Count);
        var oddReader = new MessagePackReader(odd);
        Assert.Equal(3, Assert.IsType<Dictionary<object, object?>>(KwargsCodec.ReadValue(ref oddReader, options)).Count);
    }

    [Fact]
    public async Task R5_a_map_of_colliding_keys_costs_about_what_distinct_keys_cost()
    {
        await using var victim = await Net.StartAsync(Options("r5-victim", Net.FreeUdpPort()));
        victim.Register("count", kwargs => (long)((ICollection)kwargs["value"]!).Count);
        using var raw = await RawPeer.ConnectWithHelloAsync(victim.ServiceEndPoint);
        const int Count = 60_000; // before the fix: about 15 s of CPU for the colliding map; the distinct one, 0.1 s

        async Task<TimeSpan> TimeAsync(bool colliding, uint id)
        {
            var request = RawPeer.Request(id, "count", ValueKwargs(IntegerKeyMap(Count, colliding)));
            var clock = Stopwatch.StartNew();
            await raw.SendFrameAsync(request);
            var reply = await raw.ReadFrameAsync();
            clock.Stop();
            Assert.Equal(Count, ResultNumber(reply!));
            return clock.Elapsed;
        }

        await TimeAsync(colliding: false, 1); // warm-up
        var spread = await TimeAsync(colliding: false, 2);
        var colliding = await TimeAsync(colliding: true, 3);
        output.WriteLine($"R5 {Count} uint64 keys ({IntegerKeyMap(Count, true).Length / 1024} KiB): distinct hashes {spread.TotalMilliseconds:0} ms, chosen to collide {colliding.TotalMilliseconds:0} ms");
        Assert.True(colliding <= (spread * 5) + TimeSpan.FromSeconds(2), $"colliding keys took {colliding.TotalMilliseconds:0} ms against {spread.TotalMilliseconds:0} ms for distinct ones");
    }

    [Fact]
    public async Task R6_kwargs_over_MaxKwargsElements_are_refused_as_invalid_kwargs_before_any_handler_runs()
    {
        const int Budget = 10_000;
        await using var victim = await Net.StartAsync(Options("r6-victim", Net.FreeUdpPort(), maxKwargsElements: Budget));
        var calls = 0;
        victim.Register("count", kwargs =>
        {
            Interlocked.Increment(ref calls);
            return (long)((ICollection)kwargs["value"]!).Count;
        });
        using var raw = await RawPeer.ConnectWithHelloAsync(victim.ServiceEndPoint);

        // {"value": [n x {}]} holds n + 3 values: the map, its key, the array, and the n elements.
        await raw.SendFrameAsync(RawPeer.Request(1, "count", ValueKwargs(ArrayOf(Budget - 3, 0x80))));
        Assert.Equal(Budget - 3, ResultNumber((await raw.ReadFrameAsync())!));

        foreach (var (id, element) in new (uint, byte)[] { (2, 0x80), (3, 0x90), (4, 0xC0) })
        {
            await raw.SendFrameAsync(RawPeer.Request(id, "count", ValueKwargs(ArrayOf(Budget - 2, element))));
            var (kind, replyId, code, _, message) = Error((await raw.ReadFrameAsync())!);
            Assert.Equal((ErrorKind, id, InvalidKwargs), (kind, replyId, code));
            Assert.Contains("MaxKwargsElements", message, StringComparison.Ordinal);
        }

        // A whole 4 MiB frame of empty maps (the issue's probe) against the default budget, on a default node.
        await using var defaults = await Net.StartAsync(Options("r6-defaults", Net.FreeUdpPort()));
        defaults.Register("count", kwargs => (long)((ICollection)kwargs["value"]!).Count);
        using var raw2 = await RawPeer.ConnectWithHelloAsync(defaults.ServiceEndPoint);
        await raw2.SendFrameAsync(RawPeer.Request(5, "count", ValueKwargs(ArrayOf((4 * 1024 * 1024) - 64, 0x80))));
        var (kind2, _, code2, _, message2) = Error((await raw2.ReadFrameAsync())!);
        Assert.Equal((ErrorKind, InvalidKwargs), (kind2, code2));
        output.WriteLine($"R6 budget {Budget}: {Budget - 3} empty maps decoded; {Budget - 2} empty maps, arrays or nils refused with error 3. 4 MiB of empty maps on a default node: error {code2}, \"{message2}\"");
        Assert.Equal(1, calls);
    }

    [Fact]
    public async Task R6_a_result_over_the_callers_MaxKwargsElements_fails_the_call_instead_of_decoding()
    {
        var port = Net.FreeUdpPort();
        await using var victim = await Net.StartAsync(Options("r6-server", port));
        victim.Register("many", kwargs => new object?[(long)kwargs["n"]!]);
        victim.Register("echo", kwargs => kwargs.GetValueOrDefault("value"));
        await using var caller = await Net.StartAsync(Options("r6-caller", port, maxKwargsElements: 1000));
        await caller.Peers.WaitForAsync("r6-server").Within();

        Assert.Equal(999, Assert.IsType<object?[]>(await caller.RequestAsync("r6-server", "many", Net.Kw("n", 999)).Within()).Length);
        var dynamic = await Assert.ThrowsAsync<P2PException>(() => caller.RequestAsync("r6-server", "many", Net.Kw("n", 1000)).Within());
        var typed = await Assert.ThrowsAsync<P2PException>(() => caller.RequestAsync<object>("r6-server", "many", Net.Kw("n", 1000)).Within());
        Assert.Contains("MaxKwargsElements", dynamic.Message, StringComparison.Ordinal);
        Assert.Contains("MaxKwargsElements", typed.Message, StringComparison.Ordinal);
        output.WriteLine($"R6 caller budget 1000: a 999-element result read; 1000 elements -> {dynamic.GetType().Name}: {dynamic.Message}");
        await Net.AssertServesAsync(caller, "r6-server");
    }

    /// <summary>A node whose <c>hold</c> function keeps its kwargs until released, and counts the calls that started.</summary>
    internal sealed class HoldingVictim : IAsyncDisposable
    {
        private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly object _gate = new();
        private readonly List<TaskCompletionSource> _waiters = [];
        private int _started;

        private HoldingVictim(Node node) => Node = node;

        public Node Node { get; }

        public int Started => Volatile.Read(ref _started);

        public static async Task<HoldingVictim> StartAsync(NodeOptions options)
        {
            var victim = new HoldingVictim(await Net.StartAsync(options));
            victim.Node.Register("echo", kwargs => kwargs.GetValueOrDefault("value"));
            victim.Node.Register("hold", async (kwargs, ct) =>
            {
                victim.OnStarted();
                await victim._release.Task.WaitAsync(ct);
                return (long)kwargs.Count;
            });
            return victim;
        }

        public void Release() => _release.TrySetResult();

        /// <summary>Completes once <paramref name="count"/> calls started; callers bound the wait (<see cref="Net.Within(Task)"/>).</summary>
        public async Task WaitStartedAsync(int count)
        {
            TaskCompletionSource waiter;
            lock (_gate)
            {
                if (_started >= count)
                    return;
                waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _waiters.Add(waiter);
            }

            while (true)
            {
                await waiter.Task;
                lock (_gate)
                {
                    if (_started >= count)
                        return;
                    waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    _waiters.Add(waiter);
                }
            }
        }

        private void OnStarted()
        {
            List<TaskCompletionSource> waiters;
            lock (_gate)
            {
                _started++;
                waiters = [.. _waiters];
                _waiters.Clear();
            }

            foreach (var waiter in waiters)
                waiter.TrySetResult();
        }

        public async ValueTask DisposeAsync()
        {
            Release();
            await Node.DisposeAsync();
        }
    }

    [Theory]
    [InlineData("elements")]
    [InlineData("bytes")]
    public async Task R6_requests_over_the_node_wide_cap_on_work_in_flight_are_refused_as_busy_until_room_frees(string cap)
    {
        var options = cap == "elements"
            ? Options("r6-inflight", Net.FreeUdpPort(), maxKwargsElements: 1000, elementsInFlight: 2000)
            : Options("r6-inflight", Net.FreeUdpPort(), maxFrameSize: 64 * 1024, bytesInFlight: 100 * 1024);
        await using var victim = await HoldingVictim.StartAsync(options);
        // Each request holds 903 values (elements) or a 40 KiB frame (bytes): two fit under the cap, three do not.
        var value = cap == "elements" ? ArrayOf(900, 0xC0) : Net.Pack(b => b.Do((ref MessagePackWriter w) => w.Write(new byte[40 * 1024])));
        var callers = new List<RawPeer>();
        try
        {
            for (var i = 0; i < 3; i++)
                callers.Add(await RawPeer.ConnectWithHelloAsync(victim.Node.ServiceEndPoint, "holder" + i));
            await callers[0].SendFrameAsync(RawPeer.Request(1, "hold", ValueKwargs(value)));
            await callers[1].SendFrameAsync(RawPeer.Request(1, "hold", ValueKwargs(value)));
            await victim.WaitStartedAsync(2).Within();

            await callers[2].SendFrameAsync(RawPeer.Request(1, "hold", ValueKwargs(value)));
            var (kind, _, code, _, message) = Error((await callers[2].ReadFrameAsync())!);
            Assert.Equal((ErrorKind, Busy), (kind, code));
            Assert.Contains(cap == "elements" ? "MaxKwargsElementsInFlight" : "MaxRequestBytesInFlight", message, StringComparison.Ordinal);
            Assert.Equal(2, victim.Started);

            victim.Release();
            Assert.Equal(ResultKind, RawPeer.Describe((await callers[0].ReadFrameAsync())!).Kind);
            Assert.Equal(ResultKind, RawPeer.Describe((await callers[1].ReadFrameAsync())!).Kind);
            // Room is given back once the requests finish.
            await callers[2].SendFrameAsync(RawPeer.Request(2, "hold", ValueKwargs(value)));
            Assert.Equal(ResultKind, RawPeer.Describe((await callers[2].ReadFrameAsync())!).Kind);
            output.WriteLine($"R6 work in flight ({cap}): 2 requests held, the 3rd refused with error {code}: \"{message}\"; admitted once they finished");
        }
        finally
        {
            foreach (var caller in callers)
                caller.Dispose();
        }
    }

    [Fact]
    public async Task R10_an_error_larger_than_the_callers_frame_limit_is_cut_to_fit_and_the_connection_keeps_its_calls()
    {
        var port = Net.FreeUdpPort();
        await using var victim = await HoldingVictim.StartAsync(Options("r10-server", port));
        victim.Node.Register("quote", kwargs => throw new InvalidOperationException($"bad '{kwargs["value"]}', once more '{kwargs["value"]}'"));
        const int Limit = 64 * 1024;
        await using var caller = await Net.StartAsync(Options("r10-caller", port, maxFrameSize: Limit));
        await caller.Peers.WaitForAsync("r10-server").Within();

        var held = caller.RequestAsync("r10-server", "hold", Net.Kw("value", "x"));
        await victim.WaitStartedAsync(1).Within();
        var value = new string('v', 40 * 1024); // the request fits; the message quotes it twice, so 80 KiB
        var remote = await Assert.ThrowsAsync<RemoteException>(() => caller.RequestAsync("r10-server", "quote", Net.Kw("value", value)).Within());
        Assert.StartsWith("bad 'vvv", remote.RemoteMessage, StringComparison.Ordinal);
        Assert.EndsWith("\u2026", remote.RemoteMessage, StringComparison.Ordinal);
        Assert.True(Encoding.UTF8.GetByteCount(remote.RemoteMessage) < Limit);
        var notFound = await Assert.ThrowsAsync<MethodNotFoundException>(() => caller.RequestAsync("r10-server", new string('n', Limit - 100)).Within());

        // The call in flight on the same connection was not lost with an oversized frame.
        victim.Release();
        Assert.Equal(1L, await held.Within());
        await Net.AssertServesAsync(caller, "r10-server");
        output.WriteLine($"R10 caller limit {Limit}: RemoteException with a {remote.RemoteMessage.Length}-char message (of {value.Length * 2 + 25}); MethodNotFound for a {Limit - 100}-char name: {notFound.Message.Length} chars; the held call completed");
    }

    [Theory]
    [InlineData(4096, 'n')]
    [InlineData(4096, '\u20AC')]
    [InlineData(20_000, '\u20AC')]
    public async Task R10_a_raw_callers_frame_limit_bounds_every_error_it_gets(int limit, char letter)
    {
        await using var victim = await Net.StartAsync(Options("r10-raw", Net.FreeUdpPort()));
        victim.Register("echo", kwargs => kwargs.GetValueOrDefault("value"));
        using var raw = await RawPeer.ConnectWithHelloAsync(victim.ServiceEndPoint, maxFrameSize: limit);
        var name = new string(letter, Math.Min(limit, 60_000)); // 3 bytes each for the euro sign

        await raw.SendFrameAsync(RawPeer.Request(1, name, Net.Pack(b => b.Map(0))));
        var reply = (await raw.ReadFrameAsync())!;
        var (kind, id, code, _, message) = Error(reply);
        Assert.Equal((ErrorKind, 1u, MethodNotFound), (kind, id, code));
        Assert.True(reply.Length <= limit, $"an error frame of {reply.Length} bytes for a caller whose limit is {limit}");
        Assert.Contains(letter + "\u2026", message, StringComparison.Ordinal);

        await raw.SendFrameAsync(RawPeer.Request(2, "echo", Net.Pack(b => b.Map(1).Str("value").Str("ok"))));
        Assert.Equal(ResultKind, RawPeer.Describe((await raw.ReadFrameAsync())!).Kind);
        output.WriteLine($"R10 limit {limit}, a {name.Length}-char name of '{letter}': error frame of {reply.Length} bytes; the connection kept serving");
    }

    [Fact]
    public void R10_cutting_a_message_never_splits_a_character_and_fits_the_bytes_given()
    {
        var text = string.Concat(Enumerable.Repeat("a\u00E9\u20AC\U0001F600", 1000));
        for (var max = 0; max < 200; max++)
        {
            var cut = Protocol.Messages.CutToUtf8Bytes(text, max);
            Assert.True(Encoding.UTF8.GetByteCount(cut) <= max);
            Assert.DoesNotContain('\uFFFD', Encoding.UTF8.GetString(Encoding.UTF8.GetBytes(cut)));
        }

        Assert.Same(text, Protocol.Messages.CutToUtf8Bytes(text, Encoding.UTF8.GetByteCount(text)));
    }

    public static TheoryData<string, byte[]> InvalidUtf8 => new()
    {
        { "string value ff fe 41 42", ValueKwargs([0xA4, 0xFF, 0xFE, 0x41, 0x42]) },
        { "two keys ff and fe", [0x82, 0xA1, 0xFF, 0x01, 0xA1, 0xFE, 0x02] },
        { "nested map keys ff and fe", ValueKwargs([0x82, 0xA1, 0xFF, 0x01, 0xA1, 0xFE, 0x02]) },
        { "string in an array", ValueKwargs([0x92, 0xA1, 0x41, 0xA1, 0x80]) },
        { "overlong encoding of '/'", ValueKwargs([0xA2, 0xC0, 0xAF]) },
        { "UTF-16 surrogate encoded as UTF-8", ValueKwargs([0xA3, 0xED, 0xA0, 0x80]) },
        { "truncated sequence", ValueKwargs([0xA2, 0xE2, 0x82]) },
    };

    [Theory]
    [MemberData(nameof(InvalidUtf8))]
    public async Task U1_invalid_UTF8_in_a_string_or_key_is_invalid_kwargs_and_never_replaced(string name, byte[] kwargs)
    {
        await using var victim = await Net.StartAsync(Options("u1-victim", Net.FreeUdpPort()));
        victim.Register("echo", kw => kw.GetValueOrDefault("value"));
        using var raw = await RawPeer.ConnectWithHelloAsync(victim.ServiceEndPoint);

        await raw.SendFrameAsync(RawPeer.Request(1, "echo", kwargs));
        var (kind, _, code, _, message) = Error((await raw.ReadFrameAsync())!);
        Assert.Equal((ErrorKind, InvalidKwargs), (kind, code));
        Assert.Contains("UTF-8", message, StringComparison.Ordinal);

        // Valid multi-byte text still round-trips.
        const string Text = "caf\u00E9 \u20AC \U0001F600";
        await raw.SendFrameAsync(RawPeer.Request(2, "echo", Net.Pack(b => b.Map(1).Str("value").Str(Text))));
        var reader = new MessagePackReader(await raw.ReadFrameAsync());
        reader.ReadArrayHeader();
        Assert.Equal(ResultKind, reader.ReadInt32());
        reader.ReadUInt32();
        Assert.Equal(Text, reader.ReadString());
        output.WriteLine($"U1 {name}: error {code} \"{message}\"");
    }

    /// <summary>Serves one function whose result is raw MessagePack bytes, as a hostile or broken peer might send.</summary>
    private sealed class RawResult(byte[] result) : IServiceDispatcher
    {
        public IReadOnlyList<FunctionDescriptor> Functions { get; } = [FunctionDescriptor.Dynamic("raw")];

        public ValueTask InvokeAsync(FunctionCall request)
        {
            request.Result.Write(result);
            return default;
        }
    }

    [Fact]
    public async Task U1_a_result_with_invalid_UTF8_fails_the_call_on_the_caller()
    {
        var port = Net.FreeUdpPort();
        await using var server = await Net.StartAsync(Options("u1-server", port));
        server.Register(new RawResult([0x92, 0xA1, 0x41, 0xA4, 0xFF, 0xFE, 0x41, 0x42]));
        await using var caller = await Net.StartAsync(Options("u1-caller", port));
        await caller.Peers.WaitForAsync("u1-server").Within();

        var error = await Assert.ThrowsAsync<P2PException>(() => caller.RequestAsync("u1-server", "raw").Within());
        Assert.Contains("UTF-8", error.Message, StringComparison.Ordinal);
        output.WriteLine($"U1 caller side: {error.GetType().Name}: {error.Message}");
    }
}
