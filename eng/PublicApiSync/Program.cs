using System.Diagnostics;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.MSBuild;
using Microsoft.CodeAnalysis.Text;

// Rewrites PublicAPI.Unshipped.txt so that it declares exactly the public API that is not in PublicAPI.Shipped.txt.
//
// The lines come from the PublicApiAnalyzers themselves, not from a re-implementation of their format: with the
// unshipped file emptied in memory, the analyzer reports RS0016 on every undeclared public symbol and puts the exact
// line it expects in the diagnostic's "PublicAPIName" property (the same property its own code fix writes from).
// RS0017 on a shipped line means that API is gone, which the unshipped file records as "*REMOVED*<line>".
//
// Usage: dotnet run --project eng/PublicApiSync [-- [--check] [--verbose] [path/to/Project.csproj]]

const string ShippedFileName = "PublicAPI.Shipped.txt";
const string UnshippedFileName = "PublicAPI.Unshipped.txt";
const string RemovedPrefix = "*REMOVED*";
const string DeclareNewApiId = "RS0016";
const string RemoveDeletedApiId = "RS0017";
// The property holding the exact API line: "APIName" in PublicApiAnalyzers 3.3.x, "PublicAPIName" in later versions.
string[] publicApiNameProperties = ["PublicAPIName", "APIName"];

var check = args.Contains("--check");
var verbose = args.Contains("--verbose");
var projectArg = args.FirstOrDefault(a => !a.StartsWith("--", StringComparison.Ordinal));
string projectPath;
if (projectArg is not null)
{
    projectPath = Path.GetFullPath(projectArg);
}
else
{
    var root = FindRepoRoot(Environment.CurrentDirectory) ?? FindRepoRoot(AppContext.BaseDirectory);
    if (root is null)
        return Fail("cannot find P2PLocal.Rpc.sln above the current directory; pass the project path");
    projectPath = Path.Combine(root, "src", "P2PLocal.Rpc", "P2PLocal.Rpc.csproj");
}
if (!File.Exists(projectPath))
    return Fail($"no project at {projectPath}");

// The workspace reads references and analyzers from the restore output, so a clean clone needs a restore first.
if (RunDotnet("restore", projectPath) != 0)
    return Fail("dotnet restore failed");

using var workspace = MSBuildWorkspace.Create();
var loadProblems = new List<string>();
workspace.WorkspaceFailed += (_, e) => loadProblems.Add(e.Diagnostic.ToString());
Console.WriteLine($"Opening {projectPath}");
await workspace.OpenProjectAsync(projectPath).ConfigureAwait(false);

// A multi-targeted project opens as one Project per target framework; each must agree with the one shared file.
var projects = workspace.CurrentSolution.Projects
    .Where(p => string.Equals(p.FilePath, projectPath, StringComparison.Ordinal))
    .OrderBy(p => p.Name, StringComparer.Ordinal)
    .ToList();
if (projects.Count == 0)
    return Fail("the workspace loaded no project:" + Environment.NewLine + string.Join(Environment.NewLine, loadProblems));

