using System.Collections;
using System.Collections.Concurrent;
using System.Diagnostics;
using static P2PLocal.Rpc.Reliability.Tests.HostileInputBudgetTests;

namespace P2PLocal.Rpc.Reliability.Tests;

/// <summary>
/// Issue 8 under load: what many hostile frames at once may cost a node's memory (R6), and honest calls served through a
/// stream of the issue's probes (L4). They measure the managed heap of the whole process, so they run alone.
/// </summary>
[Collection(Serial.Name)]
public class HostileLoadTests(ITestOutputHelper output)
{
    private const int ErrorKind = 2;
    private const int Busy = 4;

    [Fact]
    public async Task R6_many_frames_of_empty_maps_at_once_hold_no_more_memory_than_the_cap_on_work_in_flight_allows()
    {
        const int PerRequest = 200_000;
        const int InFlight = 2 * PerRequest;
        const int Attackers = 12;
        await using var victim = await HoldingVictim.StartAsync(Options("r6-memory", Net.FreeUdpPort(), maxKwargsElements: PerRequest, elementsInFlight: InFlight));
        var callers = new List<RawPeer>();
        try
        {
            for (var i = 0; i < Attackers; i++)
                callers.Add(await RawPeer.ConnectWithHelloAsync(victim.Node.ServiceEndPoint, "attacker" + i));
            var before = Resources.Measure();

            // Each frame is just inside the per-request budget and decodes into about 200 000 dictionaries.
            var request = RawPeer.Request(1, "hold", ValueKwargs(ArrayOf(PerRequest - 3, 0x80)));
            var busy = 0;
            var admitted = new List<Task<byte[]?>>();
            for (var i = 0; i < Attackers; i++)
            {
                await callers[i].SendFrameAsync(request);
                var reply = callers[i].ReadFrameAsync();
                var started = victim.WaitStartedAsync(admitted.Count + 1);
                if (await Task.WhenAny(reply, started).Within() == reply)
                {
                    var (kind, _, code, _, _) = Error((await reply)!);
                    Assert.Equal((ErrorKind, Busy), (kind, code));
                    busy++;
                }
                else
                {
                    admitted.Add(reply);
                }
            }

            var held = Resources.Measure();
            var grew = held.ManagedBytes - before.ManagedBytes;
            // About 100 bytes per empty map decoded; 256 per value allowed, plus 32 MiB of slack for everything else.
            var bound = (InFlight * 256L) + (32L << 20);
            output.WriteLine($"R6 {Attackers} frames of {PerRequest - 3} empty maps to a held handler (budget {PerRequest}, in flight {InFlight}): {admitted.Count} admitted, {busy} refused busy; managed heap {before.ManagedBytes >> 20} -> {held.ManagedBytes >> 20} MiB (+{grew >> 20} MiB, bound {bound >> 20} MiB)");
            Assert.Equal(InFlight / PerRequest, admitted.Count);
            Assert.True(grew <= bound, $"the managed heap grew by {grew >> 20} MiB with requests held; the cap allows {bound >> 20} MiB");

            victim.Release();
            foreach (var reply in admitted)
                Assert.Equal(1, RawPeer.Describe((await reply.Within())!).Kind);
        }
        finally
        {
            foreach (var caller in callers)
                caller.Dispose();
        }
    }

