using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;
using P2PLocal.Rpc.Generators.Helpers;

namespace P2PLocal.Rpc.Generators.Model;

/// <summary>A location held as plain values, so a diagnostic can sit in a cached model.</summary>
internal sealed record LocationInfo(string FilePath, TextSpan Span, LinePositionSpan LineSpan)
{
    public Location ToLocation() => Location.Create(FilePath, Span, LineSpan);

    public static LocationInfo? From(Location? location) =>
        location?.SourceTree is null ? null : new LocationInfo(location.SourceTree.FilePath, location.SourceSpan, location.GetLineSpan().Span);
}

/// <summary>A diagnostic as plain values: which descriptor, where, and the message arguments.</summary>
internal sealed record DiagnosticInfo(string Id, LocationInfo? Location, EquatableArray<string> Arguments);

/// <summary>The result of parsing one <c>[P2PService]</c> type: a spec when it can be generated, its diagnostics, and the formatters its types need.</summary>
internal sealed record ParseResult(ServiceSpec? Service, EquatableArray<DiagnosticInfo> Diagnostics, EquatableArray<FormatterSpec> Formatters);
