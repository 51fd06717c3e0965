using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using P2PLocal.Rpc;
using P2PLocal.Rpc.Hosting;

namespace P2PLocal.Rpc.Hosting.Tests;

public class HostTests
{
    [Fact]
    public async Task Host_start_serves_a_DI_built_service_and_a_function_to_a_second_node()
    {
        var port = LoopbackPorts.FreeUdpPort();
        var builder = TestNetwork.HostBuilder(TestNetwork.Settings("hosted", port));
        builder.Services.AddSingleton(new Salutation { Word = "Howdy" });
        builder.AddNode()
            .AddService<Greeter>()
            .AddFunction("echo", kwargs => kwargs["text"]);
        using var host = builder.Build();
        await host.StartAsync().Within();

        await using var caller = await TestNetwork.StartNodeAsync("caller", port);
        await caller.Peers.WaitForAsync("hosted").Within();
        Assert.Equal("Howdy, Ann", caller.Peers.Get<IGreeter>("hosted").Greet("Ann"));
        Assert.Equal("hi", await caller.RequestAsync<string>("hosted", "echo", new Dictionary<string, object?> { ["text"] = "hi" }).Within());

        await host.StopAsync().Within();
    }

    [Fact]
    public async Task Host_stop_says_goodbye_then_drains_the_call_in_flight()
    {
        var port = LoopbackPorts.FreeUdpPort();
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var builder = TestNetwork.HostBuilder(TestNetwork.Settings("draining", port));
        builder.AddNode().AddFunction("slow", async (_, _) =>
        {
            entered.SetResult();
            await release.Task;
            return "finished";
        });
        using var host = builder.Build();
        await host.StartAsync().Within();

        await using var caller = await TestNetwork.StartNodeAsync("caller", port);
        await caller.Peers.WaitForAsync("draining").Within();
        var left = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        caller.Peers.Left += (_, peer) => { if (peer.Name == "draining") left.TrySetResult(); };

        var call = caller.RequestAsync<string>("draining", "slow");
        await entered.Task.Within();
        var stopping = host.StopAsync();
        await left.Task.Within();               // the goodbye went out while the call still runs
        Assert.False(stopping.IsCompleted);     // and the host waits for it
        release.SetResult();
        Assert.Equal("finished", await call.Within());
        await stopping.Within();
        Assert.True(host.Services.GetRequiredService<Node>().IsDisposedForTests());
    }

