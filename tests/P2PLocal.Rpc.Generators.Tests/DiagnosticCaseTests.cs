using System.Globalization;
using Microsoft.CodeAnalysis;

namespace P2PLocal.Rpc.Generators.Tests;

/// <summary>
/// The shapes the generator accepts or refuses beyond one case per diagnostic (<see cref="DiagnosticTests"/>): the
/// members it skips, the types it lets through, and the words of its messages.
/// </summary>
public sealed class DiagnosticCaseTests
{
    private const string Usings = """
        using System;
        using System.Collections.Generic;
        using System.Runtime.Serialization;
        using System.Threading;
        using System.Threading.Tasks;
        using MessagePack;
        using MessagePack.Formatters;
        using P2PLocal.Rpc;
        public class Plain { public int A { get; set; } }

        """;

    private sealed record Outcome(string Text, IReadOnlyList<Diagnostic> Diagnostics, string Generated, IReadOnlyList<Diagnostic> CompileErrors)
    {
        /// <summary>The source text a diagnostic's location covers.</summary>
        public string At(Diagnostic diagnostic) => Text.Substring(diagnostic.Location.SourceSpan.Start, diagnostic.Location.SourceSpan.Length);

        public static string Message(Diagnostic diagnostic) => diagnostic.GetMessage(CultureInfo.InvariantCulture);
    }

