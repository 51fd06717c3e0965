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

    /// <summary>Reads the hello's <c>features</c> array; true when it lists <see cref="Feature"/>. Unknown features are skipped.</summary>
    public static bool ReadFeatures(ref MessagePackReader reader) => ReadFeatures(ref reader, out _);

    /// <inheritdoc cref="ReadFeatures(ref MessagePackReader)"/>
    /// <param name="reader">The reader, at the features array.</param>
    /// <param name="acceptsEvents">Whether the list has <c>events</c> (issue 14).</param>
    public static bool ReadFeatures(ref MessagePackReader reader, out bool acceptsEvents)
    {
        var acceptsExtras = false;
        acceptsEvents = false;
        var count = reader.ReadArrayHeader();
        for (var i = 0; i < count; i++)
        {
            if (reader.NextMessagePackType == MessagePackType.String && reader.TryReadStringSpan(out var feature))
            {
                acceptsExtras |= feature.SequenceEqual("extras"u8);
                acceptsEvents |= feature.SequenceEqual(EventMessages.FeatureUtf8);
            }
            else
                MessagePackValues.Skip(ref reader);
        }

        return acceptsExtras;
    }

    /// <summary>Writes this version's features: <c>["extras", "events"]</c>.</summary>
    public static void WriteFeatures(ref MessagePackWriter writer)
    {
        writer.WriteArrayHeader(2);
        writer.Write(Feature);
        writer.Write(EventMessages.Feature);
    }
}
