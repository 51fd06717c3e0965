using System.Diagnostics;
using P2PLocal.Rpc.Diagnostics;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Protocol;

namespace P2PLocal.Rpc.Server;

/// <summary>
/// Wraps the dispatcher of one incoming request so it runs inside a server span (a child of the caller's span when
/// the request carried a trace context) and records its duration (see <see cref="CallTelemetry"/>).
/// </summary>
internal sealed class ObservedDispatcher(IServiceDispatcher inner, ReadOnlyMemory<byte> extras, string callerName) : IServiceDispatcher
{
    /// <summary>The dispatcher, observed when something listens, else unchanged.</summary>
    /// <param name="dispatcher">The dispatcher that serves the request.</param>
    /// <param name="extras">The request's extras map (empty when it had none); valid until the request completes.</param>
    /// <param name="callerName">The calling node's name, from its hello (the span's <c>p2plocal.caller.name</c>).</param>
    public static IServiceDispatcher Wrap(IServiceDispatcher dispatcher, ReadOnlyMemory<byte> extras, string callerName) =>
        CallTelemetry.IsServerObserved ? new ObservedDispatcher(dispatcher, extras, callerName) : dispatcher;

    public IReadOnlyList<FunctionDescriptor> Functions => inner.Functions;

    public async ValueTask InvokeAsync(FunctionCall call)
    {
        Activity? activity = null;
        if (CallTelemetry.Source.HasListeners())
        {
            RequestExtras.TryReadTraceContext(extras, out var parent);
            activity = CallTelemetry.Source.StartActivity(call.Function, ActivityKind.Server, parent);
            if (activity is { IsAllDataRequested: true })
            {
                activity.SetTag("rpc.system.name", NodeTelemetry.SystemName);
                activity.SetTag("rpc.method", call.Function);
                activity.SetTag("p2plocal.caller.name", callerName);
            }
        }

        var started = Stopwatch.GetTimestamp();
        Exception? failure = null;
        try
        {
            await inner.InvokeAsync(call).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            failure = e;
            throw;
        }
        finally
        {
            // The status the server answers with (ServerConnection sends WireErrors.FromException too).
            var statusCode = failure is null ? "OK" : WireErrors.StatusName(WireErrors.FromException(failure, call.Function, call.CancellationToken).Code);
            if (RpcMetrics.ServerDurationEnabled)
                RpcMetrics.ServerDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, CallTelemetry.CallTags(call.Function, statusCode, failure));
            CallTelemetry.Stop(activity, statusCode, failure);
        }
    }
}
