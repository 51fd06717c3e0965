using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace P2PLocal.Rpc.Generators.Tests;

/// <summary>
/// The layering of docs/architecture.md, checked on the source: a file may use the types declared in its own layer
/// and in the layers below it, never above. A type's layer is the folder of the file that declares it (public types
/// keep their historic namespaces, and C# lets code in P2PLocal.Rpc.Transport see P2PLocal.Rpc types without a using,
/// so namespaces and using lines prove nothing: the compiler's symbols are checked).
/// </summary>
public sealed class ArchitectureTests
{
    /// <summary>Each folder of src/P2PLocal.Rpc and its layer, bottom first (the table in docs/architecture.md).</summary>
    internal static readonly IReadOnlyDictionary<string, int> Layers = new Dictionary<string, int>(StringComparer.Ordinal)
    {
        ["Exceptions"] = 0,
        ["Options"] = 0,
        ["Diagnostics"] = 0,
        ["Attributes"] = 0,
        ["Framing"] = 1,
        ["Protocol"] = 2,
        ["Security"] = 3,
        ["Transport"] = 4,
        ["Dispatch"] = 5,
        ["Server"] = 6,
        ["Legacy"] = 6,
        ["Discovery"] = 7,
        ["Peers"] = 7,
        [""] = 8, // the root: Node, which composes the rest
        ["Events"] = 8, // events to every peer (issue 14): the hub Node composes
        ["Proxies"] = 9,
    };

    private static string SourceRoot => Path.Combine(Repository.Root, "src", "P2PLocal.Rpc");

    [Fact]
    public void EveryFolderHasALayer()
    {
        var unknown = Directory.EnumerateFiles(SourceRoot, "*.cs", SearchOption.AllDirectories)
            .Select(FolderOf).Where(folder => folder is not null && !Layers.ContainsKey(folder)).Distinct().ToList();
        Assert.True(unknown.Count == 0, $"Folders without a layer (add them to docs/architecture.md and {nameof(Layers)}): {string.Join(", ", unknown)}");
    }

    [Fact]
    public void NoLayerUsesALayerAboveIt()
    {
        var violations = FindUpwardReferences(Compile(ReadSources()));
        Assert.True(violations.Count == 0, "Lower layers use upper ones (see docs/architecture.md):\n" + string.Join("\n", violations));
    }

    [Fact]
    public void AnUpwardReferenceIsFound()
    {
        // The check itself can fail: a Framing file that names Node is reported.
        var sources = ReadSources().Append((Path.Combine(SourceRoot, "Framing", "Bad.cs"),
            "namespace P2PLocal.Rpc.Framing; internal static class Bad { public static string Name(Node node) => node.Name; }"));
        var violations = FindUpwardReferences(Compile(sources));
        Assert.Contains(violations, v => v.Contains("Framing/Bad.cs", StringComparison.Ordinal) && v.Contains("P2PLocal.Rpc.Node", StringComparison.Ordinal));
    }

    private static IEnumerable<(string Path, string Text)> ReadSources() =>
        Directory.EnumerateFiles(SourceRoot, "*.cs", SearchOption.AllDirectories)
            .Where(path => FolderOf(path) is not null)
            .Select(path => (path, File.ReadAllText(path)));

    /// <summary>The top folder of a source file under src/P2PLocal.Rpc ("" at the root), or null for bin/obj.</summary>
    private static string? FolderOf(string path)
    {
        var relative = Path.GetRelativePath(SourceRoot, path).Replace('\\', '/');
        var slash = relative.IndexOf('/', StringComparison.Ordinal);
        var folder = slash < 0 ? "" : relative[..slash];
        return folder is "bin" or "obj" ? null : folder;
    }

    private static CSharpCompilation Compile(IEnumerable<(string Path, string Text)> sources)
    {
        var options = new CSharpParseOptions(LanguageVersion.Latest, preprocessorSymbols: ["NET", "NET8_0_OR_GREATER", "NET9_0_OR_GREATER", "NET10_0_OR_GREATER"]);
        const string implicitUsings = "global using System; global using System.Collections.Generic; global using System.IO; global using System.Linq; " +
            "global using System.Net.Http; global using System.Threading; global using System.Threading.Tasks;";
        var platform = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator);
        return CSharpCompilation.Create(
            "P2PLocal.Rpc",
            [CSharpSyntaxTree.ParseText(implicitUsings, options, path: "ImplicitUsings.g.cs"),
             .. sources.Select(s => CSharpSyntaxTree.ParseText(s.Text, options, path: s.Path))],
            [.. platform.Select(path => MetadataReference.CreateFromFile(path)),
             MetadataReference.CreateFromFile(typeof(MessagePack.MessagePackWriter).Assembly.Location),
             MetadataReference.CreateFromFile(typeof(Microsoft.Extensions.Logging.ILogger).Assembly.Location)],
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable, allowUnsafe: true));
    }

    /// <summary>"file: uses Type (folder)" for every name in a file that binds to a type of a higher layer.</summary>
    private static List<string> FindUpwardReferences(CSharpCompilation compilation)
    {
        var violations = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var tree in compilation.SyntaxTrees)
        {
            var folder = FolderOf(tree.FilePath);
            if (folder is null || !Layers.TryGetValue(folder, out var layer))
                continue;
            var model = compilation.GetSemanticModel(tree);
            foreach (var name in tree.GetRoot().DescendantNodes().OfType<SimpleNameSyntax>())
            {
                var symbol = model.GetSymbolInfo(name).Symbol ?? model.GetSymbolInfo(name).CandidateSymbols.FirstOrDefault();
                foreach (var declared in DeclarationsOf(symbol))
                {
                    var usedFolder = FolderOf(declared.FilePath);
                    if (usedFolder is not null && Layers.TryGetValue(usedFolder, out var usedLayer) && usedLayer > layer)
                    {
                        var relative = Path.GetRelativePath(SourceRoot, tree.FilePath).Replace('\\', '/');
                        violations.Add($"{relative}: uses {symbol!.ToDisplayString()} ({(usedFolder.Length == 0 ? "root" : usedFolder)}, layer {usedLayer} > {layer})");
                    }
                }
            }
        }

        return [.. violations];
    }

    /// <summary>
    /// The file a used symbol is declared in: a member's own file, or for a type the file of its lowest part (a
    /// partial type may span layers, and naming it needs only what its lowest part declares).
    /// </summary>
    private static IEnumerable<SyntaxTree> DeclarationsOf(ISymbol? symbol)
    {
        switch (symbol)
        {
            case IMethodSymbol method:
                symbol = (method.ReducedFrom ?? method).OriginalDefinition;
                break;
            case IArrayTypeSymbol array:
                return DeclarationsOf(array.ElementType);
            case ILocalSymbol or IParameterSymbol or INamespaceSymbol or ILabelSymbol or IRangeVariableSymbol or IDiscardSymbol or null:
                return []; // their types are named where they are declared
            default:
                symbol = symbol.OriginalDefinition;
                break;
        }

        if (symbol is not ITypeSymbol && symbol.DeclaringSyntaxReferences.Length == 0)
            return DeclarationsOf(symbol.ContainingType); // implicit members (default constructors, record parts)
        var trees = symbol.DeclaringSyntaxReferences.Select(r => r.SyntaxTree).ToList();
        var lowest = trees.MinBy(t => FolderOf(t.FilePath) is { } f && Layers.TryGetValue(f, out var l) ? l : int.MaxValue);
        return lowest is null ? [] : [lowest];
    }
}
