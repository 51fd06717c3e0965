using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using P2PLocal.Rpc.Generators.Diagnostics;
using P2PLocal.Rpc.Generators.Helpers;
using P2PLocal.Rpc.Generators.Model;

namespace P2PLocal.Rpc.Generators;

/// <summary>
/// Turns every <c>[P2PService]</c> class or interface into a contract interface (for classes), a dispatcher that
/// serves its functions, a typed proxy, and a module initializer that registers both with the runtime.
/// </summary>
/// <remarks>
/// Pipeline only; symbols become specs in <c>ServiceGenerator.Parser.cs</c> and specs become text in
/// <c>ServiceGenerator.Emitter.cs</c>. Nothing past the parse step holds a symbol or syntax node, so an edit that does
/// not touch a service leaves every later step cached.
/// </remarks>
[Generator(LanguageNames.CSharp)]
public sealed partial class ServiceGenerator : IIncrementalGenerator
{
    internal const string ServiceAttribute = "P2PLocal.Rpc.P2PServiceAttribute";

    /// <inheritdoc/>
    public void Initialize(IncrementalGeneratorInitializationContext context)
    {
        var parsed = context.SyntaxProvider
            .ForAttributeWithMetadataName(
                ServiceAttribute,
                static (node, _) => node is ClassDeclarationSyntax or InterfaceDeclarationSyntax
                    or RecordDeclarationSyntax { ClassOrStructKeyword.RawKind: not (int)SyntaxKind.StructKeyword },
                static (context, cancellationToken) => Parser.Parse(context, cancellationToken))
            .WithTrackingName(TrackingNames.Parse);

        var services = parsed
            .Where(static result => result.Service is not null)
            .Select(static (result, _) => result.Service!)
            .WithTrackingName(TrackingNames.Services);

        var diagnostics = parsed
            .Where(static result => result.Diagnostics.Count > 0)
            .Select(static (result, _) => result.Diagnostics)
            .WithTrackingName(TrackingNames.Diagnostics);

        // One resolver per assembly, over the formatters every service of it needs (deduplicated by type).
        var formatters = parsed
            .SelectMany(static (result, _) => result.Formatters)
            .Collect()
            .Select(static (all, _) => all.GroupBy(f => f.TypeOfName).Select(g => g.First()).OrderBy(f => f.TypeOfName, System.StringComparer.Ordinal).ToEquatableArray())
            .WithTrackingName(TrackingNames.Formatters);

        context.RegisterSourceOutput(formatters, static (output, all) =>
        {
            if (all.Count > 0)
                output.AddSource("P2PFormatters.g.cs", FormatterEmitter.Emit(all));
        });

        context.RegisterSourceOutput(services, static (output, service) =>
            output.AddSource(service.HintName, Emitter.Emit(service)));

        context.RegisterSourceOutput(diagnostics, static (output, infos) =>
        {
            foreach (var info in infos)
            {
                output.ReportDiagnostic(Diagnostic.Create(
                    DiagnosticDescriptors.ById(info.Id), info.Location?.ToLocation(), info.Arguments.Cast<object>().ToArray()));
            }
        });
    }
}