    [Fact]
    [Trait("Category", "Long")]
    public async Task L4_honest_calls_are_served_while_strangers_send_the_issue_8_probes_and_memory_stays_bounded()
    {
        var seconds = int.TryParse(Environment.GetEnvironmentVariable("P2P_HOSTILE_SECONDS"), out var s) && s > 0 ? s : 5;
        const int PerRequest = 100_000;
        var port = Net.FreeUdpPort();
        await using var victim = await Net.StartAsync(Options("l4-victim", port, maxKwargsElements: PerRequest, elementsInFlight: 2 * PerRequest));
        victim.Register("echo", kwargs => kwargs.GetValueOrDefault("value"));
        victim.Register("count", kwargs => (long)((ICollection)kwargs["value"]!).Count);
        victim.Register("quote", kwargs => throw new InvalidOperationException($"bad {kwargs["value"]} {kwargs["value"]}"));
        await using var caller = await Net.StartAsync(Options("l4-caller", port));
        await caller.Peers.WaitForAsync("l4-victim").Within();

        var probes = new (string Name, Func<uint, byte[]> Request)[]
        {
            ("colliding keys", id => RawPeer.Request(id, "count", ValueKwargs(IntegerKeyMap(40_000, colliding: true)))),
            ("4 MiB of empty maps", id => RawPeer.Request(id, "count", ValueKwargs(ArrayOf((4 << 20) - 64, 0x80)))),
            ("empty maps at the budget", id => RawPeer.Request(id, "count", ValueKwargs(ArrayOf(PerRequest - 3, 0x80)))),
            ("invalid UTF-8", id => RawPeer.Request(id, "echo", ValueKwargs([0xA4, 0xFF, 0xFE, 0x41, 0x42]))),
            ("oversized error", id => RawPeer.Request(id, "quote", ValueKwargs(Net.Pack(b => b.Str(new string('q', 40_000)))))),
            ("long unknown name", id => RawPeer.Request(id, new string('n', 50_000), Net.Pack(b => b.Map(0)))),
        };
        var replies = new ConcurrentDictionary<string, long>();
        var honest = new ConcurrentDictionary<string, long>();
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        var before = Resources.Measure();
        long peak = before.ManagedBytes;

        async Task AttackAsync((string Name, Func<uint, byte[]> Request) probe)
        {
            using var raw = await RawPeer.ConnectWithHelloAsync(victim.ServiceEndPoint, "attacker", maxFrameSize: 16 * 1024);
            // A new id each time: the server may still hold an id for a moment after its reply went out.
            for (var id = 1u; !stop.IsCancellationRequested; id++)
            {
                await raw.SendFrameAsync(probe.Request(id));
                var reply = await raw.ReadFrameAsync();
                var kind = reply is null ? "closed" : Error(reply) is var (k, _, code, _, _) && k == ErrorKind ? $"error {code}" : "result";
                replies.AddOrUpdate($"{probe.Name}: {kind}", 1, (_, n) => n + 1);
                if (reply is null)
                    return;
            }
        }

        async Task HonestAsync()
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    var value = Guid.NewGuid().ToString("N");
                    var echoed = await caller.RequestAsync("l4-victim", "echo", Net.Kw("value", value)).Within();
                    honest.AddOrUpdate(Equals(echoed, value) ? "ok" : "wrong", 1, (_, n) => n + 1);
                }
                catch (PeerBusyException)
                {
                    honest.AddOrUpdate("busy", 1, (_, n) => n + 1);
                }
            }
        }

        var clock = Stopwatch.StartNew();
        var work = probes.Select(AttackAsync).Append(HonestAsync()).Append(HonestAsync()).ToList();
        while (!stop.IsCancellationRequested)
        {
            await Task.Delay(250);
            peak = Math.Max(peak, GC.GetTotalMemory(forceFullCollection: true));
        }

        await Task.WhenAll(work).Within();
        var after = Resources.Measure();
        output.WriteLine($"L4 {clock.Elapsed.TotalSeconds:0.0} s, {probes.Length} attackers and 2 honest callers: honest {string.Join(", ", honest.OrderBy(p => p.Key).Select(p => $"{p.Key} {p.Value}"))}");
        output.WriteLine("L4 attacker replies: " + string.Join(", ", replies.OrderBy(p => p.Key).Select(p => $"{p.Key} x{p.Value}")));
        output.WriteLine($"L4 live managed heap: {before.ManagedBytes >> 20} MiB before, {peak >> 20} MiB at the peak, {after.ManagedBytes >> 20} MiB after");

        Assert.True(honest.GetValueOrDefault("ok") > 0);
        Assert.Equal(0, honest.GetValueOrDefault("wrong"));
        Assert.DoesNotContain(replies.Keys, k => k.EndsWith("closed", StringComparison.Ordinal));
        Assert.DoesNotContain(replies.Keys, k => k.StartsWith("4 MiB", StringComparison.Ordinal) && !k.EndsWith("error 3", StringComparison.Ordinal));
        // 256 bytes per value the cap on work in flight admits, plus pooled frame buffers: up to 32 of the 4 MiB frame
        // limit (one 4 MiB frame of empty maps decoded, as before the fix, alone takes about 420 MB).
        var bound = (2L * PerRequest * 256) + (32L * NodeOptions.DefaultMaxFrameSize);
        Assert.True(peak - before.ManagedBytes <= bound, $"the live heap peaked {(peak - before.ManagedBytes) >> 20} MiB above where it started; the bound is {bound >> 20} MiB");
    }
}
