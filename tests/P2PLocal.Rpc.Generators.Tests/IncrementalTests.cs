using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace P2PLocal.Rpc.Generators.Tests;

public sealed class IncrementalTests
{
    private const string Service = """
        using System.Threading.Tasks;
        using P2PLocal.Rpc;

        namespace Demo;

        [P2PService]
        public partial class Greeter
        {
            public string Greet(string name, int times = 1) => name;
            public Task PingAsync() => Task.CompletedTask;
            public Note Echo(Note note) => note;
        }

        [MessagePack.MessagePackObject]
        public sealed class Note
        {
            [MessagePack.Key(0)]
            public string Text { get; set; } = "";
        }

        [P2PService]
        public partial class Broken
        {
            public void Load(ref int value) { }
        }
        """;

    private static readonly string[] s_trackedSteps = [TrackingNames.Parse, TrackingNames.Services, TrackingNames.Diagnostics, TrackingNames.Formatters];

    [Fact]
    public void An_unrelated_edit_leaves_every_step_cached_and_no_step_holds_roslyn_objects()
    {
        var compilation = GeneratorHarness.Compile(Service);
        var driver = GeneratorHarness.CreateDriver().RunGenerators(compilation);
        var first = driver.GetRunResult().Results.Single();
        Assert.NotEmpty(first.GeneratedSources);
        foreach (var name in s_trackedSteps)
        {
            Assert.True(first.TrackedSteps.ContainsKey(name), $"Step {name} is not tracked.");
            foreach (var step in first.TrackedSteps[name])
            {
                foreach (var (value, _) in step.Outputs)
                    GeneratorHarness.AssertHoldsNoRoslynObjects(value, name);
            }
        }

        var edited = compilation.Clone().AddSyntaxTrees(
            CSharpSyntaxTree.ParseText("namespace Demo; public static class Unrelated { public const int Answer = 42; }", GeneratorHarness.ParseOptions));
        var second = driver.RunGenerators(edited).GetRunResult().Results.Single();

        foreach (var name in s_trackedSteps)
        {
            var outputs = second.TrackedSteps[name].SelectMany(step => step.Outputs).ToList();
            Assert.NotEmpty(outputs);
            Assert.All(outputs, output => Assert.True(
                output.Reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged,
                $"Step {name} ran again ({output.Reason}) after an unrelated edit."));
        }

        Assert.All(second.TrackedOutputSteps.SelectMany(step => step.Value).SelectMany(step => step.Outputs),
            output => Assert.Equal(IncrementalStepRunReason.Cached, output.Reason));
    }

    [Fact]
    public void Editing_a_service_regenerates_it()
    {
        var compilation = GeneratorHarness.Compile(Service);
        var driver = GeneratorHarness.CreateDriver().RunGenerators(compilation);
        var tree = compilation.SyntaxTrees.Single();
        var changed = compilation.ReplaceSyntaxTree(tree,
            CSharpSyntaxTree.ParseText(Service.Replace("int times = 1", "int times = 2", StringComparison.Ordinal), GeneratorHarness.ParseOptions, tree.FilePath));

        var second = driver.RunGenerators(changed).GetRunResult().Results.Single();

        Assert.Contains(second.TrackedSteps[TrackingNames.Services].SelectMany(s => s.Outputs), o => o.Reason == IncrementalStepRunReason.Modified);
        Assert.Contains("int times = 2", second.GeneratedSources.Single(s => s.HintName == "Demo.Greeter.P2P.g.cs").SourceText.ToString(), StringComparison.Ordinal);
    }
}
