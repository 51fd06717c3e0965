using Microsoft.Extensions.Time.Testing;
using P2PLocal.Rpc.Diagnostics;

namespace P2PLocal.Rpc.UnitTests;

/// <summary>The log rate limiter's window runs on the clock it is given (the node's <see cref="NodeOptions.TimeProvider"/>).</summary>
public sealed class LogLimiterTests
{
    [Fact]
    public void The_window_opens_again_when_the_given_clock_passes_it_and_counts_what_was_held_back()
    {
        var time = new FakeTimeProvider(DateTimeOffset.FromUnixTimeMilliseconds(1_800_000_000_000));
        var limiter = new LogLimiter(time);
        for (var i = 0; i < LogLimiter.MaxPerWindow; i++)
            Assert.True(limiter.TryPass(7, out _));
        Assert.False(limiter.TryPass(7, out _));
        Assert.False(limiter.TryPass(7, out _));
        Assert.True(limiter.TryPass(8, out _)); // each event id has its own window

        time.Advance(LogLimiter.Window - TimeSpan.FromMilliseconds(1));
        Assert.False(limiter.TryPass(7, out _));

        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.True(limiter.TryPass(7, out var suppressed));
        Assert.Equal(3, suppressed);
    }
}
