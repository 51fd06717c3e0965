using System.Diagnostics;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Protocol;

namespace P2PLocal.Rpc.Diagnostics;

/// <summary>
/// Client and server spans (<see cref="ActivitySource"/> <c>P2PLocal.Rpc</c>) and the call-duration histograms,
/// after the OpenTelemetry RPC semantic conventions: span name and <c>rpc.method</c> are the function's wire name,
/// <c>rpc.system.name</c> is <c>p2plocal</c>. A call takes the observed path only when something listens
/// (<see cref="IsClientObserved"/>, <see cref="IsServerObserved"/>), so the usual path stays as it was.
/// </summary>
internal static class CallTelemetry
{
    public static readonly ActivitySource Source = new(NodeTelemetry.ActivitySourceName, typeof(CallTelemetry).Assembly.GetName().Version?.ToString());

    public static bool IsClientObserved => Source.HasListeners() || RpcMetrics.ClientDurationEnabled;

    public static bool IsServerObserved => Source.HasListeners() || RpcMetrics.ServerDurationEnabled;

    /// <summary>Runs one outgoing call inside a client span and records its duration.</summary>
    public static async ValueTask<TResult> ObserveClientAsync<TState, TResult>(Node node, string target, string function, TState state,
        KwargsWriter<TState> writeKwargs, ResultReader<TResult> readResult, CancellationToken cancellationToken)
    {
        var activity = Source.StartActivity(function, ActivityKind.Client);
        var endPoint = node.Peers.TryGet(target, out var peer) ? peer.EndPoint : null;
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag("rpc.system.name", NodeTelemetry.SystemName);
            activity.SetTag("rpc.method", function);
            activity.SetTag("p2plocal.peer.name", target);
            if (endPoint is not null)
            {
                activity.SetTag("server.address", endPoint.Address.ToString());
                activity.SetTag("server.port", endPoint.Port);
            }
        }

        var started = Stopwatch.GetTimestamp();
        Exception? failure = null;
        try
        {
            // The client span is Activity.Current here, so the request carries its trace context (RequestExtras).
            return await node.InvokeUnobservedAsync(target, function, state, writeKwargs, readResult, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            failure = e;
            throw;
        }
        finally
        {
            var statusCode = failure is null ? "OK" : PeerStatusCode(failure);
            if (RpcMetrics.ClientDurationEnabled)
            {
                var tags = CallTags(function, statusCode, failure);
                if (endPoint is not null)
                {
                    tags.Add("server.address", endPoint.Address.ToString());
                    tags.Add("server.port", endPoint.Port);
                }

                RpcMetrics.ClientDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, tags);
            }

            Stop(activity, statusCode, failure);
        }
    }

    /// <summary>
    /// Wraps the dispatcher of one incoming request so it runs inside a server span (a child of the caller's span
    /// when the request carried a trace context) and records its duration; returns it unchanged when nobody listens.
    /// </summary>
    /// <param name="dispatcher">The dispatcher that serves the request.</param>
    /// <param name="extras">The request's extras map (empty when it had none); valid until the request completes.</param>
    /// <param name="callerName">The calling node's name, from its hello (the span's <c>p2plocal.caller.name</c>).</param>
    public static IServiceDispatcher ObserveServer(IServiceDispatcher dispatcher, ReadOnlyMemory<byte> extras, string callerName) =>
        IsServerObserved ? new ObservedDispatcher(dispatcher, extras, callerName) : dispatcher;

    private sealed class ObservedDispatcher(IServiceDispatcher inner, ReadOnlyMemory<byte> extras, string callerName) : IServiceDispatcher
    {
        public IReadOnlyList<FunctionDescriptor> Functions => inner.Functions;

        public async ValueTask InvokeAsync(FunctionCall call)
        {
            Activity? activity = null;
            if (Source.HasListeners())
            {
                RequestExtras.TryReadTraceContext(extras, out var parent);
                activity = Source.StartActivity(call.Function, ActivityKind.Server, parent);
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
                var statusCode = failure is null ? "OK" : ServerStatusCode(failure, call.CancellationToken);
                if (RpcMetrics.ServerDurationEnabled)
                    RpcMetrics.ServerDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, CallTags(call.Function, statusCode, failure));
                Stop(activity, statusCode, failure);
            }
        }
    }

    private static TagList CallTags(string function, string? statusCode, Exception? failure)
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

    private static void Stop(Activity? activity, string? statusCode, Exception? failure)
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

    /// <summary>The wire status a peer answered with, read back from the exception it became; null for a local failure.</summary>
    private static string? PeerStatusCode(Exception failure) => failure switch
    {
        MethodNotFoundException => StatusCode(ErrorCode.MethodNotFound),
        InvalidKwargsException => StatusCode(ErrorCode.InvalidKwargs),
        RemoteException => StatusCode(ErrorCode.HandlerFailed),
        PeerBusyException => StatusCode(ErrorCode.Busy),
        _ => null,
    };

    /// <summary>The wire status the server answers a failed request with (see ServerConnection).</summary>
    private static string ServerStatusCode(Exception failure, CancellationToken cancellationToken) => failure switch
    {
        OperationCanceledException when cancellationToken.IsCancellationRequested => StatusCode(ErrorCode.Canceled),
        FrameTooLargeException => StatusCode(ErrorCode.FrameTooLarge),
        InvalidKwargsException => StatusCode(ErrorCode.InvalidKwargs),
        _ => StatusCode(ErrorCode.HandlerFailed),
    };

    /// <summary>The <c>rpc.response.status_code</c> value of a wire error code: its name in upper snake case.</summary>
    public static string StatusCode(ErrorCode code) => code switch
    {
        ErrorCode.HandlerFailed => "HANDLER_FAILED",
        ErrorCode.MethodNotFound => "METHOD_NOT_FOUND",
        ErrorCode.InvalidKwargs => "INVALID_KWARGS",
        ErrorCode.Busy => "BUSY",
        ErrorCode.Canceled => "CANCELLED",
        ErrorCode.FrameTooLarge => "FRAME_TOO_LARGE",
        ErrorCode.ShuttingDown => "SHUTTING_DOWN",
        ErrorCode.BadRequest => "BAD_REQUEST",
        _ => "UNKNOWN",
    };
}
