using System.Buffers;
using System.Diagnostics;
using System.Text;
using MessagePack;

namespace P2PLocal.Rpc.Benchmarks;

/// <summary>
/// The least CPU any implementation of the wire format (PROTOCOL.md, "Messages") must spend on one <c>Greet</c> call
/// besides what the raw pipelined ceiling spends: the request <c>[0, id, "Greet", {"name": name}]</c> written, read back
/// (function name and key compared as UTF-8 bytes, the value read as a string, since the handler takes one), the
/// handler's string built, the result <c>[1, id, result]</c> written and read back. One thread, reused buffers, no
/// transport, no lookup tables, no depth or budget checks, no async: a floor, not a design. The ceiling's own body work
/// (a few bytes copied) is left in the ceiling's figure, so the floor is a lower bound on what typed calls add to it.
/// </summary>
public static class CodecFloor
{
    private static readonly byte[] s_function = Encoding.UTF8.GetBytes("Greet");
    private static readonly byte[] s_key = Encoding.UTF8.GetBytes("name");

    /// <summary>CPU µs per call of the floor, measured over <paramref name="duration"/> after a warm-up.</summary>
    public static double MeasureCpuUsPerCall(TimeSpan duration)
    {
        var request = new ArrayBufferWriter<byte>(256);
        var result = new ArrayBufferWriter<byte>(256);
        RunCalls(request, result, 200_000); // tiered JIT
        using var process = Process.GetCurrentProcess();
        process.Refresh();
        var cpuBefore = process.TotalProcessorTime;
        var watch = Stopwatch.StartNew();
        long calls = 0;
        while (watch.Elapsed < duration)
            calls += RunCalls(request, result, 100_000);
        process.Refresh();
        return (process.TotalProcessorTime - cpuBefore).TotalMicroseconds / calls;
    }

    private static int RunCalls(ArrayBufferWriter<byte> request, ArrayBufferWriter<byte> result, int calls)
    {
        var checksum = 0;
        for (var id = 1u; id <= calls; id++)
        {
            // Caller: the request.
            request.ResetWrittenCount();
            var writer = new MessagePackWriter(request);
            writer.WriteArrayHeader(4);
            writer.Write((byte)0);
            writer.Write(id);
            writer.WriteString(s_function);
            writer.WriteMapHeader(1);
            writer.WriteString(s_key);
            writer.Write("bench");
            writer.Flush();

            // Server: the request read, the handler, the result written.
            var reader = new MessagePackReader(request.WrittenMemory);
            if (reader.ReadArrayHeader() != 4 || reader.ReadByte() != 0)
                throw new InvalidDataException("not a request");
            var requestId = reader.ReadUInt32();
            if (!reader.TryReadStringSpan(out var function) || !function.SequenceEqual(s_function))
                throw new InvalidDataException("unknown function");
            if (reader.ReadMapHeader() != 1 || !reader.TryReadStringSpan(out var key) || !key.SequenceEqual(s_key))
                throw new InvalidDataException("unknown kwarg");
            var name = reader.ReadString()!;
            var greeting = "Hello, " + name;
            result.ResetWrittenCount();
            writer = new MessagePackWriter(result);
            writer.WriteArrayHeader(3);
            writer.Write((byte)1);
            writer.Write(requestId);
            writer.Write(greeting);
            writer.Flush();

            // Caller: the result read.
            reader = new MessagePackReader(result.WrittenMemory);
            if (reader.ReadArrayHeader() != 3 || reader.ReadByte() != 1 || reader.ReadUInt32() != id)
                throw new InvalidDataException("not the result");
            checksum += reader.ReadString()!.Length;
        }

        return checksum == calls * "Hello, bench".Length ? calls : throw new InvalidDataException("wrong results");
    }
}
