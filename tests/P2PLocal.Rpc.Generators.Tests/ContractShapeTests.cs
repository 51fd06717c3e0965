using System.Globalization;
using Microsoft.CodeAnalysis;

namespace P2PLocal.Rpc.Generators.Tests;

public sealed class ContractShapeTests
{
    private const string Contract = """
        using System.Threading;
        using System.Threading.Tasks;
        using P2PLocal.Rpc;

        namespace Shared;

        [P2PService]
        public interface IInventory
        {
            Task<int> CountAsync(string item, bool exact = true, CancellationToken cancellationToken = default);
            void Clear();
        }
        """;

    [Fact]
    public void A_class_in_another_assembly_serves_a_contract_interface_it_sees_only_as_metadata()
    {
        var (_, contractDiagnostics) = GeneratorHarness.Run(GeneratorHarness.Compile("Shared", [], Contract), out var shared);
        Assert.Empty(contractDiagnostics.Where(d => d.Severity == DiagnosticSeverity.Error));

        var server = GeneratorHarness.Compile("Server", [shared.ToMetadataReference()], """
            using System.Threading;
            using System.Threading.Tasks;
            using P2PLocal.Rpc;

            namespace Server;

            [P2PService]
            public sealed class Inventory : Shared.IInventory
            {
                public Task<int> CountAsync(string item, bool exact = true, CancellationToken cancellationToken = default) => Task.FromResult(1);
                void Shared.IInventory.Clear() { }
            }
            """);
        var (result, diagnostics) = GeneratorHarness.Run(server);

        Assert.Empty(result.Diagnostics);
        Assert.Empty(diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error));
        var text = Assert.Single(result.GeneratedSources).SourceText.ToString();
        Assert.Contains("((global::Shared.IInventory)_service).Clear()", text, StringComparison.Ordinal);
        Assert.DoesNotContain("Proxy", text, StringComparison.Ordinal); // the contract's own assembly has the proxy
    }

    [Fact]
    public void A_contract_interface_includes_the_methods_of_its_base_interfaces()
    {
        var (result, diagnostics) = GeneratorHarness.Run("""
            using P2PLocal.Rpc;
            public interface IHealth { bool Ping(); }
            [P2PService] public interface IStore : IHealth { int Count(); }
            """);

        Assert.Empty(result.Diagnostics);
        Assert.Empty(diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error));
        var text = Assert.Single(result.GeneratedSources).SourceText.ToString();
        Assert.Contains("new(\"Ping\"", text, StringComparison.Ordinal);
        Assert.Contains("public bool Ping() =>", text, StringComparison.Ordinal);
    }

    [Fact]
    public void The_fingerprint_follows_the_documented_algorithm()
    {
        var (result, _) = GeneratorHarness.Run(Contract);
        var text = Assert.Single(result.GeneratedSources).SourceText.ToString();

        // docs/generator.md: functions in ordinal order of wire name; kwargs without the token; '=' marks optional.
        var expected = Fnv1a("Clear()->void;CountAsync(item:string,exact:bool=,)->int;");
        Assert.Contains($"public const string Fingerprint = \"{expected}\";", text, StringComparison.Ordinal);
    }

    [Fact]
    public void A_bool_default_reaches_the_dispatcher_as_written_false_as_well_as_true()
    {
        var (result, _) = GeneratorHarness.Run("""
            using P2PLocal.Rpc;
            [P2PService] public partial class Flags { public int Count(bool exact = false, bool strict = true) => 0; }
            """);
        var text = Assert.Single(result.GeneratedSources).SourceText.ToString();

        // A kwarg the caller leaves out takes the parameter's default (run S's Parser.cs:400 wrote every bool as true).
        Assert.Contains(" arg_exact = false;", text, StringComparison.Ordinal);
        Assert.Contains(" arg_strict = true;", text, StringComparison.Ordinal);
    }

    [Fact]
    public void The_fingerprint_hashes_UTF16_code_units_as_PROTOCOL_md_says_and_the_Python_client_computes_it()
    {
        var (result, _) = GeneratorHarness.Run("""
            using P2PLocal.Rpc;
            [P2PService] public partial class Unicode { public string Grüße(string 名前) => 名前; public int Zähle() => 1; }
            """);
        var text = Assert.Single(result.GeneratedSources).SourceText.ToString();

        Assert.Contains("Signature = \"Grüße(名前:string,)->string;\"", text, StringComparison.Ordinal);
        // samples/python/test_p2plocal.py pins the same value; one round per UTF-8 byte would give 65faa93a27c3bc8c.
        Assert.Contains("public const string Fingerprint = \"bcb0d1801eb697f0\";", text, StringComparison.Ordinal);
    }

    [Fact]
    public void The_fingerprint_ignores_declaration_order_and_nullable_marks_but_not_kwarg_names()
    {
        static string FingerprintOf(string members)
        {
            var (result, _) = GeneratorHarness.Run($$"""
                using P2PLocal.Rpc;
                [P2PService] public partial class S { {{members}} }
                """);
            var text = Assert.Single(result.GeneratedSources).SourceText.ToString();
            var at = text.IndexOf("Fingerprint = \"", StringComparison.Ordinal) + "Fingerprint = \"".Length;
            return text.Substring(at, 16);
        }

        var original = FingerprintOf("public string A(string x) => x; public int B() => 1;");
        Assert.Equal(original, FingerprintOf("public int B() => 1; public string? A(string? x) => x;"));
        Assert.NotEqual(original, FingerprintOf("public string A(string y) => y; public int B() => 1;"));
        Assert.NotEqual(original, FingerprintOf("public string A(string x = \"\") => x; public int B() => 1;"));
        Assert.NotEqual(original, FingerprintOf("public string A(string x) => x; public long B() => 1;"));
    }

    private static string Fnv1a(string text)
    {
        var hash = 14695981039346656037UL;
        foreach (var c in text)
        {
            hash ^= c;
            hash *= 1099511628211UL;
        }

        return hash.ToString("x16", CultureInfo.InvariantCulture);
    }
}
