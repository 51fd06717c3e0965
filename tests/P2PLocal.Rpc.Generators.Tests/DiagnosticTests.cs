using Microsoft.CodeAnalysis;
using P2PLocal.Rpc.Generators.Diagnostics;

namespace P2PLocal.Rpc.Generators.Tests;

public sealed class DiagnosticTests
{
    private const string Usings = """
        using System;
        using System.Collections.Generic;
        using System.Threading;
        using System.Threading.Tasks;
        using P2PLocal.Rpc;

        """;

    /// <summary>For each diagnostic: a service that trips it, and the text its location must cover.</summary>
    public static TheoryData<string, string, string> Cases => new()
    {
        { "P2P001", "[P2PService] public class Plain { public int Add(int a) => a; }", "Plain" },
        { "P2P002", "public partial class Outer { [P2PService] public partial class Inner { public void Run() { } } }", "Inner" },
        { "P2P003", "[P2PService] public partial class Box<T> { public int Count() => 0; }", "Box" },
        { "P2P004", "[P2PService] file partial class Hidden { public void Run() { } }", "Hidden" },
        { "P2P005", "[P2PService] public partial class Refs { public void Load(ref int value) { } }", "value" },
        { "P2P005", "[P2PService] public partial class Outs { public void Load(out int value) => value = 1; }", "value" },
        { "P2P005", "[P2PService] public partial class Ins { public void Load(in int value) { } }", "value" },
        { "P2P006", "[P2PService] public partial class Spans { public int Sum(ReadOnlySpan<int> values) => 0; }", "values" },
        { "P2P006", "[P2PService] public partial class Delegates { public void Run(Func<int> callback) { } }", "callback" },
        { "P2P006", "[P2PService] public unsafe partial class Pointers { public void Run(int* where) { } }", "where" },
        { "P2P006", "[P2PService] public partial class DelegateArrays { public void Run(Action[] callbacks) { } }", "callbacks" },
        { "P2P007", "[P2PService] public partial class Tasks { public Task<Task<int>> Nested() => null!; }", "Nested" },
        { "P2P007", "[P2PService] public partial class Lambdas { public Task<Func<int>> Make() => null!; }", "Make" },
        { "P2P008", "[P2PService] public partial class Generic { public T Echo<T>(T value) => value; }", "Echo" },
        { "P2P009", "[P2PService] public partial class Overloads { public int Add(int a) => a; public int Add(int a, int b) => a + b; }", "Overloads" },
        { "P2P010", "[P2PService] public partial class Twins { public int A() => 1; [P2PFunction(Name = \"A\")] public int B() => 2; }", "Twins" },
        { "P2P011", "[P2PService] public partial class Reserved { [P2PFunction(Name = \"$methods\")] public int Methods() => 1; }", "Methods" },
        { "P2P011", "[P2PService] public partial class Empty { [P2PFunction(Name = \"\")] public int Nameless() => 1; }", "Nameless" },
        { "P2P012", "[P2PService] public partial class Tokens { public Task Run(CancellationToken a, CancellationToken b) => Task.CompletedTask; }", "b" },
        { "P2P013", "[P2PService] public interface IWithProperty { int Count { get; } int Add(int a); }", "Count" },
        { "P2P013", "[P2PService] public interface IWithEvent { event EventHandler Changed; void Run(); }", "Changed" },
        { "P2P016", "[P2PService] public partial class NoToken { public async IAsyncEnumerable<int> Count() { yield return 1; await Task.Yield(); } }", "Count" },
        { "P2P016", "[P2PService] public partial class Unmarked { public async IAsyncEnumerable<int> Count(CancellationToken ct = default) { yield return 1; await Task.Yield(); } }", "ct" },
        { "P2P016", "[P2PService] public interface IStreamsNoToken { IAsyncEnumerable<int> Count(int n); }", "Count" },
        { "P2P017", "[P2PService] public partial class StreamIn { public int Sum(IAsyncEnumerable<int> values) => 0; }", "values" },
        { "P2P017", "[P2PService] public interface IStreamIn { Task<int> Sum(IAsyncEnumerator<int> values); }", "values" },
        { "P2P018", "[P2PService] public interface ITaskOfStream { Task<IAsyncEnumerable<int>> Count(CancellationToken ct); }", "Count" },
        { "P2P018", "[P2PService] public interface IEnumerator { IAsyncEnumerator<int> Count(CancellationToken ct); }", "Count" },
        { "P2P018", "[P2PService] public interface IStreamOfStreams { IAsyncEnumerable<IAsyncEnumerable<int>> Count(CancellationToken ct); }", "Count" },
        { "P2P018", "[P2PService] public interface IStreamOfDelegates { IAsyncEnumerable<Func<int>> Count(CancellationToken ct); }", "Count" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Each_unsupported_shape_reports_its_diagnostic_at_the_culprit_and_generates_nothing(string id, string source, string culprit)
    {
        var text = Usings + source;
        var (result, _) = GeneratorHarness.Run(text);

        var diagnostic = Assert.Single(result.Diagnostics);
        Assert.Equal(id, diagnostic.Id);
        Assert.Equal(DiagnosticSeverity.Error, diagnostic.Severity);
        // Cached diagnostics carry a file path and span rather than a syntax tree.
        Assert.Equal("Service0.cs", diagnostic.Location.GetLineSpan().Path);
        Assert.Equal(culprit, text.Substring(diagnostic.Location.SourceSpan.Start, diagnostic.Location.SourceSpan.Length));
        Assert.Empty(result.GeneratedSources);
    }

    /// <summary>Types MessagePack cannot serialize: reported (still generated, so a custom resolver can lower the severity).</summary>
    public static TheoryData<string, string, string, string> SerializabilityCases => new()
    {
        { "P2P014", "public class Plain { public int A { get; set; } } [P2PService] public partial class S { public void Run(Plain plain) { } }", "plain", "The kwarg 'plain' of 'Run' cannot be serialized: Plain: the class is not marked [MessagePackObject]" },
        { "P2P014", "public record Rec(int A); [P2PService] public partial class S { public Task<List<Rec>> Run() => null!; }", "Run", "The result of 'Run' cannot be serialized: Rec: the record is not marked [MessagePackObject]" },
        { "P2P014", "public interface IShape { } [P2PService] public partial class S { public void Run(IShape shape) { } }", "shape", "IShape: an interface without [Union]" },
        { "P2P014", "public struct Raw { public int A; } [MessagePackObject] public class Box { [Key(0)] public Raw Inner { get; set; } } [P2PService] public partial class S { public void Run(Dictionary<string, Box[]> boxes) { } }", "boxes", "Raw (in Box.Inner): the struct is not marked [MessagePackObject]" },
        { "P2P015", "[MessagePackObject] public class Half { [Key(0)] public int A { get; set; } public int B { get; set; } } [P2PService] public partial class S { public void Run(Half half) { } }", "half", "Member 'B' of [MessagePackObject] type 'Half' (reached by the kwarg 'half' of 'Run') has no [Key]" },
    };

    [Theory]
    [MemberData(nameof(SerializabilityCases))]
    public void A_type_MessagePack_cannot_serialize_is_reported_at_compile_time_naming_type_member_and_fix(string id, string source, string culprit, string message)
    {
        var text = Usings + "using MessagePack;\n" + source;
        var (result, _) = GeneratorHarness.Run(text);

        var diagnostic = Assert.Single(result.Diagnostics);
        Assert.Equal(id, diagnostic.Id);
        Assert.Equal(DiagnosticSeverity.Error, diagnostic.Severity);
        Assert.Equal(culprit, text.Substring(diagnostic.Location.SourceSpan.Start, diagnostic.Location.SourceSpan.Length));
        Assert.Contains(message, diagnostic.GetMessage(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);
        Assert.NotEmpty(result.GeneratedSources);
    }

    [Fact]
    public void Serializable_shapes_are_not_reported()
    {
        var (result, _) = GeneratorHarness.Run(Usings + """
            using MessagePack;
            public enum Color { Red }
            [MessagePackObject] public sealed record Point([property: Key(0)] int X, [property: Key(1)] int Y);
            [MessagePackObject(keyAsPropertyName: true)] public class Named { public int A { get; set; } [IgnoreMember] public object? Skip { get; set; } }
            [Union(0, typeof(Circle))] public interface IShape { }
            [MessagePackObject] public class Circle : IShape { [Key(0)] public double R { get; set; } }
            [MessagePackObject] public class Tree { [Key(0)] public List<Tree> Children { get; set; } = new(); [Key(1)] public Point? At { get; set; } }
            [P2PService] public partial class S
            {
                public Dictionary<string, List<Point>> Run(Color color, Named named, IShape shape, Tree tree, (int, string) pair, Guid id, DateTimeOffset at, int?[] maybe, byte[] data, object plain) => null!;
            }
            """);
        Assert.Empty(result.Diagnostics);
    }

    [Fact]
    public void Ignored_static_and_non_public_methods_are_not_checked()
    {
        var (result, diagnostics) = GeneratorHarness.Run(Usings + """
            [P2PService]
            public partial class Fine
            {
                public int Add(int a) => a;
                [P2PIgnore] public void Load(ref int value) { }
                [P2PIgnore] public int Add(int a, int b) => a + b;
                public static void Load(Span<int> values) { }
                internal void Run(Func<int> callback) { }
            }
            """);

        Assert.Empty(result.Diagnostics);
        Assert.Empty(diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error));
    }

    [Fact]
    public void A_class_that_serves_a_contract_interface_need_not_be_partial()
    {
        var (result, diagnostics) = GeneratorHarness.Run(Usings + """
            [P2PService] public interface IClock { long Now(); }
            [P2PService] public sealed class Clock : IClock { public long Now() => 0; }
            """);

        Assert.Empty(result.Diagnostics);
        Assert.Empty(diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error));
        Assert.Equal(2, result.GeneratedSources.Length);
    }

    [Fact]
    public void Overloads_with_distinct_wire_names_are_fine()
    {
        var (result, diagnostics) = GeneratorHarness.Run(Usings + """
            [P2PService]
            public partial class Adder
            {
                public int Add(int a) => a;
                [P2PFunction(Name = "add2")] public int Add(int a, int b) => a + b;
            }
            """);

        Assert.Empty(result.Diagnostics);
        Assert.Empty(diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error));
    }

