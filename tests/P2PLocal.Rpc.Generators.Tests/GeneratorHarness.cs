using System.Collections;
using System.Collections.Immutable;
using System.Reflection;
using MessagePack;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace P2PLocal.Rpc.Generators.Tests;

/// <summary>Runs the generator in memory over source text, the way the compiler would.</summary>
internal static class GeneratorHarness
{
    public static readonly CSharpParseOptions ParseOptions = new(LanguageVersion.Latest);

    private static readonly Lazy<MetadataReference[]> s_references = new(() =>
    {
        var platform = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator);
        return
        [
            .. platform.Select(path => MetadataReference.CreateFromFile(path)),
            MetadataReference.CreateFromFile(typeof(Node).Assembly.Location),
            MetadataReference.CreateFromFile(typeof(MessagePackWriter).Assembly.Location),
            MetadataReference.CreateFromFile(typeof(MessagePackObjectAttribute).Assembly.Location),
        ];
    });

    public static CSharpCompilation Compile(params string[] sources) => Compile("Consumer", [], sources);

    public static CSharpCompilation Compile(string assemblyName, IEnumerable<MetadataReference> references, params string[] sources) =>
        CSharpCompilation.Create(
            assemblyName,
            sources.Select((source, i) => CSharpSyntaxTree.ParseText(source, ParseOptions, path: $"Service{i}.cs")),
            [.. s_references.Value, .. references],
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable)
                // MessagePack is built against an older System.Memory; the compiler notes the unification.
                .WithSpecificDiagnosticOptions([new("CS1701", ReportDiagnostic.Suppress), new("CS1702", ReportDiagnostic.Suppress)]));

    public static GeneratorDriver CreateDriver() =>
        CSharpGeneratorDriver.Create(
            [new ServiceGenerator().AsSourceGenerator()],
            parseOptions: ParseOptions,
            driverOptions: new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: true));

    /// <summary>Runs the generator; returns its result and the diagnostics of the compilation with the generated code added.</summary>
    public static (GeneratorRunResult Result, ImmutableArray<Diagnostic> CompileDiagnostics) Run(params string[] sources) => Run(Compile(sources));

    public static (GeneratorRunResult Result, ImmutableArray<Diagnostic> CompileDiagnostics) Run(Compilation compilation) =>
        Run(compilation, out _);

    public static (GeneratorRunResult Result, ImmutableArray<Diagnostic> CompileDiagnostics) Run(Compilation compilation, out Compilation output)
    {
        var driver = CreateDriver().RunGeneratorsAndUpdateCompilation(compilation, out output, out _);
        return (driver.GetRunResult().Results.Single(), output.GetDiagnostics());
    }

    /// <summary>
    /// Compiles <paramref name="source"/> with the generator into an assembly of its own and loads it, so a test can
    /// run generated code built apart from the test project (another version of a contract, a type the generator
    /// rejects). Fails on any error but those listed in <paramref name="allowed"/>.
    /// </summary>
    public static Assembly CompileAndLoad(string assemblyName, string source, params string[] allowed)
    {
        var (result, diagnostics) = Run(Compile(assemblyName, [], source), out var output);
        var errors = result.Diagnostics.Concat(diagnostics)
            .Where(d => d.Severity == DiagnosticSeverity.Error && !allowed.Contains(d.Id)).ToList();
        Assert.True(errors.Count == 0, string.Join("\n", errors));
        using var image = new MemoryStream();
        var emitted = output.Emit(image);
        Assert.True(emitted.Success, string.Join("\n", emitted.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error)));
        return Assembly.Load(image.ToArray());
    }

    /// <summary>Calls a static method of a type in a loaded assembly (see <see cref="CompileAndLoad"/>) and awaits it.</summary>
    public static async Task<object?> CallAsync(Assembly assembly, string type, string method, params object?[] arguments)
    {
        var task = (Task)assembly.GetType(type, throwOnError: true)!.GetMethod(method)!.Invoke(null, arguments)!;
        await task.WaitAsync(TestNetwork.Patience);
        return task.GetType().GetProperty("Result")?.GetValue(task);
    }

    /// <summary>Everything generated, one file after another, for snapshots.</summary>
    public static string Text(GeneratorRunResult result) =>
        string.Join("\n", result.GeneratedSources.OrderBy(s => s.HintName, StringComparer.Ordinal)
            .Select(s => $"//// {s.HintName}\n{s.SourceText}"));

    /// <summary>Fails if a cached pipeline value holds a symbol, syntax node or compilation: those defeat caching and pin memory.</summary>
    public static void AssertHoldsNoRoslynObjects(object? value, string step)
    {
        var seen = new HashSet<object>(ReferenceEqualityComparer.Instance);
        Walk(value, step);

        void Walk(object? node, string path)
        {
            if (node is null || node is string || node.GetType().IsPrimitive || node.GetType().IsEnum || !seen.Add(node))
                return;
            Assert.False(node is ISymbol or SyntaxNode or Compilation or SemanticModel,
                $"Step output {path} holds a {node.GetType().Name}; pipeline models must hold plain values.");
            if (node is IEnumerable items)
            {
                var i = 0;
                foreach (var item in items)
                    Walk(item, $"{path}[{i++}]");
                return;
            }

            foreach (var field in node.GetType().GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
                Walk(field.GetValue(node), $"{path}.{field.Name}");
        }
    }
}