string? unshippedPath = null;
string[] header = [];
var perTarget = new List<(string Name, SortedSet<string> Lines)>();
foreach (var project in projects)
{
    var unshipped = FindAdditionalFile(project, UnshippedFileName);
    var shipped = FindAdditionalFile(project, ShippedFileName);
    if (unshipped?.FilePath is null || shipped?.FilePath is null)
        return Fail($"{project.Name}: {ShippedFileName} and {UnshippedFileName} must both be AdditionalFiles");
    unshippedPath = unshipped.FilePath;

    // Keep the file's directives (#nullable enable); everything else is recomputed.
    var oldText = await unshipped.GetTextAsync().ConfigureAwait(false);
    header = [.. oldText.Lines.Select(l => l.ToString().Trim()).Where(l => l.StartsWith('#'))];
    var emptiedSolution = project.Solution;
    foreach (var copy in project.AdditionalDocuments.Where(d => string.Equals(d.FilePath, unshipped.FilePath, StringComparison.Ordinal)))
        emptiedSolution = emptiedSolution.WithAdditionalDocumentText(copy.Id, SourceText.From(string.Join('\n', header) + "\n", Encoding.UTF8));
    var emptied = emptiedSolution.GetProject(project.Id)!;

    var compilation = await emptied.GetCompilationAsync().ConfigureAwait(false);
    if (compilation is null)
        return Fail($"{project.Name}: no compilation");
    var errors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
    if (errors.Count > 0)
    {
        // Symbols of a broken compilation give a wrong API list; fix the build first.
        foreach (var error in errors.Take(20))
            Console.Error.WriteLine(error);
        return Fail($"{project.Name}: the project does not compile ({errors.Count} errors)");
    }

    var analyzers = emptied.AnalyzerReferences
        .Where(r => (r.FullPath ?? r.Display ?? "").Contains("PublicApiAnalyzers", StringComparison.OrdinalIgnoreCase))
        .SelectMany(r => r.GetAnalyzers(emptied.Language))
        .ToArray();
    if (analyzers.Length == 0)
        return Fail($"{project.Name}: no Microsoft.CodeAnalysis.PublicApiAnalyzers analyzer among the project's analyzers");

    var diagnostics = await compilation
        .WithAnalyzers([.. analyzers], emptied.AnalyzerOptions)
        .GetAnalyzerDiagnosticsAsync()
        .ConfigureAwait(false);

    if (verbose)
    {
        Console.WriteLine($"analyzers: {string.Join(", ", analyzers.Select(a => a.GetType().FullName))}; additional: {string.Join(", ", emptied.AnalyzerOptions.AdditionalFiles.Select(f => f.Path))}");
        foreach (var g in diagnostics.GroupBy(d => d.Id))
            Console.WriteLine($"  {g.Key}: {g.Count()} e.g. {g.First()} props: {string.Join("; ", g.First().Properties.Select(p => p.Key + "=" + p.Value))}");
    }
    var shippedText = await shipped.GetTextAsync().ConfigureAwait(false);
    var lines = new SortedSet<string>(StringComparer.Ordinal);
    foreach (var diagnostic in diagnostics)
    {
        if (diagnostic.Id == DeclareNewApiId)
        {
            var name = publicApiNameProperties.Select(p => diagnostic.Properties.GetValueOrDefault(p)).FirstOrDefault(v => v is not null);
            if (name is null)
                return Fail($"{project.Name}: {diagnostic.Id} without the API line in its properties (analyzer version not supported): {diagnostic}");
            lines.Add(name);
        }
        else if (diagnostic.Id == RemoveDeletedApiId)
        {
            var span = diagnostic.Location.GetLineSpan();
            if (!string.Equals(span.Path, shipped.FilePath, StringComparison.Ordinal))
                return Fail($"{project.Name}: unexpected {diagnostic}");
            lines.Add(RemovedPrefix + shippedText.Lines[span.StartLinePosition.Line].ToString().Trim());
        }
    }
    Console.WriteLine($"{project.Name}: {lines.Count} unshipped API lines");
    perTarget.Add((project.Name, lines));
}

// One file serves every target framework, so it must hold each framework's API; say so when they differ.
var all = new SortedSet<string>(perTarget.SelectMany(t => t.Lines), StringComparer.Ordinal);
foreach (var (name, lines) in perTarget)
{
    foreach (var line in all.Where(l => !lines.Contains(l)))
        Console.Error.WriteLine($"warning: {name} lacks '{line}'; the build of that target will report RS0017 (split the files per target framework)");
}

var newText = new StringBuilder();
foreach (var line in header.Length > 0 ? header : ["#nullable enable"])
    newText.Append(line).Append('\n');
foreach (var line in all)
    newText.Append(line).Append('\n');

var current = File.Exists(unshippedPath) ? await File.ReadAllTextAsync(unshippedPath!).ConfigureAwait(false) : "";
if (string.Equals(current.ReplaceLineEndings("\n"), newText.ToString(), StringComparison.Ordinal))
{
    Console.WriteLine($"{unshippedPath} is up to date ({all.Count} lines).");
    return 0;
}
if (check)
{
    Console.Error.WriteLine($"{unshippedPath} is out of date; run: dotnet run --project eng/PublicApiSync");
    return 1;
}
await File.WriteAllTextAsync(unshippedPath!, newText.ToString(), new UTF8Encoding(false)).ConfigureAwait(false);
Console.WriteLine($"Wrote {unshippedPath} ({all.Count} lines).");
return 0;

static TextDocument? FindAdditionalFile(Project project, string fileName) =>
    project.AdditionalDocuments.FirstOrDefault(d => string.Equals(Path.GetFileName(d.FilePath), fileName, StringComparison.OrdinalIgnoreCase));

static string? FindRepoRoot(string start)
{
    for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
    {
        if (File.Exists(Path.Combine(dir.FullName, "P2PLocal.Rpc.sln")))
            return dir.FullName;
    }
    return null;
}

static int RunDotnet(params string[] arguments)
{
    // DOTNET_HOST_PATH is the dotnet that launched `dotnet run`; fall back to PATH.
    var startInfo = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet");
    foreach (var argument in arguments)
        startInfo.ArgumentList.Add(argument);
    using var process = Process.Start(startInfo)!;
    process.WaitForExit();
    return process.ExitCode;
}

static int Fail(string message)
{
    Console.Error.WriteLine("PublicApiSync: " + message);
    return 2;
}
