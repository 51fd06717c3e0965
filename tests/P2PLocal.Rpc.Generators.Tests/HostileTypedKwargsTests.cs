using System.Collections;
using MessagePack;
using P2PLocal.Rpc.Dispatch;

namespace P2PLocal.Rpc.Generators.Tests;

/// <summary>Typed parameters a stranger can abuse (issue 8): dictionaries, <c>object</c>, strings.</summary>
[P2PService]
public partial class Ledger
{
    public int Sum(Dictionary<string, int> amounts) => amounts.Values.Sum();

    public int Entries(object value) => value is ICollection collection ? collection.Count : -1;

    public int Length(string text) => text.Length;
}

/// <summary>"bob" serves the generated Ledger dispatcher; "alice" sends it hand-written kwargs bytes through a real node.</summary>
public sealed class LedgerPair : IAsyncLifetime
{
    public Node Alice { get; private set; } = null!;

    public Node Bob { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var port = TestNetwork.FreeUdpPort();
        Bob = await Node.StartAsync(new NodeOptions
        {
            Name = "ledger-bob",
            DiscoveryPort = port,
            Scope = DiscoveryScope.Loopback,
            AdvertiseInterval = TimeSpan.FromSeconds(1),
            MaxKwargsElements = 1000,
        });
        Bob.Register(new Ledger());
        Alice = await TestNetwork.StartAsync("ledger-alice", port);
        await Alice.Peers.WaitForAsync("ledger-bob").Within();
    }

    public async Task DisposeAsync()
    {
        await Alice.DisposeAsync();
        await Bob.DisposeAsync();
    }
}

/// <summary>Compile-and-run: the real generated dispatcher reading hostile kwargs.</summary>
public sealed class HostileTypedKwargsTests(LedgerPair pair) : IClassFixture<LedgerPair>
{
    private static readonly KwargsWriter<byte[]> s_writeRaw = static (ref MessagePackWriter writer, byte[] kwargs, MessagePackSerializerOptions _) =>
        writer.WriteRaw(kwargs);

    private Task<int> CallAsync(string function, byte[] kwargs) =>
        pair.Alice.Peers.Client("ledger-bob").InvokeAsync(function, kwargs, s_writeRaw, GeneratedResults.Reader<int>()).AsTask().Within();

    /// <summary>{"name": value} with the value as raw MessagePack.</summary>
    private static byte[] Kwargs(string name, params byte[] value)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(buffer);
        writer.WriteMapHeader(1);
        writer.Write(name);
        writer.Flush();
        return [.. buffer.WrittenSpan, .. value];
    }

    [Fact]
    public async Task A_key_repeated_inside_a_typed_dictionary_argument_is_invalid_kwargs_not_a_handler_failure()
    {
        Assert.Equal(3, await CallAsync("Sum", Kwargs("amounts", 0x82, 0xA1, (byte)'a', 0x01, 0xA1, (byte)'b', 0x02)));

        var error = await Assert.ThrowsAsync<InvalidKwargsException>(() => CallAsync("Sum", Kwargs("amounts", 0x82, 0xA1, (byte)'a', 0x01, 0xA1, (byte)'a', 0x02)));
        Assert.Contains("amounts", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_typed_object_argument_is_held_to_the_decode_budget_and_takes_binary_keys()
    {
        // {bin: 1, [1]: 2}: map keys MessagePack's own object comparer would refuse under UntrustedData.
        Assert.Equal(2, await CallAsync("Entries", Kwargs("value", 0x82, 0xC4, 0x01, 0x07, 0x01, 0x91, 0x01, 0x02)));

        // {"value": [n x {}]} holds n + 3 values; bob's MaxKwargsElements is 1000.
        static byte[] EmptyMaps(int count) => [0xDC, (byte)(count >> 8), (byte)count, .. Enumerable.Repeat((byte)0x80, count)];
        Assert.Equal(997, await CallAsync("Entries", Kwargs("value", EmptyMaps(997))));
        var error = await Assert.ThrowsAsync<InvalidKwargsException>(() => CallAsync("Entries", Kwargs("value", EmptyMaps(998))));
        Assert.Contains("MaxKwargsElements", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Invalid_UTF8_in_a_typed_string_argument_is_invalid_kwargs()
    {
        Assert.Equal(3, await CallAsync("Length", Kwargs("text", 0xA3, 0x41, 0x42, 0x43)));

        var error = await Assert.ThrowsAsync<InvalidKwargsException>(() => CallAsync("Length", Kwargs("text", 0xA4, 0xFF, 0xFE, 0x41, 0x42)));
        Assert.Contains("UTF-8", error.Message, StringComparison.Ordinal);
    }
}
