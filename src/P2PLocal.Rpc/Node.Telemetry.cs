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
        var observed = ObservedClientCall.Start(target, function, Peers.TryGet(target, out var peer) ? peer.EndPoint : null);
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
            observed.Finish(failure);
        }
    }

    /// <summary>
    /// The client side of one observed call or stream: a span (<c>Activity.Current</c> from <see cref="Start"/> on, so
    /// the request carries its trace context) and the <c>rpc.client.call.duration</c> point recorded at the end.
    /// </summary>
    private readonly struct ObservedClientCall
    {
        private readonly Activity? _activity;
        private readonly string _function;
        private readonly System.Net.IPEndPoint? _endPoint;
        private readonly long _started;

        private ObservedClientCall(Activity? activity, string function, System.Net.IPEndPoint? endPoint)
        {
            _activity = activity;
            _function = function;
            _endPoint = endPoint;
            _started = Stopwatch.GetTimestamp();
        }

        public static ObservedClientCall Start(string target, string function, System.Net.IPEndPoint? endPoint)
        {
            var activity = CallTelemetry.Source.StartActivity(function, ActivityKind.Client);
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

            return new ObservedClientCall(activity, function, endPoint);
        }

        /// <summary>Adds a tag to the span, when there is one that records data.</summary>
        public void SetTag(string name, object? value)
        {
            if (_activity is { IsAllDataRequested: true })
                _activity.SetTag(name, value);
        }

        /// <summary>Ends the span and records the duration, with the status the peer answered with (none for a local failure).</summary>
        public void Finish(Exception? failure)
        {
            var statusCode = failure is null ? "OK" : WireErrors.CodeOf(failure) is { } code ? WireErrors.StatusName(code) : null;
            if (RpcMetrics.ClientDurationEnabled)
            {
                var tags = CallTelemetry.CallTags(_function, statusCode, failure);
                if (_endPoint is not null)
                {
                    tags.Add("server.address", _endPoint.Address.ToString());
                    tags.Add("server.port", _endPoint.Port);
                }

                RpcMetrics.ClientDuration.Record(Stopwatch.GetElapsedTime(_started).TotalSeconds, tags);
            }

            CallTelemetry.Stop(_activity, statusCode, failure);
        }
    }
}
