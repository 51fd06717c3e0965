using ApprovalTests;
using ApprovalTests.Namers;
using ApprovalTests.Reporters;
using Microsoft.CodeAnalysis;

namespace P2PLocal.Rpc.Generators.Tests;

/// <summary>
/// The generated code for representative services, compared with the approved text in Snapshots/. On a change, the
/// test writes a *.received.txt beside the approved file; read the diff and rename it to *.approved.txt if it is right.
/// </summary>
[UseApprovalSubdirectory("Snapshots")]
[UseReporter(typeof(QuietReporter))]
public sealed class SnapshotTests
{
    private static void VerifyGenerated(params string[] sources)
    {
        var (result, diagnostics) = GeneratorHarness.Run(sources);
        Assert.Empty(result.Diagnostics);
        Assert.Empty(diagnostics.Where(d => d.Severity >= DiagnosticSeverity.Warning));
        Approvals.Verify(GeneratorHarness.Text(result));
    }

    [Fact]
    public void Greeter_from_the_issue() => VerifyGenerated("""
        using System.Threading;
        using System.Threading.Tasks;
        using P2PLocal.Rpc;

        namespace Demo;

        [P2PService]
        public partial class Greeter
        {
            public string Greet(string name) => $"Hello, {name}";

            public async Task<int> AddAsync(int a, int b = 1, CancellationToken ct = default)
            {
                await Task.Yield();
                return a + b;
            }
        }
        """);

    [Fact]
    public void Streaming_functions() => VerifyGenerated("""
        using System.Collections.Generic;
        using System.Runtime.CompilerServices;
        using System.Threading;
        using System.Threading.Tasks;
        using P2PLocal.Rpc;

        namespace Demo;

        [P2PService]
        public partial class Ticker
        {
            public async IAsyncEnumerable<int> Count(int from, int count = 10, [EnumeratorCancellation] CancellationToken ct = default)
            {
                for (var i = 0; i < count; i++)
                {
                    await Task.Yield();
                    yield return from + i;
                }
            }

            public IAsyncEnumerable<string?> Lines(CallContext caller, CancellationToken cancellationToken) => Empty();

            private static async IAsyncEnumerable<string?> Empty()
            {
                await Task.Yield();
                yield break;
            }
        }
        """);

    [Fact]
    public void Idempotent_function_is_marked_in_the_contract() => VerifyGenerated("""
        using System.Threading.Tasks;
        using P2PLocal.Rpc;

        namespace Demo;

        [P2PService]
        public interface IInventory
        {
            [P2PFunction(Idempotent = true)]
            Task<int> CountAsync(string item);

            [P2PFunction(Name = "take", Idempotent = false)]
            Task TakeAsync(string item);
        }
        """);

    [Fact]
    public void Every_result_shape_and_default_value() => VerifyGenerated("""
        using System.Collections.Generic;
        using System.Threading;
        using System.Threading.Tasks;
        using P2PLocal.Rpc;

        public enum Mode { Off = -1, On = 1 }

        [P2PService]
        internal partial class Shapes : System.IDisposable
        {
            public override string ToString() => "not a function";
            public void Dispose() { }
            public void Nothing() { }
            public Task TaskOnly(CancellationToken cancellationToken) => Task.CompletedTask;
            public ValueTask ValueTaskOnly() => default;
            public ValueTask<long?> Maybe(long? value = null) => new(value);
            public decimal Money(decimal amount = 1.5m, float ratio = 0.25f, double big = 1e300, char mark = 'x', Mode mode = Mode.Off) => amount;
            public string Escape(string text = "quote \" and \\ and \n") => text;
            public int Keywords(int @class, string @event = "e") => @class;
            public int Total(params int[] values) => 0;
            public Dictionary<string, List<int>> Index(IReadOnlyList<string> words) => new();
            [P2PFunction(Name = "renamed.function")]
            public string? Renamed(string? value) => value;
            [P2PIgnore]
            public void Hidden() { }
            public static void StaticIsNotAFunction() { }
            private void PrivateIsNotAFunction() { }
        }
        """);

    [Fact]
    public void Contract_first_interface_and_a_class_that_serves_it() => VerifyGenerated("""
        using System.Threading;
        using System.Threading.Tasks;
        using MessagePack;
        using P2PLocal.Rpc;

        namespace Shop.Contracts
        {
            [MessagePackObject]
            public sealed class Order
            {
                [Key(0)] public string Item { get; set; } = "";
                [Key(1)] public int Quantity { get; set; }
            }

            [P2PService]
            public interface IOrders
            {
                Task<int> PlaceAsync(Order order, CancellationToken cancellationToken = default);
                Order[] List();
            }
        }

        namespace Shop.Server
        {
            [P2PService]
            public partial class Orders : Shop.Contracts.IOrders
            {
                public Task<int> PlaceAsync(Shop.Contracts.Order order, CancellationToken cancellationToken = default) => Task.FromResult(1);
                Shop.Contracts.Order[] Shop.Contracts.IOrders.List() => [];
                public void NotInTheContract() { }
            }
        }
        """);

    [Fact]
    public void Object_kwargs_and_results_are_described_for_callers() => VerifyGenerated("""
        using System.Collections.Generic;
        using MessagePack;
        using P2PLocal.Rpc;

        namespace Geo;

        [MessagePackObject]
        public sealed record Point([property: Key(0)] double X, [property: Key(1)] double Y);

        [MessagePackObject]
        public sealed class Segment
        {
            [Key(0)] public Point From { get; set; } = new(0, 0);
            [Key(2)] public Point To { get; set; } = new(0, 0);
            [Key(3)] public string? Label { get; set; }
        }

        [MessagePackObject(keyAsPropertyName: true)]
        public sealed class Measurement
        {
            public double Length { get; set; }
            [Key("label")] public string Name { get; set; } = "";
        }

        [P2PService]
        public partial class Geometry
        {
            public Measurement Measure(Segment segment, int decimals = 2) => new();
            public double Perimeter(List<Point> points, bool closed = true) => 0;
            public int Count(int[] values) => values.Length;
        }
        """);

    [Fact]
    public void Record_service() => VerifyGenerated("""
        using P2PLocal.Rpc;

        namespace Demo;

        [P2PService]
        public partial record Counter(int Start)
        {
            public int Next(int step = 1) => Start + step;
        }
        """);
}
