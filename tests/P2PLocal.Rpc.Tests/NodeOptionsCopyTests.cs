using System.Net;
using System.Reflection;
using MessagePack;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace P2PLocal.Rpc.Tests;

public sealed class NodeOptionsCopyTests
{
    /// <summary>
    /// Every settable option, set to a value unlike its default, survives the copy constructor; an option added to
    /// NodeOptions and forgotten there fails here (or fails with "no sample value" until this test knows its type).
    /// </summary>
    [Fact]
    public void CopyKeepsEveryOption()
    {
        var original = new NodeOptions { Name = "original" };
        var settable = typeof(NodeOptions).GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite).ToList();
        Assert.NotEmpty(settable);
        foreach (var property in settable)
        {
            var value = SampleUnlike(property.PropertyType, property.GetValue(original));
            property.SetValue(original, value);
        }

        var copy = new NodeOptions(original);

        foreach (var property in settable)
            Assert.True(Equals(property.GetValue(original), property.GetValue(copy)), $"NodeOptions(NodeOptions) does not copy {property.Name}.");
    }

    [Fact]
    public void CopyWithOneChangeKeepsTheRest()
    {
        var options = new NodeOptions { Name = "a", Scope = DiscoveryScope.Loopback, RequestTimeout = TimeSpan.FromSeconds(7) };
        var changed = new NodeOptions(options) { RequestTimeout = TimeSpan.FromSeconds(1) };
        Assert.Equal(TimeSpan.FromSeconds(1), changed.RequestTimeout);
        Assert.Equal(DiscoveryScope.Loopback, changed.Scope);
        Assert.Equal("a", changed.Name);
        Assert.Equal(TimeSpan.FromSeconds(7), options.RequestTimeout);
    }

    private static object SampleUnlike(Type type, object? current)
    {
        object sample = type switch
        {
            _ when type == typeof(string) => "sample-" + current,
            _ when type == typeof(int) => (int)current! + 17,
            _ when type == typeof(long) => (long)current! + 17,
            _ when type == typeof(bool) => !(bool)current!,
            _ when type == typeof(TimeSpan) => (TimeSpan)current! + TimeSpan.FromMilliseconds(17),
            _ when type.IsEnum => Enum.GetValues(type).Cast<object>().First(v => !v.Equals(current)),
            _ when type == typeof(IReadOnlyList<IPEndPoint>) => new List<IPEndPoint> { new(IPAddress.Loopback, 17) },
            _ when type == typeof(MessagePackSerializerOptions) => MessagePackSerializerOptions.Standard.WithOmitAssemblyVersion(true),
            _ when type == typeof(NodeSecurity) => NodeSecurity.SharedKey("a sample network key for the copy test"),
            _ when type == typeof(Microsoft.Extensions.Logging.ILoggerFactory) => new NullLoggerFactory(),
            _ when type == typeof(TimeProvider) => new FakeTimeProvider(),
            _ when type == typeof(EventOptions) => new EventOptions { MaxEventSize = 1234 },
            _ => throw new InvalidOperationException($"No sample value for an option of type {type}: add one to {nameof(SampleUnlike)}."),
        };
        Assert.False(Equals(sample, current), $"The sample {type} equals the current value.");
        return sample;
    }
}