    private static Outcome Run(string source)
    {
        var text = Usings + source;
        var (result, diagnostics) = GeneratorHarness.Run(text);
        var generated = string.Join("\n", result.GeneratedSources.Select(s => s.SourceText.ToString()));
        return new Outcome(text, result.Diagnostics, generated, [.. diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error)]);
    }

    /// <summary>Runs the generator over a service it must accept whole: no diagnostic of its own, and code that compiles.</summary>
    private static Outcome Accepted(string source)
    {
        var outcome = Run(source);
        Assert.Empty(outcome.Diagnostics);
        Assert.Empty(outcome.CompileErrors);
        Assert.NotEmpty(outcome.Generated);
        return outcome;
    }

    /// <summary>Runs the generator over a service that trips exactly one diagnostic; returns it after checking its id and where it points.</summary>
    private static Diagnostic Single(string source, string id, string culprit)
    {
        var outcome = Run(source);
        var diagnostic = Assert.Single(outcome.Diagnostics);
        Assert.Equal(id, diagnostic.Id);
        Assert.Equal(culprit, outcome.At(diagnostic));
        return diagnostic;
    }

    // ---- Contracts: which members become functions ----

    [Fact]
    public void A_class_serving_a_contract_interface_dispatches_the_functions_the_interface_inherits()
    {
        var outcome = Accepted("""
            public interface IHealth { bool Ping(); }
            [P2PService] public interface IStore : IHealth { int Count(); }
            [P2PService] public sealed class Store : IStore { public int Count() => 0; public bool Ping() => true; }
            """);

        Assert.Contains("((global::IStore)_service).Count()", outcome.Generated, StringComparison.Ordinal);
        Assert.Contains("((global::IStore)_service).Ping()", outcome.Generated, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("static abstract int Make();", "Make")]
    [InlineData("static virtual int Zero() => 0;", "Zero")]
    public void A_static_abstract_or_virtual_member_of_a_contract_interface_is_refused_since_a_proxy_cannot_implement_it(string member, string culprit)
    {
        var diagnostic = Single($"[P2PService] public interface ICounter {{ int Count(); {member} }}", "P2P013", culprit);
        Assert.StartsWith($"Remove '{culprit}' from [P2PService] interface 'ICounter'", Outcome.Message(diagnostic), StringComparison.Ordinal);
    }

    [Fact]
    public void A_static_helper_with_a_body_on_a_contract_interface_is_fine_and_is_not_a_function()
    {
        var outcome = Accepted("[P2PService] public interface ICounter { int Count(); static int Twice(int x) => 2 * x; }");

        Assert.Contains("new(\"Count\"", outcome.Generated, StringComparison.Ordinal);
        Assert.DoesNotContain("Twice", outcome.Generated, StringComparison.Ordinal);
    }

    [Fact]
    public void A_Dispose_method_is_a_function_unless_the_class_is_disposable()
    {
        var plain = Accepted("[P2PService] public partial class Plainly { public void Dispose() { } public int Count() => 0; }");
        Assert.Contains("new(\"Dispose\"", plain.Generated, StringComparison.Ordinal);

        // Disposable among other interfaces: a peer must still not be able to dispose the service.
        var disposable = Accepted("""
            public interface IMarker { }
            [P2PService] public sealed partial class Held : IMarker, IDisposable
            {
                public void Dispose() { }
                public int Count() => 0;
            }
            """);
        Assert.DoesNotContain("new(\"Dispose\"", disposable.Generated, StringComparison.Ordinal);
        Assert.Contains("new(\"Count\"", disposable.Generated, StringComparison.Ordinal);
    }

    // ---- Results and kwargs the generator refuses, or lets through ----

    [Theory]
    [InlineData("ref int")]
    [InlineData("ref readonly int")]
    public void A_ref_return_is_refused(string returnType)
    {
        var diagnostic = Single($"[P2PService] public partial class Refs {{ private int _value; public {returnType} Get() => ref _value; }}", "P2P007", "Get");
        Assert.StartsWith("Change the return type of 'Get'", Outcome.Message(diagnostic), StringComparison.Ordinal);
    }

    [Fact]
    public void A_kwarg_that_cannot_be_sent_and_one_that_cannot_be_serialized_are_both_reported()
    {
        var outcome = Run("[P2PService] public partial class S { public void Run(Plain plain, Func<int> callback) { } }");

        Assert.Equal(["P2P006 callback", "P2P014 plain"], outcome.Diagnostics.Select(d => d.Id + " " + outcome.At(d)).Order(StringComparer.Ordinal));
        Assert.Empty(outcome.Generated);
    }

    [Fact]
    public void A_type_of_System_Threading_Tasks_that_is_not_a_task_and_a_user_type_named_Task_are_kwargs_like_any_other()
    {
        Accepted("""
            namespace Shop
            {
                [MessagePackObject] public sealed class Task { [Key(0)] public string Name { get; set; } = ""; }
                [P2PService] public partial class Planner { public int Plan(System.Threading.Tasks.TaskStatus status, Task task) => 0; }
            }
            """);
    }

    [Theory]
    [InlineData("public dynamic Back() => 1;")]
    [InlineData("public Task<dynamic> Back() => null!;")]
    [InlineData("public List<dynamic> Back(List<dynamic> value) => value;")]
    [InlineData("public void Back(dynamic[] values) { }")]
    [InlineData("public IAsyncEnumerable<dynamic> Back(CancellationToken ct) => null!;")]
    public void A_dynamic_result_or_a_kwarg_holding_dynamic_values_is_sent_as_plain_values_like_object(string member)
    {
        Accepted("[P2PService] public partial class Echo { " + member + " }");
    }

    [Theory]
    [InlineData("public void Back(dynamic value) { }")]
    [InlineData("public void Back(int count, dynamic value) { }")]
    public void A_bare_dynamic_kwarg_is_refused_with_the_advice_to_declare_it_object(string member)
    {
        // Generated code passing a dynamic value would be bound at run time, which the compiler refuses for its writer.
        var diagnostic = Single("[P2PService] public partial class Echo { " + member + " }", "P2P006", "value");
        Assert.Contains("declare a dynamic kwarg as object", Outcome.Message(diagnostic), StringComparison.Ordinal);
    }

    [Fact]
    public void A_kwarg_of_a_type_that_does_not_exist_is_left_to_the_compiler_error()
    {
        var outcome = Run("[P2PService] public partial class S { public void Run(Missing value) { } }");

        Assert.Empty(outcome.Diagnostics);
        Assert.Contains(outcome.CompileErrors, d => d.Id == "CS0246");
    }

    // ---- Streams ----

    public static TheoryData<string, string> StreamProblems => new()
    {
        { "IAsyncEnumerable<IAsyncEnumerable<int>>", "'System.Collections.Generic.IAsyncEnumerable<System.Collections.Generic.IAsyncEnumerable<int>>' streams items that are themselves streams or tasks;" },
        { "IAsyncEnumerable<Task<int>>", "'System.Collections.Generic.IAsyncEnumerable<System.Threading.Tasks.Task<int>>' streams items that are themselves streams or tasks;" },
        { "IAsyncEnumerable<ValueTask>", "'System.Collections.Generic.IAsyncEnumerable<System.Threading.Tasks.ValueTask>' streams items that are themselves streams or tasks;" },
        { "IAsyncEnumerable<Func<int>>", "'System.Collections.Generic.IAsyncEnumerable<System.Func<int>>' streams items that cannot be serialized;" },
    };

    [Theory]
    [MemberData(nameof(StreamProblems))]
    public void An_unsupported_stream_says_whether_its_items_are_streams_or_tasks_or_cannot_be_serialized(string returnType, string problem)
    {
        var diagnostic = Single($"[P2PService] public interface IFeed {{ {returnType} Read(CancellationToken ct); }}", "P2P018", "Read");
        Assert.Contains($"Change the return type of 'Read': {problem}", Outcome.Message(diagnostic), StringComparison.Ordinal);
    }

    [Fact]
    public void An_async_iterator_without_a_token_is_told_to_mark_it_EnumeratorCancellation()
    {
        var diagnostic = Single(
            "[P2PService] public partial class Feed { public async IAsyncEnumerable<int> Read() { yield return 1; await Task.Yield(); } }", "P2P016", "Read");
        Assert.StartsWith("Give 'Read' a CancellationToken parameter marked [EnumeratorCancellation]: ", Outcome.Message(diagnostic), StringComparison.Ordinal);
    }

    [Fact]
    public void A_stream_that_is_not_an_async_iterator_is_told_only_to_take_a_token()
    {
        var diagnostic = Single("[P2PService] public interface IFeed { IAsyncEnumerable<int> Read(); }", "P2P016", "Read");
        Assert.StartsWith("Give 'Read' a CancellationToken parameter: ", Outcome.Message(diagnostic), StringComparison.Ordinal);
    }

    [Fact]
    public void An_unserializable_stream_item_is_reported_as_the_items_of_the_function()
    {
        var diagnostic = Single("[P2PService] public interface IFeed { IAsyncEnumerable<Plain> Read(CancellationToken ct); }", "P2P014", "Read");
        Assert.StartsWith("The items of 'Read' cannot be serialized: Plain: the class is not marked [MessagePackObject]", Outcome.Message(diagnostic), StringComparison.Ordinal);
    }

    // ---- Wire names ----

    [Fact]
    public void A_function_renamed_onto_a_later_functions_name_is_a_wire_name_clash_naming_both()
    {
        var diagnostic = Single("""
            [P2PService] public partial class Twins { [P2PFunction(Name = "B")] public int A() => 1; public int B() => 2; }
            """, "P2P010", "Twins");
        Assert.StartsWith("Methods 'A' and 'B' both use the wire name 'B'", Outcome.Message(diagnostic), StringComparison.Ordinal);
    }

    // ---- Kwarg types MessagePack can or cannot write (P2P014, P2P015) ----

    [Fact]
    public void A_type_with_its_own_formatter_or_a_data_contract_needs_no_MessagePackObject()
    {
        Accepted("""
            [MessagePackFormatter(typeof(MoneyFormatter))] public sealed class Money { public long Cents { get; set; } }
            public sealed class MoneyFormatter : IMessagePackFormatter<Money?>
            {
                public void Serialize(ref MessagePackWriter writer, Money? value, MessagePackSerializerOptions options) => writer.Write(value?.Cents ?? 0);
                public Money? Deserialize(ref MessagePackReader reader, MessagePackSerializerOptions options) => new() { Cents = reader.ReadInt64() };
            }
            [DataContract] public sealed class Order { [DataMember(Order = 0)] public int Id { get; set; } }
            [P2PService] public partial class Till { public Money Total(Order order) => new(); }
            """);
    }

    [Fact]
    public void An_abstract_class_without_Union_is_reported_as_an_abstract_class()
    {
        var diagnostic = Single("""
            public abstract class Shape { public int Sides { get; set; } }
            [P2PService] public partial class S { public void Draw(Shape shape) { } }
            """, "P2P014", "shape");
        Assert.Equal(
            "The kwarg 'shape' of 'Draw' cannot be serialized: Shape: an abstract class without [Union] has no shape MessagePack can write; "
            + "add [Union(0, typeof(SomeImplementation))] for each implementation, or use a concrete [MessagePackObject] type",
            Outcome.Message(diagnostic));
    }

    [Fact]
    public void An_abstract_class_with_Union_is_fine()
    {
        Accepted("""
            [Union(0, typeof(Square))] public abstract class Shape { }
            [MessagePackObject] public sealed class Square : Shape { [Key(0)] public double Side { get; set; } }
            [P2PService] public partial class S { public void Draw(Shape shape) { } }
            """);
    }

    [Fact]
    public void Static_non_public_and_ignored_members_of_a_MessagePackObject_need_no_Key_and_are_not_checked()
    {
        Accepted("""
            [MessagePackObject]
            public class Cart
            {
                [Key(0)] public int Id { get; set; }
                public static int Created { get; set; }
                public static Plain Shared = new();
                internal int Cached;
                protected Plain Guarded { get; set; } = new();
                private Plain Hidden { get; set; } = new();
                [IgnoreMember] public Plain Cache { get; set; } = new();
                [IgnoreDataMember] public Plain Other { get; set; } = new();
                public Plain Peek() => Hidden;
            }
            [P2PService] public partial class Shop { public void Add(Cart cart) { } }
            """);
    }

    [Fact]
    public void A_MessagePackObject_member_MessagePack_has_no_formatter_for_is_reported_with_the_member()
    {
        var outcome = Run("""
            [MessagePackObject]
            public unsafe class Job
            {
                [Key(0)] public Func<int> Callback { get; set; } = null!;
                [Key(1)] public Task<int> Pending { get; set; } = null!;
                [Key(2)] public IAsyncEnumerable<int> Items { get; set; } = null!;
                [Key(3)] public List<Action> Hooks { get; set; } = new();
                [Key(4)] public int* Where;
                [Key(5)] public dynamic Anything { get; set; } = 0;
            }
            [P2PService] public partial class S { public void Run(Job job) { } }
            """);

        Assert.All(outcome.Diagnostics, d => Assert.Equal(("P2P014", "job"), (d.Id, outcome.At(d))));
        Assert.Equal(
            [
                "System.Func<int> (in Job.Callback)", "System.Threading.Tasks.Task<int> (in Job.Pending)",
                "System.Collections.Generic.IAsyncEnumerable<int> (in Job.Items)", "System.Collections.Generic.List<System.Action> (in Job.Hooks)",
                "int* (in Job.Where)",
            ],
            outcome.Diagnostics.Select(d => Outcome.Message(d).Split(": ")[1]));
        Assert.All(outcome.Diagnostics, d => Assert.EndsWith(
            ": MessagePack has no formatter for pointers, delegates, ref structs, streams or tasks; change the member's type, or mark it [IgnoreMember]",
            Outcome.Message(d), StringComparison.Ordinal));
    }

    [Fact]
    public void A_MessagePackObject_type_without_members_is_accepted_as_an_empty_array()
    {
        // The formatter's array length was the highest key + 1, taken over no keys: the generator threw (CS8785).
        var outcome = Accepted("""
            [MessagePackObject] public class Empty { }
            [MessagePackObject] public class Quiet { [IgnoreMember] public int Hidden { get; set; } }
            [P2PService] public partial class S { public int Run(Empty empty, Quiet quiet) => 1; }
            """);
        Assert.Contains("WriteArrayHeader(0)", outcome.Generated, StringComparison.Ordinal);
    }

    [Fact]
    public void A_public_member_named_EqualityContract_is_checked_like_any_other_while_a_records_own_is_not_a_member()
    {
        // A record's EqualityContract is the compiler's (protected); a class may declare a public one that MessagePack writes.
        var diagnostic = Single("""
            [MessagePackObject] public record Point([property: Key(0)] int X);
            [MessagePackObject] public class Job { [Key(0)] public Func<int> EqualityContract { get; set; } = null!; }
            [P2PService] public partial class S { public void Run(Job job, Point point) { } }
            """, "P2P014", "job");
        Assert.Contains("System.Func<int> (in Job.EqualityContract)", Outcome.Message(diagnostic), StringComparison.Ordinal);
    }

    [Fact]
    public void A_member_overridden_down_the_hierarchy_is_reported_once_at_the_most_derived_type()
    {
        var diagnostic = Single("""
            [MessagePackObject] public class Base { [Key(0)] public virtual int A { get; set; } public virtual int B { get; set; } }
            [MessagePackObject] public class Derived : Base { [Key(0)] public override int A { get; set; } public override int B { get; set; } }
            [P2PService] public partial class S { public void Run(Derived item) { } }
            """, "P2P015", "item");
        Assert.StartsWith("Member 'B' of [MessagePackObject] type 'Derived' (reached by the kwarg 'item' of 'Run') has no [Key]", Outcome.Message(diagnostic), StringComparison.Ordinal);
    }
}
