using System.Collections;
using System.Diagnostics;
using System.Text;
using MessagePack;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Protocol;

namespace P2PLocal.Rpc.Reliability.Tests;

/// <summary>
/// Issue 8's decode budget, UTF-8 check and error cutting under the B7 mutation loop (same seed and iteration knobs:
/// P2P_FUZZ_SEED, P2P_FUZZ_ITERATIONS).
/// </summary>
public class HostileFuzzTests(ITestOutputHelper output)
{
    private static readonly int s_seed = FuzzTests.s_seed;
    private static readonly int s_iterations = FuzzTests.s_iterations;

    private static readonly byte[][] s_kwargsSeeds =
    [
        Net.Pack(b => b.Map(2).Str("a").Array(3).Number(1).Str("caf\u00E9").Map(0).Str("b").Map(1).Number(-7).Str("\u20AC\U0001F600")),
        Net.Pack(b => b.Map(1).Str("value").Raw(0x94, 0x80, 0x90, 0xC0, 0x92, 0x80, 0x80)),
        Net.Pack(b => b.Map(1).Str("k").Raw(0x83, 0xC4, 0x01, 0x07, 0x01, 0x91, 0x01, 0x02, 0xCF, 1, 0, 0, 0, 1, 0, 0, 0, 0xC0)),
        Net.Pack(b => b.Map(3).Str("x").Str("").Str("y").Raw(0xCB, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0).Str("z").Raw(0xD6, 0xFF, 0, 0, 0, 1)),
    ];

    /// <summary>How many values a decoded kwargs value holds, counted as the budget counts them.</summary>
    private static long Count(object? value) => value switch
    {
        IDictionary map => 1 + map.Keys.Cast<object?>().Sum(Count) + map.Values.Cast<object?>().Sum(Count),
        object?[] array => 1 + array.Sum(Count),
        _ => 1,
    };

    [Fact]
    [Trait("Category", "Long")]
    public void R6_fuzzed_kwargs_never_decode_past_the_budget_and_never_crash_the_reader()
    {
        var random = new Random(s_seed);
        var failures = new List<string>();
        long accepted = 0, rejected = 0;
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < s_iterations; i++)
        {
            var budget = random.Next(1, 24);
            var options = MessagePackSerializerOptions.Standard.WithSecurity(new UntrustedInputSecurity(budget));
            var input = FuzzTests.Mutate(random, s_kwargsSeeds[random.Next(s_kwargsSeeds.Length)]);
            try
            {
                var kwargs = KwargsCodec.ReadKwargs(input, options);
                var decoded = Count(kwargs);
                var reader = new MessagePackReader(input);
                var problem = MessagePackValues.Scan(ref reader, budget, out var elements);
                if (problem is not null || decoded != elements || decoded > budget)
                    failures.Add($"budget {budget}: decoded {decoded} values, the scan counted {elements} ({problem}) input={Convert.ToHexString(input)}");
                accepted++;
            }
            catch (InvalidKwargsException)
            {
                rejected++;
            }
            catch (Exception e)
            {
                failures.Add($"{e.GetType().Name}: {e.Message} input={Convert.ToHexString(input)}");
            }
        }

        output.WriteLine($"R6 fuzz seed {s_seed}: {s_iterations} kwargs with budgets 1-23 in {clock.ElapsedMilliseconds} ms: {accepted} decoded within the budget, {rejected} refused as InvalidKwargs, {failures.Count} failures");
        foreach (var failure in failures.Take(10))
            output.WriteLine("R6 FAIL " + failure);
        Assert.Empty(failures);
    }

    [Fact]
    [Trait("Category", "Long")]
    public void R10_fuzzed_errors_always_fit_the_frame_limit_and_read_back()
    {
        var random = new Random(s_seed);
        var failures = new List<string>();
        var alphabet = new[] { "a", "\u00E9", "\u20AC", "\U0001F600", "\uD800", "\uDC00", "'", "\0" };
        var iterations = Math.Max(1, s_iterations / 10);
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < iterations; i++)
        {
            string Text(int max) => string.Concat(Enumerable.Range(0, random.Next(max)).Select(_ => alphabet[random.Next(alphabet.Length)]));
            var limit = random.Next(Messages.ErrorFrameOverhead, 600);
            var type = Text(400);
            var message = Text(1200);
            var buffer = new System.Buffers.ArrayBufferWriter<byte>();
            var writer = new MessagePackWriter(buffer);
            Messages.WriteError(ref writer, (uint)random.Next(), (ErrorCode)random.Next(1, 9), type, message, limit);
            writer.Flush();
            var reader = new MessagePackReader(buffer.WrittenMemory);
            Messages.ReadKind(ref reader, out var count);
            reader.ReadUInt32();
            var (_, readType, readMessage) = Messages.ReadError(ref reader, count);
            var whole = Encoding.UTF8.GetString(Encoding.UTF8.GetBytes(message)); // lone surrogates become U+FFFD, as on the wire
            if (buffer.WrittenCount > limit)
                failures.Add($"limit {limit}: a frame of {buffer.WrittenCount} bytes");
            else if (readMessage != whole && !(readMessage.EndsWith('\u2026') && whole.StartsWith(readMessage[..^1], StringComparison.Ordinal)) && readMessage.Length > 0)
                failures.Add($"limit {limit}: message read back as '{readMessage}', not a prefix of '{whole}'");
            else if (readType.Length == 0 && type.Length > 0 && limit >= 2 * Messages.ErrorFrameOverhead + 16)
                failures.Add($"limit {limit}: the type '{type}' was dropped");
        }

        output.WriteLine($"R10 fuzz seed {s_seed}: {iterations} errors with limits 24-599 bytes in {clock.ElapsedMilliseconds} ms, {failures.Count} failures");
        foreach (var failure in failures.Take(10))
            output.WriteLine("R10 FAIL " + failure);
        Assert.Empty(failures);
    }
}
