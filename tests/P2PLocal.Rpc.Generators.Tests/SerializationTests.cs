using System.Reflection;

namespace P2PLocal.Rpc.Generators.Tests;

/// <summary>A type that cannot be serialized fails as a <see cref="SerializationFailedException"/> naming it, on the side that has the problem.</summary>
public sealed class SerializationTests
{
    // Built apart from the test project: the generator rightly rejects Plain (P2P014), and a project with a custom
    // resolver would lower that diagnostic; this is what happens at run time then.
    private const string Source = """
        using System.Threading.Tasks;
        using P2PLocal.Rpc;

        namespace Loose;

        public sealed class Plain
        {
            public int A { get; set; }
        }

        [P2PService]
        public partial class Unserializable
        {
            public int Made;

            public int Count(Plain plain) => plain.A;

            public Plain MakeAfterWork()
            {
                Made++;
                return new() { A = 2 };
            }
        }

        public static class Driver
        {
            public static readonly Unserializable Service = new();

            public static Task Serve(Node node)
            {
                node.Register(Service);
                return Task.CompletedTask;
            }

            public static Task<int> Count(Node node) => Task.Run(() => node.Peers.Get<IUnserializable>("bob").Count(new Plain()));

            public static Task<int> Made() => Task.FromResult(Service.Made);
        }
        """;

    private static readonly Lazy<Assembly> s_assembly = new(() => GeneratorHarness.CompileAndLoad("Loose", Source, "P2P014"));

    // A [MessagePackObject] type with nothing to serialize: its generated formatter once crashed the generator (CS8785).
    private const string EmptySource = """
        using System.Threading.Tasks;
        using MessagePack;
        using P2PLocal.Rpc;

        namespace Hollow;

        [MessagePackObject]
        public sealed class Nothing
        {
            [IgnoreMember]
            public int Local { get; set; }
        }

        [P2PService]
        public partial class Echo
        {
            public Nothing Back(Nothing nothing, int count) => new() { Local = count + (nothing is null ? 100 : 0) };
        }

        public static class Driver
        {
            public static Task Serve(Node node)
            {
                node.Register(new Echo());
                return Task.CompletedTask;
            }

            public static Task<int> Back(Node node) => Task.Run(() => node.Peers.Get<IEcho>("bob").Back(new Nothing { Local = 7 }, 3).Local);
        }
        """;

    [Fact]
    public async Task A_MessagePackObject_type_without_members_travels_as_an_empty_array_both_ways()
    {
        var hollow = GeneratorHarness.CompileAndLoad("Hollow", EmptySource);
        var port = TestNetwork.FreeUdpPort();
        await using var bob = await TestNetwork.StartAsync("bob", port);
        await GeneratorHarness.CallAsync(hollow, "Hollow.Driver", "Serve", bob);
        await using var alice = await TestNetwork.StartAsync("alice", port);
        await alice.Peers.WaitForAsync("bob").Within();

        // The kwarg arrives as a new object (its ignored member not sent), and the result comes back the same way.
        Assert.Equal(0, await GeneratorHarness.CallAsync(hollow, "Hollow.Driver", "Back", alice));
        // On the wire it is an empty array: a dynamic caller sending one is understood.
        var answer = await alice.RequestAsync("bob", "Back", new Dictionary<string, object?> { ["nothing"] = Array.Empty<object>(), ["count"] = 1 }).Within();
        Assert.Equal(Array.Empty<object>(), answer);
    }

    [Fact]
    public async Task Unserializable_kwargs_and_results_fail_as_P2PExceptions_that_name_the_type_and_the_member()
    {
        var loose = s_assembly.Value;
        var port = TestNetwork.FreeUdpPort();
        await using var bob = await TestNetwork.StartAsync("bob", port);
        await GeneratorHarness.CallAsync(loose, "Loose.Driver", "Serve", bob);
        await using var alice = await TestNetwork.StartAsync("alice", port);
        await alice.Peers.WaitForAsync("bob").Within();

        // The caller cannot write the kwarg: nothing is sent.
        var write = await Assert.ThrowsAsync<SerializationFailedException>(() => GeneratorHarness.CallAsync(loose, "Loose.Driver", "Count", alice));
        Assert.Equal("kwarg 'plain' of 'Count'", write.Member);
        Assert.Equal("Loose.Plain", write.TypeName);
        Assert.Contains("[MessagePackObject]", write.Message, StringComparison.Ordinal);

        // The server cannot write the result: the caller is told so, not handed a broken reply.
        var result = await Assert.ThrowsAsync<RemoteException>(() => alice.RequestAsync("bob", "MakeAfterWork").Within());
        Assert.Equal(typeof(SerializationFailedException).FullName, result.RemoteType);
        Assert.Contains("result of 'MakeAfterWork' has type Loose.Plain", result.RemoteMessage, StringComparison.Ordinal);
        Assert.Equal(1, await GeneratorHarness.CallAsync(loose, "Loose.Driver", "Made"));

        // The server cannot read the kwarg: its own problem, not invalid kwargs from the caller.
        var read = await Assert.ThrowsAsync<RemoteException>(() =>
            alice.RequestAsync("bob", "Count", new Dictionary<string, object?> { ["plain"] = new Dictionary<string, object?> { ["A"] = 1 } }).Within());
        Assert.IsNotType<InvalidKwargsException>(read);
        Assert.Equal(typeof(SerializationFailedException).FullName, read.RemoteType);
        Assert.Contains("kwarg 'plain' of 'Count'", read.RemoteMessage, StringComparison.Ordinal);
    }
}
