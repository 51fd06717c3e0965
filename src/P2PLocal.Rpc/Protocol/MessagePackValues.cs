using System.Buffers;
using System.Text.Unicode;
using MessagePack;

namespace P2PLocal.Rpc.Protocol;

/// <summary>
/// Walks untrusted MessagePack values without building them: skipping (hello and request extras, unknown members)
/// and validating (the element budget and UTF-8 of kwargs before anything is decoded). Iterative, so hostile nesting
/// cannot exhaust the stack.
/// </summary>
/// <remarks>Thread-safe (stateless).</remarks>
internal static class MessagePackValues
{
    /// <summary>
    /// Skips one whole value without recursion, so hostile nesting cannot exhaust the stack.
    /// </summary>
    /// <exception cref="EndOfStreamException">The value is truncated.</exception>
    public static void Skip(ref MessagePackReader reader) => Walk(ref reader, int.MaxValue, checkStrings: false, out _);

    /// <summary>
    /// Skips one whole value without recursion, counting its MessagePack values (a map's keys and values each count,
    /// as does the container itself) and checking that every string is valid UTF-8. Stops early at the first problem.
    /// </summary>
    /// <returns>
    /// Null when the value is within <paramref name="maxElements"/> and its strings are UTF-8; otherwise why not, as a
    /// clause about the value ("it holds more than ...").
    /// </returns>
    /// <exception cref="EndOfStreamException">The value is truncated.</exception>
    public static string? Scan(ref MessagePackReader reader, int maxElements, out int elements) =>
        Walk(ref reader, maxElements, checkStrings: true, out elements) switch
        {
            WalkResult.TooManyElements =>
                $"it holds more than {maxElements} MessagePack values (NodeOptions.MaxKwargsElements of the node that reads it); send less, or raise that limit",
            WalkResult.InvalidUtf8 => "a string in it is not valid UTF-8",
            _ => null,
        };

    private enum WalkResult
    {
        Whole,
        TooManyElements,
        InvalidUtf8,
    }

    private static WalkResult Walk(ref MessagePackReader reader, int maxElements, bool checkStrings, out int elements)
    {
        // Every value still to walk is at least one element, so a header that promises more than the budget fails at once.
        long left = 1, counted = 0;
        elements = 0;
        while (left-- > 0)
        {
            counted++;
            try
            {
                switch (reader.NextMessagePackType)
                {
                    case MessagePackType.Array:
                        left += reader.ReadArrayHeader();
                        break;
                    case MessagePackType.Map:
                        left += 2L * reader.ReadMapHeader();
                        break;
                    case MessagePackType.String when checkStrings:
                        if (!IsUtf8(ref reader))
                            return WalkResult.InvalidUtf8;
                        break;
                    default:
                        reader.Skip();
                        break;
                }
            }
            catch (ArgumentOutOfRangeException e)
            {
                // MessagePackReader reads a str32/bin32/ext32 length of 2^31 or more as negative (found by B7).
                throw new EndOfStreamException("A length header claims more bytes than the data holds.", e);
            }

            if (counted + left > maxElements)
                return WalkResult.TooManyElements;
        }

        elements = (int)counted;
        return WalkResult.Whole;
    }

    /// <summary>Reads a string's bytes and checks them; MessagePackReader would replace bad sequences silently.</summary>
    private static bool IsUtf8(ref MessagePackReader reader)
    {
        if (reader.TryReadStringSpan(out var span))
            return Utf8.IsValid(span);
        var sequence = reader.ReadStringSequence();
        return sequence is not { } bytes || (bytes.IsSingleSegment ? Utf8.IsValid(bytes.FirstSpan) : Utf8.IsValid(bytes.ToArray()));
    }
}
