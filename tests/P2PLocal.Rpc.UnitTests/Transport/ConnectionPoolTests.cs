using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using MessagePack;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Protocol;
using P2PLocal.Rpc.Testing;
using P2PLocal.Rpc.Transport;

namespace P2PLocal.Rpc.UnitTests.Transport;

/// <summary>
/// The pool of outgoing connections over scripted in-memory peers: one connection per peer instance, opened once for
/// concurrent callers, replaced after it closed, not kept after a failed connect, reaped when idle or stalled on the
/// node's clock, closed at shutdown.
/// </summary>
public class ConnectionPoolTests
{
    private static readonly PeerAddress s_bob = new("bob", "bob-1", ScriptedPeer.EndPoint, null);

    /// <summary>Every dial makes a new scripted peer, which answers the hello as <see cref="InstanceId"/> (or as <see cref="Answer"/> says).</summary>
    private sealed class PeerFarm
    {
        private readonly Channel<ScriptedPeer> _dialled = Channel.CreateUnbounded<ScriptedPeer>();
        private int _dials;

        public string InstanceId { get; set; } = "bob-1";

        public long PeerIdleTimeoutMs { get; set; }

        public PipeOptions? ToPeer { get; set; }

        /// <summary>Dials wait for this before they return (null: at once).</summary>
        public TaskCompletionSource? Gate { get; set; }

        /// <summary>Dials fail with this at once (null: they connect).</summary>
        public Exception? DialError { get; set; }

        /// <summary>How the peer answers the caller's hello; a hello of <see cref="InstanceId"/> by default.</summary>
        public WriteMessage? Answer { get; set; }

        public int Dials => Volatile.Read(ref _dials);

        public async ValueTask<(Socket Socket, Stream Stream)> Dial(IPEndPoint endPoint, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _dials);
            if (DialError is { } error)
                throw error;
            if (Gate is { } gate)
                await gate.Task.WaitAsync(cancellationToken);
            var peer = new ScriptedPeer(ToPeer);
            _dialled.Writer.TryWrite(peer);
            var answer = Answer ?? ScriptedPeer.HelloOf(InstanceId, idleTimeoutMs: PeerIdleTimeoutMs);
            _ = Task.Run(async () =>
            {
                await peer.ReadAsync(MessageKind.Hello);
                await peer.SendAsync(answer);
            }, CancellationToken.None);
            return await peer.Dial(endPoint, cancellationToken);
        }