    [Fact]
    public void Generated_helper_types_do_not_clash_with_user_types_of_the_same_names()
    {
        var (result, diagnostics) = GeneratorHarness.Run(Usings + """
            namespace Demo;
            [P2PService] public partial class Foo { public int Get() => 1; }
            public class FooDispatcher { }
            public class IFooProxy { }
            public class IFooContract { }
            public class FooRegistration { }
            """);

        Assert.Empty(result.Diagnostics);
        Assert.Empty(diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error));
    }

    [Fact]
    public void Every_descriptor_has_a_fix_a_description_a_help_link_a_release_entry_and_a_test()
    {
        var root = Repository.Root;
        var releases = File.ReadAllText(Path.Combine(root, "generators", "P2PLocal.Rpc.Generators", "AnalyzerReleases.Unshipped.md"));
        var docs = File.ReadAllText(Path.Combine(root, "docs", "diagnostics.md"));
        var tested = Cases.Concat(SerializabilityCases).Select(row => (string)row[0]).ToHashSet();

        var descriptors = DiagnosticDescriptors.All.ToList();
        Assert.Equal(descriptors.Count, descriptors.Select(d => d.Id).Distinct().Count());
        foreach (var descriptor in descriptors)
        {
            Assert.Matches("^P2P0[0-9][0-9]$", descriptor.Id);
            Assert.False(string.IsNullOrWhiteSpace(descriptor.Title.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            Assert.False(string.IsNullOrWhiteSpace(descriptor.Description.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            Assert.Equal("https://github.com/p2plocal/P2PLocal.Rpc/blob/main/docs/diagnostics.md#" + descriptor.Id.ToLowerInvariant(), descriptor.HelpLinkUri);
            Assert.Contains($"<a id=\"{descriptor.Id.ToLowerInvariant()}\"></a>{descriptor.Id}", docs, StringComparison.Ordinal);
            Assert.Contains(descriptor.Id + " |", releases, StringComparison.Ordinal);
            Assert.Contains(descriptor.Id, docs, StringComparison.Ordinal);
            Assert.Contains(descriptor.Id, tested);
        }
    }
}
