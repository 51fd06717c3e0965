using System.Diagnostics;

namespace P2PLocal.Rpc.Diagnostics;

/// <summary>
/// What client and server spans share: the activity source, whether anyone listens, the tags and the end of a span.
/// The client span of a call is made by <c>Node.ObserveCallAsync</c>, the server span by <c>ObservedDispatcher</c>
/// (layers: docs/architecture.md). Client and server spans (<see cref="ActivitySource"/> <c>P2PLocal.Rpc</c>) and the call-duration histograms,
/// after the OpenTelemetry RPC semantic conventions: span name and <c>rpc.method</c> are the function's wire name,
/// <c>rpc.system.name</c> is <c>p2plocal</c>. A call takes the observed path only when something listens
/// (<see cref="IsClientObserved"/>, <see cref="IsServerObserved"/>), so the usual path stays as it was.
/// </summary>
internal static class CallTelemetry
{
    public static readonly ActivitySource Source = new(NodeTelemetry.ActivitySourceName, typeof(CallTelemetry).Assembly.GetName().Version?.ToString());

    public static bool IsClientObserved => Source.HasListeners() || RpcMetrics.ClientDurationEnabled;

    public static bool IsServerObserved => Source.HasListeners() || RpcMetrics.ServerDurationEnabled;

    public static TagList CallTags(string function, string? statusCode, Exception? failure)
    {
        var tags = new TagList
        {
            { "rpc.system.name", NodeTelemetry.SystemName },
            { "rpc.method", function },
        };
        if (statusCode is not null)
            tags.Add("rpc.response.status_code", statusCode);
        if (failure is not null)
            tags.Add("error.type", failure.GetType().FullName);
        return tags;
    }

    public static void Stop(Activity? activity, string? statusCode, Exception? failure)
    {
        if (activity is null)
            return;
        if (statusCode is not null)
            activity.SetTag("rpc.response.status_code", statusCode);
        if (failure is not null)
        {
            activity.SetTag("error.type", failure.GetType().FullName);
            activity.SetStatus(ActivityStatusCode.Error, failure.Message);
        }

        activity.Dispose();
    }
}
