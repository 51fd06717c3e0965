using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using P2PLocal.Rpc;
using P2PLocal.Rpc.Hosting;

namespace P2PLocal.Rpc.Hosting.Tests;

/// <summary>Secure mode from configuration, and a node from DI that does not start (or block) before the host does.</summary>
public sealed class SecurityOptionsTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("p2p-hosting-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task A_network_key_file_from_configuration_makes_a_shared_key_node_that_members_call()
    {
        var key = NodeSecurity.CreateNetworkKey();
        var keyFile = Path.Combine(_folder, "network.key");
        await File.WriteAllTextAsync(keyFile, key + "\n");
        var port = LoopbackPorts.FreeUdpPort();
        var settings = TestNetwork.Settings("keyed", port);
        settings["P2PLocal:NetworkKeyFile"] = keyFile;
        var builder = TestNetwork.HostBuilder(settings);
        builder.AddNode().AddFunction("echo", kwargs => kwargs["text"]);
        using var host = builder.Build();
        await host.StartAsync().Within();

        Assert.Equal("SharedKey", host.Services.GetRequiredService<Node>().Options.Security.ToString());
        await using var member = await Node.StartAsync(new NodeOptions
        {
            Name = "member",
            DiscoveryPort = port,
            Scope = DiscoveryScope.Loopback,
            Security = NodeSecurity.SharedKey(key),
        });
        await member.Peers.WaitForAsync("keyed").Within();
        Assert.Equal("hi", await member.RequestAsync<string>("keyed", "echo", new Dictionary<string, object?> { ["text"] = "hi" }).Within());
        await host.StopAsync().Within();
    }

    [Fact]
    public void An_identity_file_and_trusted_ids_make_a_pinned_node()
    {
        var peer = NodeIdentity.Create();
        var options = new P2PNodeOptions { Name = "pinned", IdentityFile = Path.Combine(_folder, "node.pem") };
        options.TrustedPeerIds.Add(peer.Id);

        var security = options.ToNodeOptions().Security;

        Assert.StartsWith("Pinned (id ", security.ToString(), StringComparison.Ordinal);
        Assert.EndsWith("1 trusted)", security.ToString(), StringComparison.Ordinal);
        Assert.True(File.Exists(options.IdentityFile));   // created on first use, the same identity on the next
        Assert.Equal(security.ToString(), options.ToNodeOptions().Security.ToString());
    }

    [Theory]
    [InlineData("both", "P2PLocal:Security", "not several")]
    [InlineData("trust-without-identity", "P2PLocal:TrustedPeerIds", "needs IdentityFile")]
    [InlineData("missing-key-file", "P2PLocal:NetworkKeyFile", "cannot be read")]
    [InlineData("short-key", "P2PLocal:NetworkKeyFile", "at least 20 are needed")]
    public async Task Invalid_security_settings_fail_the_host_start_and_name_the_key(string case_, string key, string reason)
    {
        var settings = TestNetwork.Settings("insecure", LoopbackPorts.FreeUdpPort());
        var keyFile = Path.Combine(_folder, "network.key");
        switch (case_)
        {
            case "both":
                await File.WriteAllTextAsync(keyFile, NodeSecurity.CreateNetworkKey());
                settings["P2PLocal:NetworkKeyFile"] = keyFile;
                settings["P2PLocal:IdentityFile"] = Path.Combine(_folder, "node.pem");
                break;
            case "trust-without-identity":
                settings["P2PLocal:TrustedPeerIds:0"] = NodeIdentity.Create().Id;
                break;
            case "missing-key-file":
                settings["P2PLocal:NetworkKeyFile"] = Path.Combine(_folder, "absent.key");
                break;
            case "short-key":
                await File.WriteAllTextAsync(keyFile, "too short");
                settings["P2PLocal:NetworkKeyFile"] = keyFile;
                break;
        }

        var builder = TestNetwork.HostBuilder(settings);
        builder.AddNode();
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync().Within());
        Assert.Contains($"'{key}'", error.Message, StringComparison.Ordinal);
        Assert.Contains(reason, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_node_from_DI_is_created_at_once_and_started_by_the_host_with_its_services()
    {
        var port = LoopbackPorts.FreeUdpPort();
        var builder = TestNetwork.HostBuilder(TestNetwork.Settings("lazy", port));
        builder.AddNode().AddFunction("one", _ => 1);
        using var host = builder.Build();

        // Resolving the node neither binds nor waits for the name check: that is the host's start, awaited.
        var node = host.Services.GetRequiredService<Node>();
        Assert.Throws<InvalidOperationException>(() => node.ServiceEndPoint);

        await host.StartAsync().Within();
        Assert.NotEqual(0, node.ServiceEndPoint.Port);
        Assert.Contains(node.Functions, f => f.Name == "one");
        await host.StopAsync().Within();
    }
}
