namespace P2PLocal.Rpc.Generators;

/// <summary>Names of the pipeline steps, so tests can check which ones ran again after an edit.</summary>
internal static class TrackingNames
{
    public const string Parse = nameof(Parse);
    public const string Services = nameof(Services);
    public const string Diagnostics = nameof(Diagnostics);
    public const string Formatters = nameof(Formatters);
}
