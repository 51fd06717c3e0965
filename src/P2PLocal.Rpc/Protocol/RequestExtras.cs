using System.Diagnostics;
using MessagePack;

namespace P2PLocal.Rpc.Protocol;

/// <summary>
/// The optional fifth element of a request, <c>extras</c>: a map from string keys to values that readers skip
/// unless they know the key. Today it carries the W3C trace context (<c>traceparent</c>, <c>tracestate</c>). A caller
/// sends it only to a peer whose hello lists the <c>extras</c> feature: older nodes close a connection on a request
/// of five elements. See PROTOCOL.md, "Request extras and tracing".
/// </summary>
internal static class RequestExtras
{
    /// <summary>The hello feature that says "requests to me may carry extras".</summary>
    public const string Feature = "extras";

    /// <summary>W3C's limit on a tracestate header; a longer one is ignored.</summary>
    public const int MaxTraceStateLength = 512;

    private const string TraceParentKey = "traceparent";
    private const string TraceStateKey = "tracestate";

    /// <summary>The span whose context a request to this peer carries: the current W3C activity, if the peer takes extras.</summary>
    public static Activity? TraceContextFor(in Hello peer) =>
        peer.AcceptsExtras && Activity.Current is { IdFormat: ActivityIdFormat.W3C } activity ? activity : null;

    /// <summary>Writes the extras map of a request that carries <paramref name="activity"/>'s trace context.</summary>
    public static void Write(ref MessagePackWriter writer, Activity activity)
    {
        var traceState = activity.TraceStateString;
        var withState = !string.IsNullOrEmpty(traceState) && traceState.Length <= MaxTraceStateLength;
        writer.WriteMapHeader(withState ? 2 : 1);
        writer.Write(TraceParentKey);
        writer.Write(activity.Id);
        if (withState)
        {
            writer.Write(TraceStateKey);
            writer.Write(traceState);
        }
    }

    /// <summary>
    /// Reads the trace context from an extras map already checked by <see cref="Messages.SkipRequestExtras"/>. Returns false (and a default
    /// context) when there is none or it is not a valid W3C traceparent.
    /// </summary>
    public static bool TryReadTraceContext(ReadOnlyMemory<byte> extras, out ActivityContext context)
    {
        context = default;
        if (extras.IsEmpty)
            return false;
        string? traceParent = null, traceState = null;
        try
        {
            var reader = new MessagePackReader(extras);
            var count = reader.ReadMapHeader();
            for (var i = 0; i < count; i++)
            {
                var key = reader.ReadString();
                if (key == TraceParentKey && reader.NextMessagePackType == MessagePackType.String)
                    traceParent = reader.ReadString();
                else if (key == TraceStateKey && reader.NextMessagePackType == MessagePackType.String)
                    traceState = reader.ReadString();
                else
                    MessagePackValues.Skip(ref reader);
            }
        }
        catch (Exception e) when (MalformedInput.IsMalformed(e))
        {
            return false;
        }

        if (traceState is { Length: > MaxTraceStateLength })
            traceState = null;
        return traceParent is not null && ActivityContext.TryParse(traceParent, traceState, isRemote: true, out context);
    }

    /// <summary>
    /// Reads the hello's <c>features</c> array: the names this version knows (see <see cref="Features"/>) that it lists.
    /// Unknown features and non-string elements are skipped.
    /// </summary>
    public static IReadOnlyCollection<string> ReadFeatures(ref MessagePackReader reader)
    {
        var listed = new HashSet<string>(StringComparer.Ordinal);
        var count = reader.ReadArrayHeader();
        for (var i = 0; i < count; i++)
        {
            if (reader.NextMessagePackType == MessagePackType.String && reader.TryReadStringSpan(out var feature))
            {
                // Only known names are kept, so a stranger's list costs no memory (the hello is at most 16 KiB anyway).
                if (feature.Length <= 64 && Array.IndexOf(Features, System.Text.Encoding.UTF8.GetString(feature)) is >= 0 and var known)
                    listed.Add(Features[known]);
            }
            else
                MessagePackValues.Skip(ref reader);
        }

        return listed;
    }

    /// <summary>What this version offers in its hello, in this order: <c>["extras", "stream", "events"]</c>.</summary>
    public static readonly string[] Features = [Feature, StreamMessages.Feature, EventMessages.Feature];

    /// <summary>Writes this version's features (<see cref="Features"/>).</summary>
    public static void WriteFeatures(ref MessagePackWriter writer)
    {
        writer.WriteArrayHeader(Features.Length);
        foreach (var feature in Features)
            writer.Write(feature);
    }
}