        /// <summary>The peer of the next dial, in dial order.</summary>
        public Task<ScriptedPeer> NextAsync() => _dialled.Reader.ReadAsync().AsTask().Within();
    }

    /// <summary>Keeps every message logged.</summary>
    private sealed class RecordingLogger : ILogger
    {
        public ConcurrentQueue<string> Lines { get; } = new();

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Lines.Enqueue(formatter(state, exception));
    }

    private static ConnectionPool Pool(PeerFarm farm, NodeOptions? options = null, Action<PeerAddress>? restarted = null, ILogger? logger = null) =>
        new(ScriptedPeer.CallerHello, ScriptedPeer.Options, options ?? Options(), null, logger ?? NullLogger.Instance, restarted ?? (_ => { }), farm.Dial);

    private static NodeOptions Options(TimeProvider? clock = null) => new(LoopbackNodes.Options("alice", 1))
    {
        ConnectTimeout = TimeSpan.FromSeconds(20),
        TimeProvider = clock ?? TimeProvider.System,
    };

    [Fact]
    public async Task Concurrent_callers_share_one_connect_per_instance()
    {
        var farm = new PeerFarm { Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) };
        await using var pool = Pool(farm);
        var callers = Enumerable.Range(0, 8).Select(_ => pool.GetAsync(s_bob, CancellationToken.None)).ToArray();
        Assert.False(pool.TryGetOpen("bob-1", out _)); // still opening
        Assert.Empty(pool.Connections);
        farm.Gate.SetResult();

        var connections = await Task.WhenAll(callers).Within();
        Assert.Single(connections.Distinct());
        Assert.Equal(1, farm.Dials);
        Assert.Same(connections[0], Assert.Single(pool.Connections));
        Assert.True(pool.TryGetOpen("bob-1", out var open));
        Assert.Same(connections[0], open);
        Assert.Same(connections[0], await pool.GetAsync(s_bob, CancellationToken.None).Within());
        Assert.Equal(1, farm.Dials);
    }

    [Fact]
    public async Task Each_instance_gets_its_own_connection()
    {
        var farm = new PeerFarm { Answer = null };
        await using var pool = Pool(farm);
        var first = await pool.GetAsync(s_bob, CancellationToken.None).Within();
        farm.InstanceId = "carol-1";
        var second = await pool.GetAsync(new PeerAddress("carol", "carol-1", ScriptedPeer.EndPoint, null), CancellationToken.None).Within();
        Assert.NotSame(first, second);
        Assert.Equal(2, pool.Connections.Count);
        Assert.Equal(2, farm.Dials);
        Assert.False(pool.TryGetOpen("dave-1", out _));
    }

    [Fact]
    public async Task A_closed_connection_is_forgotten_and_replaced()
    {
        var farm = new PeerFarm();
        await using var pool = Pool(farm);
        var first = await pool.GetAsync(s_bob, CancellationToken.None).Within();
        (await farm.NextAsync()).Close();
        await first.Closed.Within();
        Assert.False(pool.TryGetOpen("bob-1", out _));
        await Patience.Until(() => pool.Connections.Count == 0); // forgotten by its own close

        var second = await pool.GetAsync(s_bob, CancellationToken.None).Within();
        Assert.NotSame(first, second);
        Assert.False(second.IsClosed);
        Assert.Equal(2, farm.Dials);
    }

    [Fact]
    public async Task A_closed_connection_still_listed_is_replaced_on_the_next_get()
    {
        var farm = new PeerFarm();
        await using var pool = Pool(farm);
        var first = await pool.GetAsync(s_bob, CancellationToken.None).Within();
        first.Close(); // its close continuation may not have run yet: neither TryGetOpen nor GetAsync hands it out
        Assert.False(pool.TryGetOpen("bob-1", out _));
        var second = await pool.GetAsync(s_bob, CancellationToken.None).Within();
        Assert.NotSame(first, second);
        Assert.False(second.IsClosed);

        // The first connection's late close handling does not forget its successor.
        await first.Closed.Within();
        await Patience.Until(() => pool.Connections.Count == 1);
        Assert.True(pool.TryGetOpen("bob-1", out var open));
        Assert.Same(second, open);
    }

    [Fact]
    public async Task Opened_and_closed_connections_are_logged_with_the_reason()
    {
        var farm = new PeerFarm();
        var logger = new RecordingLogger();
        await using var pool = Pool(farm, logger: logger);
        var connection = await pool.GetAsync(s_bob, CancellationToken.None).Within();
        Assert.Equal(new[] { "Opened outbound connection with ?" }, logger.Lines);

        connection.Close(new IOException("test close"));
        await Patience.Until(() => logger.Lines.Count == 2);
        Assert.Equal("Closed outbound connection with ?: test close", logger.Lines.Last());
    }

    [Fact]
    public async Task A_failed_connect_is_not_kept_and_the_next_get_dials_again()
    {
        var farm = new PeerFarm
        {
            Answer = (ref MessagePackWriter writer) => Messages.WriteRefusal(ref writer, ErrorCode.Busy, Messages.NodeFullType, "full"),
        };
        await using var pool = Pool(farm);
        var error = await Assert.ThrowsAsync<PeerBusyException>(() => pool.GetAsync(s_bob, CancellationToken.None).Within());
        Assert.Equal("Peer 'bob' at ? refused the connection: full", error.Message);
        Assert.Empty(pool.Connections);

        farm.Answer = null;
        var connection = await pool.GetAsync(s_bob, CancellationToken.None).Within();
        Assert.False(connection.IsClosed);
        Assert.Equal(2, farm.Dials);
    }

    [Fact]
    public async Task A_failed_connect_is_not_kept_when_its_caller_had_already_given_up()
    {
        var farm = new PeerFarm { DialError = new IOException("refused by the test") };
        await using var pool = Pool(farm);
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();

        // The dial fails before the caller's token is looked at: the caller hears of the failure, and the pool forgets it.
        var error = await Assert.ThrowsAsync<PeerConnectionException>(() => pool.GetAsync(s_bob, cts.Token).Within());
        Assert.Equal("Cannot connect to peer 'bob' at 127.0.0.1:45123: refused by the test", error.Message);

        farm.DialError = null;
        var connection = await pool.GetAsync(s_bob, CancellationToken.None).Within();
        Assert.False(connection.IsClosed);
        Assert.Equal(2, farm.Dials);
    }

    [Fact]
    public async Task A_connection_still_closing_is_replaced_and_its_late_close_does_not_forget_the_successor()
    {
        var farm = new PeerFarm();
        var logger = new RecordingLogger();
        await using var pool = Pool(farm, logger: logger);
        var first = await pool.GetAsync(s_bob, CancellationToken.None).Within();
        using var closeReached = new ManualResetEventSlim();
        using var closeMayEnd = new ManualResetEventSlim();
        var heldUntilLetGo = true;
        (await farm.NextAsync()).Connection.Client.Disposing = () =>
        {
            closeReached.Set();
            heldUntilLetGo &= closeMayEnd.Wait(Patience.Limit);
        };

        // Held half-way: closed, but its close handling (the pool forgetting it) has not run.
        var closing = Task.Run(() => first.Close(new IOException("test close")));
        Assert.True(closeReached.Wait(Patience.Limit));
        Assert.True(first.IsClosed);
        Assert.False(first.Closed.IsCompleted);
        Assert.Same(first, Assert.Single(pool.Connections));

        var second = await pool.GetAsync(s_bob, CancellationToken.None).Within();
        Assert.NotSame(first, second);
        Assert.False(second.IsClosed);

        closeMayEnd.Set();
        await closing.Within();
        await Patience.Until(() => logger.Lines.Contains("Closed outbound connection with ?: test close"));
        Assert.True(pool.TryGetOpen("bob-1", out var open));
        Assert.Same(second, open);
        Assert.Same(second, Assert.Single(pool.Connections));
        Assert.Equal(2, farm.Dials);
        Assert.True(heldUntilLetGo); // the successor came while the close was held, not after the hold gave up
    }

    [Fact]
    public async Task A_restarted_peer_is_reported_and_not_kept()
    {
        var farm = new PeerFarm { InstanceId = "bob-2" };
        var reported = new List<PeerAddress>();
        await using var pool = Pool(farm, restarted: reported.Add);
        await Assert.ThrowsAsync<PeerRestartedException>(() => pool.GetAsync(s_bob, CancellationToken.None).Within());
        Assert.Equal(new[] { s_bob }, reported);
        Assert.Empty(pool.Connections);
        await Assert.ThrowsAsync<PeerRestartedException>(() => pool.GetAsync(s_bob, CancellationToken.None).Within());
        Assert.Equal(2, farm.Dials);
    }

    [Fact]
    public async Task A_caller_that_gives_up_leaves_the_connect_to_the_others()
    {
        var farm = new PeerFarm { Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) };
        await using var pool = Pool(farm);
        using var cts = new CancellationTokenSource();
        var impatient = pool.GetAsync(s_bob, cts.Token);
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => impatient.Within());

        var patient = pool.GetAsync(s_bob, CancellationToken.None);
        farm.Gate.SetResult();
        Assert.False((await patient.Within()).IsClosed);
        Assert.Equal(1, farm.Dials);
    }

    [Fact]
    public async Task The_pools_options_reach_its_connections()
    {
        var farm = new PeerFarm();
        var clock = new FakeTimeProvider();
        await using var pool = Pool(farm, new NodeOptions(Options(clock)) { InlineCompletions = true });
        var connection = await pool.GetAsync(s_bob, CancellationToken.None).Within();
        Assert.True(connection.InlineCompletions);
        Assert.Same(clock, connection.Clock);
    }

    [Theory]
    [InlineData(0L, 60)]        // the peer did not say: half our own 120 s
    [InlineData(40_000L, 20)]   // the peer's 40 s is shorter: half of it
    [InlineData(600_000L, 60)]  // ours is shorter
    public async Task An_idle_connection_is_reaped_after_half_the_shorter_idle_timeout(long peerIdleMs, int reapedAfterSeconds)
    {
        var clock = new FakeTimeProvider();
        var farm = new PeerFarm { PeerIdleTimeoutMs = peerIdleMs };
        await using var pool = Pool(farm, new NodeOptions(Options(clock)) { IdleConnectionTimeout = TimeSpan.FromSeconds(120) });
        var connection = await pool.GetAsync(s_bob, CancellationToken.None).Within();

        clock.Advance(TimeSpan.FromSeconds(reapedAfterSeconds - 1));
        pool.Reap();
        Assert.False(connection.IsClosed);
        clock.Advance(TimeSpan.FromSeconds(2));
        pool.Reap();
        Assert.True(connection.IsClosed);
        Assert.Null(await connection.Closed.Within());
        Assert.True(await (await farm.NextAsync()).ReadsEndAsync());
    }

    [Fact]
    public async Task A_connection_with_a_call_in_flight_is_not_reaped()
    {
        var clock = new FakeTimeProvider();
        var farm = new PeerFarm();
        await using var pool = Pool(farm, new NodeOptions(Options(clock)) { IdleConnectionTimeout = TimeSpan.FromSeconds(120) });
        var connection = await pool.GetAsync(s_bob, CancellationToken.None).Within();
        var peer = await farm.NextAsync();

        var call = connection.InvokeAsync("f", 1, ScriptedPeer.WriteX, ScriptedPeer.ReadInt, ScriptedPeer.Forever, CancellationToken.None).AsTask();
        var request = await peer.ReadAsync(MessageKind.Request);
        clock.Advance(TimeSpan.FromSeconds(100));
        pool.Reap();
        Assert.False(connection.IsClosed);

        await peer.ReplyAsync(request.Id, 1);
        Assert.Equal(1, await call.Within());
        pool.Reap(); // the call was made 100 s ago and nothing is in flight now
        Assert.True(connection.IsClosed);
    }

    [Fact]
    public async Task A_call_restarts_the_idle_time()
    {
        var clock = new FakeTimeProvider();
        var farm = new PeerFarm();
        await using var pool = Pool(farm, new NodeOptions(Options(clock)) { IdleConnectionTimeout = TimeSpan.FromSeconds(120) });
        var connection = await pool.GetAsync(s_bob, CancellationToken.None).Within();
        var peer = await farm.NextAsync();

        clock.Advance(TimeSpan.FromSeconds(50));
        var call = connection.InvokeAsync("f", 1, ScriptedPeer.WriteX, ScriptedPeer.ReadInt, ScriptedPeer.Forever, CancellationToken.None).AsTask();
        await peer.ReplyAsync((await peer.ReadAsync(MessageKind.Request)).Id, 1);
        Assert.Equal(1, await call.Within());

        clock.Advance(TimeSpan.FromSeconds(50)); // 100 s since the connect, 50 s since the call
        pool.Reap();
        Assert.False(connection.IsClosed);
        clock.Advance(TimeSpan.FromSeconds(11));
        pool.Reap();
        Assert.True(connection.IsClosed);
    }

    [Fact]
    public async Task A_stalled_connection_is_closed_by_the_reaper()
    {
        var clock = new FakeTimeProvider();
        var farm = new PeerFarm { ToPeer = new PipeOptions(pauseWriterThreshold: 1024, resumeWriterThreshold: 512, useSynchronizationContext: false) };
        await using var pool = Pool(farm, new NodeOptions(Options(clock))
        {
            MaxBufferedBytesPerConnection = 4096,
            StalledConnectionTimeout = TimeSpan.FromSeconds(30),
            IdleConnectionTimeout = TimeSpan.FromHours(1),
        });
        var connection = await pool.GetAsync(s_bob, CancellationToken.None).Within();
        var calls = Enumerable.Range(0, 3).Select(_ => connection.InvokeAsync("fill", new string('p', 1500),
            static (ref MessagePackWriter writer, string text, MessagePackSerializerOptions _) => writer.Write(text),
            ScriptedPeer.ReadInt, ScriptedPeer.Forever, CancellationToken.None).AsTask()).ToArray();
        await Patience.Until(() => connection.QueuedSendBytes > 4096);

        clock.Advance(TimeSpan.FromSeconds(29));
        pool.Reap();
        Assert.False(connection.IsClosed);
        clock.Advance(TimeSpan.FromSeconds(2));
        pool.Reap();
        Assert.True(connection.IsClosed);
        Assert.StartsWith("Closed: ", Assert.IsType<IOException>(await connection.Closed.Within()).Message, StringComparison.Ordinal);
        foreach (var call in calls)
            await Assert.ThrowsAsync<PeerConnectionException>(() => call.Within());
    }

    [Fact]
    public async Task Drop_closes_a_connection_that_goes_elsewhere()
    {
        var farm = new PeerFarm();
        await using var pool = Pool(farm);
        var connection = await pool.GetAsync(s_bob, CancellationToken.None).Within();
        pool.Drop("carol-1", ScriptedPeer.EndPoint); // another instance: nothing happens
        Assert.False(connection.IsClosed);

        pool.Drop("bob-1", new IPEndPoint(IPAddress.Loopback, 45999)); // an in-memory connection goes to no endpoint: moved
        Assert.True(connection.IsClosed);
        Assert.False(pool.TryGetOpen("bob-1", out _));
        Assert.Empty(pool.Connections);
    }

    [Fact]
    public async Task A_connection_dropped_from_the_pool_still_has_its_close_logged()
    {
        var farm = new PeerFarm();
        var logger = new RecordingLogger();
        await using var pool = Pool(farm, logger: logger);
        var connection = await pool.GetAsync(s_bob, CancellationToken.None).Within();

        // Drop forgets it first, so its close handling finds no entry of its own.
        pool.Drop("bob-1", new IPEndPoint(IPAddress.Loopback, 45999));
        Assert.True(connection.IsClosed);
        await Patience.Until(() => logger.Lines.Count == 2);
        Assert.Equal("Closed outbound connection with ?: closed in order", logger.Lines.Last());
    }

    [Fact]
    public async Task AnswersAt_checks_the_instance_on_a_connection_it_does_not_keep()
    {
        var farm = new PeerFarm();
        await using var pool = Pool(farm);
        Assert.True(await pool.AnswersAtAsync(s_bob, ScriptedPeer.EndPoint, CancellationToken.None).Within());
        Assert.Empty(pool.Connections);
        Assert.True(await (await farm.NextAsync()).ReadsEndAsync()); // closed after the check

        farm.InstanceId = "bob-2";
        Assert.False(await pool.AnswersAtAsync(s_bob, ScriptedPeer.EndPoint, CancellationToken.None).Within());
        Assert.Equal(2, farm.Dials);
    }

    [Fact]
    public async Task Dispose_closes_every_connection_and_the_pool_refuses_new_work()
    {
        var farm = new PeerFarm();
        var pool = Pool(farm);
        var bob = await pool.GetAsync(s_bob, CancellationToken.None).Within();
        farm.InstanceId = "carol-1";
        var carol = await pool.GetAsync(new PeerAddress("carol", "carol-1", ScriptedPeer.EndPoint, null), CancellationToken.None).Within();

        await pool.DisposeAsync().AsTask().Within();
        Assert.True(bob.IsClosed);
        Assert.True(carol.IsClosed);
        Assert.Empty(pool.Connections);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => pool.GetAsync(s_bob, CancellationToken.None).Within());
        Assert.False(await pool.AnswersAtAsync(s_bob, ScriptedPeer.EndPoint, CancellationToken.None).Within());
        Assert.Equal(2, farm.Dials);
        await pool.DisposeAsync().AsTask().Within(); // idempotent
    }

    [Fact]
    public async Task Dispose_waits_for_a_connect_in_progress_and_closes_it()
    {
        var farm = new PeerFarm { Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) };
        var pool = Pool(farm);
        var getting = pool.GetAsync(s_bob, CancellationToken.None);
        await Patience.Until(() => farm.Dials == 1);
        var disposing = pool.DisposeAsync().AsTask();
        farm.Gate.SetResult();
        await disposing.Within();

        // The connect finished after the pool was disposed: its caller is told, and the peer sees the close.
        var error = await Assert.ThrowsAsync<ObjectDisposedException>(() => getting.Within());
        Assert.Equal("ConnectionPool", error.ObjectName); // thrown where the connect ends, not by the next loop's check
        Assert.True(await (await farm.NextAsync()).ReadsEndAsync());
    }
}