    [Fact]
    public async Task Host_stop_returns_within_the_hosts_shutdown_timeout_when_a_call_outlasts_it()
    {
        var port = LoopbackPorts.FreeUdpPort();
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var builder = TestNetwork.HostBuilder(TestNetwork.Settings("stubborn", port));   // grace period 5 s
        builder.AddNode().AddFunction("forever", async (_, ct) =>
        {
            entered.SetResult();
            await Task.Delay(Timeout.Infinite, ct);
            return null;
        });
        using var host = builder.Build();
        await host.StartAsync().Within();
        await using var caller = await TestNetwork.StartNodeAsync("caller", port);
        await caller.Peers.WaitForAsync("stubborn").Within();
        var call = caller.RequestAsync("stubborn", "forever");
        await entered.Task.Within();

        var shutdownTimeout = TimeSpan.FromMilliseconds(300);
        using var timeout = new CancellationTokenSource(shutdownTimeout);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await host.StopAsync(timeout.Token).Within();

        Assert.InRange(clock.Elapsed, TimeSpan.Zero, 3 * shutdownTimeout + TimeSpan.FromSeconds(1)); // not the 5 s grace
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call.Within()); // the handler is cancelled when the 5 s grace ends
    }

    [Fact]
    public async Task A_registration_that_fails_fails_the_start_before_the_node_binds_and_the_host_disposes_it()
    {
        var port = LoopbackPorts.FreeUdpPort();
        var builder = TestNetwork.HostBuilder(TestNetwork.Settings("failing", port));
        builder.AddNode().AddFunction("twice", _ => 1).AddFunction("twice", _ => 2);
        var host = builder.Build();

        var error = await Assert.ThrowsAsync<ArgumentException>(() => host.StartAsync());
        Assert.Contains("twice", error.Message, StringComparison.Ordinal);
        var node = host.Services.GetRequiredService<Node>();
        Assert.Throws<InvalidOperationException>(() => node.ServiceEndPoint);   // registered first, started after: never bound
        await ((IAsyncDisposable)host).DisposeAsync();
        Assert.True(node.IsDisposedForTests());
    }

    [Fact]
    public async Task A_start_that_fails_after_the_node_started_still_stops_the_node_when_the_host_is_disposed()
    {
        var port = LoopbackPorts.FreeUdpPort();
        var builder = TestNetwork.HostBuilder(TestNetwork.Settings("failing", port));
        builder.AddNode().AddFunction("one", _ => 1);
        builder.Services.AddHostedService<FailingAfterNode>();     // starts after the node's hosted service
        var host = builder.Build();
        await using var caller = await TestNetwork.StartNodeAsync("caller", port);
        var left = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        caller.Peers.Left += (_, peer) => { if (peer.Name == "failing") left.TrySetResult(); };

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => host.StartAsync());
        Assert.Equal(FailingAfterNode.Message, error.Message);
        await caller.Peers.WaitForAsync("failing").Within();   // the node had started before the next service failed
        await ((IAsyncDisposable)host).DisposeAsync();
        await left.Task.Within();                               // its goodbye: it was stopped, its sockets closed
    }

    private sealed class FailingAfterNode : Microsoft.Extensions.Hosting.IHostedService
    {
        public const string Message = "the next hosted service failed";

        public Task StartAsync(CancellationToken cancellationToken) => throw new InvalidOperationException(Message);

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    [Fact]
    public async Task Node_and_PeerDirectory_are_injectable_and_logging_and_clock_come_from_DI()
    {
        var port = LoopbackPorts.FreeUdpPort();
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var logs = new CapturingLoggerProvider();
        var builder = TestNetwork.HostBuilder(TestNetwork.Settings("injected", port));
        builder.Services.AddSingleton<TimeProvider>(clock);
        builder.Logging.AddProvider(logs);
        builder.Logging.SetMinimumLevel(LogLevel.Debug);
        builder.Services.AddSingleton<NeedsNode>();
        builder.AddNode();
        using var host = builder.Build();
        await host.StartAsync().Within();

        var node = host.Services.GetRequiredService<Node>();
        Assert.Same(node, host.Services.GetRequiredService<NeedsNode>().Node);
        Assert.Same(node.Peers, host.Services.GetRequiredService<PeerDirectory>());
        Assert.Same(clock, node.Options.TimeProvider);
        Assert.Contains(logs.Entries, e => e.EventId.Id == 1 && e.EventId.Name == "NodeStarted" && e.Message.Contains("injected", StringComparison.Ordinal));
        await host.StopAsync().Within();
        Assert.Contains(logs.Entries, e => e.EventId.Name == "NodeStopped");
    }

    [Fact]
    public async Task Scope_per_call_builds_each_call_its_own_scoped_service_and_disposes_it()
    {
        var port = LoopbackPorts.FreeUdpPort();
        var builder = TestNetwork.HostBuilder(TestNetwork.Settings("scoped", port));
        builder.Services.AddScoped<CallScope>();
        builder.AddNode().AddService<ScopeReporter>(P2PServiceLifetime.ScopePerCall);
        using var host = builder.Build();
        await host.StartAsync().Within();

        await using var caller = await TestNetwork.StartNodeAsync("caller", port);
        await caller.Peers.WaitForAsync("scoped").Within();
        var reporter = caller.Peers.Get<IScopeReporter>("scoped");
        var first = reporter.ScopeId();
        var second = reporter.ScopeId();

        Assert.NotEqual(first, second);
        Assert.Contains(first, CallScope.Disposed);   // disposed with its scope when the call ended
        Assert.Contains(second, CallScope.Disposed);
        await host.StopAsync().Within();
    }

    [Fact]
    public async Task Singleton_lifetime_serves_every_call_with_one_instance()
    {
        var port = LoopbackPorts.FreeUdpPort();
        var builder = TestNetwork.HostBuilder(TestNetwork.Settings("single", port));
        builder.Services.AddSingleton<CallScope>();
        builder.AddNode().AddService<ScopeReporter>();
        using var host = builder.Build();
        await host.StartAsync().Within();

        await using var caller = await TestNetwork.StartNodeAsync("caller", port);
        await caller.Peers.WaitForAsync("single").Within();
        var reporter = caller.Peers.Get<IScopeReporter>("single");

        Assert.Equal(reporter.ScopeId(), reporter.ScopeId());
        await host.StopAsync().Within();
    }

    private sealed class NeedsNode(Node node)
    {
        public Node Node { get; } = node;
    }
}

internal static class NodeTestExtensions
{
    /// <summary>A disposed node refuses calls with ObjectDisposedException.</summary>
    public static bool IsDisposedForTests(this Node node)
    {
        try
        {
            node.RequestAsync("nobody", "f").GetAwaiter().GetResult();
            return false;
        }
        catch (ObjectDisposedException)
        {
            return true;
        }
        catch (P2PException)
        {
            return false;
        }
    }
}
