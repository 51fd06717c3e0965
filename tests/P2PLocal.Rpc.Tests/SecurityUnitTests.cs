using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using P2PLocal.Rpc.Discovery;
using P2PLocal.Rpc.Security;

namespace P2PLocal.Rpc.Tests;

/// <summary>Secure mode's pieces alone (issue 10): identities and key files, network keys, beacon seals.</summary>
public sealed class SecurityUnitTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("p2p-identity-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void An_id_is_short_printable_and_a_hash_of_the_public_key()
    {
        var identity = NodeIdentity.Create();
        Assert.Matches("^[A-Z2-7]{4}(-[A-Z2-7]{4}){7}$", identity.Id);
        Assert.Equal(identity.Id, NodeIdentity.IdOf(identity.Key.ExportSubjectPublicKeyInfo()));
        Assert.NotEqual(identity.Id, NodeIdentity.Create().Id);
        Assert.Equal(identity.Id, identity.ToString());
        Assert.Equal(identity.Id, NodeIdentity.Normalize(identity.Id.ToLowerInvariant().Replace("-", " ")));
        Assert.Null(NodeIdentity.Normalize(identity.Id[..^1]));
        Assert.Null(NodeIdentity.Normalize(identity.Id.Replace(identity.Id[0], '1')));
    }

    [Fact]
    public void LoadOrCreate_makes_an_owner_only_file_and_loads_the_same_id_from_it()
    {
        var path = Path.Combine(_dir, "node.key");
        var made = NodeIdentity.LoadOrCreate(path);
        if (!OperatingSystem.IsWindows())
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        Assert.StartsWith("-----BEGIN PRIVATE KEY-----", File.ReadAllText(path));
        Assert.Equal(made.Id, NodeIdentity.LoadOrCreate(path).Id);
    }

    [Fact]
    public void A_tampered_key_file_is_a_clear_error_and_is_never_replaced()
    {
        var path = Path.Combine(_dir, "node.key");
        NodeIdentity.LoadOrCreate(path);
        var text = File.ReadAllText(path);
        var middle = text.IndexOf('\n') + 20;
        var tampered = text[..middle] + (text[middle] == 'A' ? 'B' : 'A') + text[(middle + 1)..];
        File.WriteAllText(path, tampered);
        var e = Assert.Throws<InvalidDataException>(() => NodeIdentity.LoadOrCreate(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("Restore it", e.Message);
        Assert.Equal(tampered, File.ReadAllText(path));

        File.WriteAllText(path, "not a key");
        Assert.Throws<InvalidDataException>(() => NodeIdentity.LoadOrCreate(path));
        Assert.Equal("not a key", File.ReadAllText(path));
    }

    [Fact]
    public void A_key_file_others_may_read_is_refused_with_the_fix()
    {
        if (OperatingSystem.IsWindows())
            return; // Unix file modes only
        var path = Path.Combine(_dir, "node.key");
        NodeIdentity.LoadOrCreate(path);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
        var e = Assert.Throws<InvalidDataException>(() => NodeIdentity.LoadOrCreate(path));
        Assert.Contains("chmod 600", e.Message);
    }

    [Fact]
    public void Short_network_keys_are_rejected_with_how_to_make_a_good_one()
    {
        var text = Assert.Throws<ArgumentException>(() => NodeSecurity.SharedKey("password123"));
        Assert.Contains("NodeSecurity.CreateNetworkKey()", text.Message);
        var bytes = Assert.Throws<ArgumentException>(() => NodeSecurity.SharedKey(new byte[15]));
        Assert.Contains("RandomNumberGenerator.GetBytes(32)", bytes.Message);
        Assert.False(NodeSecurity.SharedKey(NodeSecurity.CreateNetworkKey()).IsOpen);
        Assert.False(NodeSecurity.SharedKey(RandomNumberGenerator.GetBytes(16)).IsOpen);
        Assert.True(NodeSecurity.Open.IsOpen);
        Assert.Throws<ArgumentException>(() => NodeSecurity.Pinned(NodeIdentity.Create(), ["not-an-id"]));
    }

    [Fact]
    public async Task Keys_never_show_in_text_or_logs()
    {
        var key = NodeSecurity.CreateNetworkKey();
        var security = NodeSecurity.SharedKey(key);
        Assert.Equal("SharedKey", security.ToString());
        using var logs = new ListLoggerFactory();
        var port = TestNetwork.FreeUdpPort();
        var options = TestNetwork.Options("keyed", port);
        await using (await Node.StartAsync(new NodeOptions { Name = options.Name, DiscoveryPort = port, Scope = DiscoveryScope.Loopback, Security = security, LoggerFactory = logs }))
        {
        }

        Assert.NotEmpty(logs.Lines);
        Assert.DoesNotContain(logs.Lines, l => l.Contains(key, StringComparison.Ordinal) || l.Contains(Convert.ToBase64String(security.BeaconKey), StringComparison.Ordinal));
    }

    [Fact]
    public void A_sealed_beacon_opens_once_and_any_changed_byte_or_other_key_or_old_clock_rejects_it()
    {
        var security = NodeSecurity.SharedKey(NodeSecurity.CreateNetworkKey());
        var sender = new BeaconSeal(security, NodeIdentity.Create());
        var receiver = new BeaconSeal(security, NodeIdentity.Create());
        var now = DateTimeOffset.UtcNow;
        var open = new Beacon("itecnet", "bob", new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 4000), BeaconKind.Alive, "inst1", TimeSpan.FromSeconds(1), now).ToBytes();
        var sealedBeacon = sender.Seal(open, now);
        Assert.True(BeaconSeal.IsSealed(sealedBeacon));
        Assert.False(BeaconSeal.IsSealed(open));
        Assert.True(Beacon.TryParse(sealedBeacon, out var parsed) && parsed!.Name == "bob" && parsed.Kind == BeaconKind.Alive);

        for (var i = 0; i < sealedBeacon.Length; i++)
        {
            var changed = (byte[])sealedBeacon.Clone();
            changed[i] ^= 0x02;
            Assert.Null(receiver.TryOpen(changed, "inst1", now));
        }

        Assert.Null(new BeaconSeal(NodeSecurity.SharedKey(NodeSecurity.CreateNetworkKey()), NodeIdentity.Create()).TryOpen(sealedBeacon, "inst1", now));
        Assert.Null(receiver.TryOpen(sealedBeacon, "inst1", now + BeaconSeal.FreshnessWindow + TimeSpan.FromSeconds(1)));
        Assert.NotNull(receiver.TryOpen(sealedBeacon, "inst1", now));
        Assert.Null(receiver.TryOpen(sealedBeacon, "inst1", now)); // the same beacon again: a replay
        Assert.NotNull(receiver.TryOpen(sender.Seal(open, now), "inst1", now)); // a newer one
    }

    [Fact]
    public void A_pinned_beacon_opens_only_for_a_trusted_id_whose_key_signed_it()
    {
        var alice = NodeIdentity.Create();
        var bob = NodeIdentity.Create();
        var now = DateTimeOffset.UtcNow;
        var open = Encoding.UTF8.GetBytes($"itecnet|alice|127.0.0.1:4000|p2p1|inst1|alive|1000|{now.ToUnixTimeMilliseconds()}");
        var sealedBeacon = new BeaconSeal(NodeSecurity.Pinned(alice, []), alice).Seal(open, now);
        Assert.True(sealedBeacon.Length < 512);
        Assert.Equal(alice.Id, new BeaconSeal(NodeSecurity.Pinned(bob, [alice.Id]), bob).TryOpen(sealedBeacon, "inst1", now));
        Assert.Null(new BeaconSeal(NodeSecurity.Pinned(bob, [NodeIdentity.Create().Id]), bob).TryOpen(sealedBeacon, "inst1", now));
        // Mallory's key and signature under alice's id: the key does not hash to the id.
        var mallory = NodeIdentity.Create();
        var forged = Encoding.ASCII.GetString(new BeaconSeal(NodeSecurity.Pinned(mallory, []), mallory).Seal(open, now))
            .Replace(mallory.Id.Replace("-", ""), alice.Id.Replace("-", ""));
        Assert.Null(new BeaconSeal(NodeSecurity.Pinned(bob, [alice.Id]), bob).TryOpen(Encoding.ASCII.GetBytes(forged), "inst1", now));
    }

    private sealed class ListLoggerFactory : ILoggerFactory, ILogger
    {
        private readonly List<string> _lines = [];

        public IReadOnlyList<string> Lines
        {
            get
            {
                lock (_lines)
                    return [.. _lines];
            }
        }

        public ILogger CreateLogger(string categoryName) => this;

        public void AddProvider(ILoggerProvider provider)
        {
        }

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (_lines)
                _lines.Add(formatter(state, exception) + exception);
        }

        public void Dispose()
        {
        }
    }
}
