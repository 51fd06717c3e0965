namespace P2PLocal.Rpc.Diagnostics;

/// <summary>
/// The names under which nodes report traces and metrics, for <c>AddSource</c> and <c>AddMeter</c> in OpenTelemetry
/// (or an <see cref="System.Diagnostics.ActivityListener"/> / <see cref="System.Diagnostics.Metrics.MeterListener"/>).
/// Every instrument, span and attribute is listed in docs/observability.md.
/// </summary>
/// <remarks>
/// Nothing is measured or traced until something listens: with no listener a call costs one check per side and
/// allocates nothing more.
/// </remarks>
public static class NodeTelemetry
{
    /// <summary>The <see cref="System.Diagnostics.ActivitySource"/> of client and server call spans: <c>P2PLocal.Rpc</c>.</summary>
    public const string ActivitySourceName = "P2PLocal.Rpc";

    /// <summary>The <see cref="System.Diagnostics.Metrics.Meter"/> of every instrument: <c>P2PLocal.Rpc</c>.</summary>
    public const string MeterName = "P2PLocal.Rpc";

    /// <summary>The value of the <c>rpc.system.name</c> attribute on calls: <c>p2plocal</c>.</summary>
    public const string SystemName = "p2plocal";
}
