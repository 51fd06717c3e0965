using System.Diagnostics;
using P2PLocal.Rpc.Diagnostics;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Protocol;

namespace P2PLocal.Rpc;

public sealed partial class Node
{
    /// <summary>Runs one outgoing call inside a client span and records its duration (see <see cref="CallTelemetry"/>).</summary>
    private async ValueTask<TResult> ObserveCallAsync<TState, TResult>(string target, string function, TState state,
        KwargsWriter<TState> writeKwargs, ResultReader<TResult> readResult, CancellationToken cancellationToken)
    {
        var activity = CallTelemetry.Source.StartActivity(function, ActivityKind.Client);
        var endPoint = Peers.TryGet(target, out var peer) ? peer.EndPoint : null;
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
            return await InvokeUnobservedAsync(target, function, state, writeKwargs, readResult, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            failure = e;
            throw;
        }
        finally
        {
            // The wire status a peer answered with, read back from the exception it became; none for a local failure.
            var statusCode = failure is null ? "OK" : WireErrors.CodeOf(failure) is { } code ? WireErrors.StatusName(code) : null;
            if (RpcMetrics.ClientDurationEnabled)
            {
                var tags = CallTelemetry.CallTags(function, statusCode, failure);
                if (endPoint is not null)
                {
                    tags.Add("server.address", endPoint.Address.ToString());
                    tags.Add("server.port", endPoint.Port);
                }

                RpcMetrics.ClientDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, tags);
            }

            CallTelemetry.Stop(activity, statusCode, failure);
        }
    }
}
