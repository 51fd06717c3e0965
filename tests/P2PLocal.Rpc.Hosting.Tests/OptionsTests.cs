using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using P2PLocal.Rpc;
using P2PLocal.Rpc.Hosting;

namespace P2PLocal.Rpc.Hosting.Tests;

public class OptionsTests
{
    [Fact]
    public void Every_kind_of_setting_binds_from_configuration()
    {
        var builder = TestNetwork.HostBuilder(new Dictionary<string, string?>
        {
            ["P2PLocal:Name"] = "bound",
            ["P2PLocal:Protocol"] = "lab",
            ["P2PLocal:Scope"] = "Loopback",
            ["P2PLocal:ServicePort"] = "40123",
            ["P2PLocal:DiscoveryPort"] = "47000",
            ["P2PLocal:AdvertiseInterval"] = "00:00:01.500",
            ["P2PLocal:RequestTimeout"] = "00:00:07",
            ["P2PLocal:MaxFrameSize"] = "65536",
            ["P2PLocal:MaxPeers"] = "12",
            ["P2PLocal:Seeds:0"] = "127.0.0.1:47000",
            ["P2PLocal:Seeds:1"] = "[::1]:47001",
        });
        builder.AddNode();
        using var host = builder.Build();

        var options = host.Services.GetRequiredService<IOptions<P2PNodeOptions>>().Value.ToNodeOptions();

        Assert.Equal("bound", options.Name);
        Assert.Equal("lab", options.Protocol);
        Assert.Equal(DiscoveryScope.Loopback, options.Scope);
        Assert.Equal(40123, options.ServicePort);
        Assert.Equal(47000, options.DiscoveryPort);
        Assert.Equal(TimeSpan.FromMilliseconds(1500), options.AdvertiseInterval);
        Assert.Equal(TimeSpan.FromSeconds(7), options.RequestTimeout);
        Assert.Equal(65536, options.MaxFrameSize);
        Assert.Equal(12, options.MaxPeers);
        Assert.Equal([IPEndPoint.Parse("127.0.0.1:47000"), IPEndPoint.Parse("[::1]:47001")], options.Seeds);
        Assert.Equal(new NodeOptions { Name = "x" }.HandshakeTimeout, options.HandshakeTimeout); // unset keys keep NodeOptions' defaults
    }

    [Fact]
    public async Task Options_set_in_code_start_a_node()
    {
        var port = LoopbackPorts.FreeUdpPort();
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddP2PNode(o =>
        {
            o.Name = "coded";
            o.Scope = DiscoveryScope.Loopback;
            o.DiscoveryPort = port;
        }).AddFunction("one", _ => 1);
        using var host = builder.Build();
        await host.StartAsync().Within();

        await using var caller = await TestNetwork.StartNodeAsync("caller", port);
        await caller.Peers.WaitForAsync("coded").Within();
        Assert.Equal(1L, await caller.RequestAsync("coded", "one").Within());
        await host.StopAsync().Within();
    }

    [Theory]
    [InlineData("Name", null, "P2PLocal:Name")]
    [InlineData("Name", "a|b", "P2PLocal:Name")]
    [InlineData("ServicePort", "70000", "P2PLocal:ServicePort")]
    [InlineData("DiscoveryPort", "0", "P2PLocal:DiscoveryPort")]
    [InlineData("AdvertiseInterval", "00:00:00", "P2PLocal:AdvertiseInterval")]
    [InlineData("RequestTimeout", "-00:00:01", "P2PLocal:RequestTimeout")]
    [InlineData("MaxFrameSize", "10", "P2PLocal:MaxFrameSize")]
    [InlineData("MaxPeers", "0", "P2PLocal:MaxPeers")]
    [InlineData("Seeds:0", "not-an-endpoint", "P2PLocal:Seeds")]
    public async Task A_bad_setting_stops_the_host_start_with_a_message_that_names_its_key(string key, string? value, string named)
    {
        var settings = TestNetwork.Settings("checked", LoopbackPorts.FreeUdpPort());
        settings["P2PLocal:" + key] = value;
        var builder = TestNetwork.HostBuilder(settings);
        builder.AddNode();
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Contains($"'{named}'", error.Message, StringComparison.Ordinal);
        Assert.Throws<OptionsValidationException>(() => host.Services.GetRequiredService<Node>()); // no node was started
    }

    [Fact]
    public void A_missing_name_in_code_is_named_too()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddP2PNode(o => o.Scope = DiscoveryScope.Loopback);
        using var host = builder.Build();

        var error = Assert.Throws<OptionsValidationException>(() => host.Services.GetRequiredService<IOptions<P2PNodeOptions>>().Value);

        Assert.Contains("'Name'", error.Message, StringComparison.Ordinal);
        Assert.Contains("needs a name", error.Message, StringComparison.Ordinal);
    }
}

public class OptionsCoverageTests
{
    /// <summary>Every NodeOptions setting can be set on a hosted node: a new option forgotten here fails this test.</summary>
    [Fact]
    public void P2PNodeOptions_has_every_NodeOptions_setting_except_those_the_host_supplies()
    {
        string[] fromTheHost = [nameof(NodeOptions.LoggerFactory), nameof(NodeOptions.TimeProvider)];
        var hosted = typeof(P2PNodeOptions).GetProperties().Select(p => p.Name).ToHashSet();
        var missing = typeof(NodeOptions).GetProperties()
            .Where(p => p.SetMethod is { IsPublic: true } && !fromTheHost.Contains(p.Name) && !hosted.Contains(p.Name))
            .Select(p => p.Name)
            .ToArray();
        Assert.Empty(missing);
    }

    [Fact]
    public void Stream_window_inline_completions_and_event_bounds_bind_from_configuration()
    {
        var settings = TestNetwork.Settings("bound", 47000);
        settings["P2PLocal:StreamWindow"] = "8";
        settings["P2PLocal:InlineCompletions"] = "true";
        settings["P2PLocal:Events:MaxEventSize"] = "1024";
        settings["P2PLocal:Events:MaxQueuedEventsPerPeer"] = "16";
        var builder = TestNetwork.HostBuilder(settings);
        builder.AddNode();
        using var host = builder.Build();

        var options = host.Services.GetRequiredService<IOptions<P2PNodeOptions>>().Value.ToNodeOptions();

        Assert.Equal(8, options.StreamWindow);
        Assert.True(options.InlineCompletions);
        Assert.Equal(1024, options.Events.MaxEventSize);
        Assert.Equal(16, options.Events.MaxQueuedEventsPerPeer);
        Assert.Equal(new EventOptions().MaxTopicsPerPeer, options.Events.MaxTopicsPerPeer);
    }
}
