using System.IO.Compression;

namespace P2PLocal.Rpc.Generators.Tests;

/// <summary>
/// Packs P2PLocal.Rpc and builds a tiny consumer from the package alone, so the generator is proved to ship in the
/// package and to load in the SDK's own compiler. Slow (two builds), so it carries the Pack trait, but it runs in the
/// default test command.
/// </summary>
public sealed class PackTests
{
    private static readonly TimeSpan s_buildPatience = TimeSpan.FromMinutes(8);

    private const string ConsumerProject = """
        <Project Sdk="Microsoft.NET.Sdk">
          <PropertyGroup>
            <OutputType>Exe</OutputType>
            <TargetFramework>net10.0</TargetFramework>
            <Nullable>enable</Nullable>
            <ImplicitUsings>enable</ImplicitUsings>
            <TreatWarningsAsErrors>true</TreatWarningsAsErrors>
          </PropertyGroup>
          <ItemGroup>
            <PackageReference Include="P2PLocal.Rpc" Version="VERSION" />
          </ItemGroup>
        </Project>
        """;

    private const string ConsumerProgram = """
        using P2PLocal.Rpc;

        var port = int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture);
        NodeOptions Options(string name) => new() { Name = name, Scope = DiscoveryScope.Loopback, DiscoveryPort = port };
        await using var bob = await Node.StartAsync(Options("bob"));
        bob.Register(new Echo());
        await using var alice = await Node.StartAsync(Options("alice"));
        await alice.Peers.WaitForAsync("bob").WaitAsync(TimeSpan.FromSeconds(30));
        Console.WriteLine("typed: " + await alice.Peers.Get<IEcho>("bob").ShoutAsync("hi"));

        [P2PService]
        public partial class Echo
        {
            public Task<string> ShoutAsync(string text, int times = 2) =>
                Task.FromResult(string.Concat(Enumerable.Repeat(text.ToUpperInvariant(), times)));
        }
        """;

    [Fact]
    [Trait("Category", "Pack")]
    public async Task The_package_carries_the_generator_and_a_consumer_built_from_it_makes_a_typed_call()
    {
        var root = Repository.Root;
        var work = Directory.CreateTempSubdirectory("p2p-pack-");
        try
        {
            var feed = Path.Combine(work.FullName, "feed");
            var version = "0.1.0-packtest";
            await RunAsync(root, "pack", Path.Combine(root, "src", "P2PLocal.Rpc", "P2PLocal.Rpc.csproj"), "-c", "Release",
                "-o", feed, "--artifacts-path", Path.Combine(work.FullName, "artifacts"), $"-p:Version={version}");

            using (var package = ZipFile.OpenRead(Path.Combine(feed, $"P2PLocal.Rpc.{version}.nupkg")))
                Assert.Contains(package.Entries, e => e.FullName == "analyzers/dotnet/cs/P2PLocal.Rpc.Generators.dll");

            // The consumer sits outside the repository (no Directory.Build.props of ours), restores P2PLocal.Rpc from the
            // feed into a packages folder of its own, and takes everything else from the machine's usual cache and sources.
            var consumer = Directory.CreateDirectory(Path.Combine(work.FullName, "consumer")).FullName;
            var sharedPackages = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
                ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
            await File.WriteAllTextAsync(Path.Combine(work.FullName, "Directory.Build.props"), "<Project />");
            await File.WriteAllTextAsync(Path.Combine(work.FullName, "Directory.Packages.props"), "<Project />");
            await File.WriteAllTextAsync(Path.Combine(consumer, "nuget.config"), $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration>
                  <config><add key="globalPackagesFolder" value="{Path.Combine(work.FullName, "packages")}" /></config>
                  <packageSources><add key="packtest" value="{feed}" /></packageSources>
                  <fallbackPackageFolders><add key="machine" value="{sharedPackages}" /></fallbackPackageFolders>
                </configuration>
                """);
            await File.WriteAllTextAsync(Path.Combine(consumer, "Consumer.csproj"), ConsumerProject.Replace("VERSION", version, StringComparison.Ordinal));
            await File.WriteAllTextAsync(Path.Combine(consumer, "Program.cs"), ConsumerProgram);

            await RunAsync(consumer, "build", "-c", "Release", "-o", Path.Combine(consumer, "out"));
            var output = await RunAsync(consumer, "exec", Path.Combine(consumer, "out", "Consumer.dll"), TestNetwork.FreeUdpPort().ToString(System.Globalization.CultureInfo.InvariantCulture));

            Assert.Contains("typed: HIHI", output, StringComparison.Ordinal);
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    /// <summary>Runs the dotnet CLI and returns its output; fails with the output when it exits non-zero.</summary>
    private static async Task<string> RunAsync(string directory, params string[] arguments)
    {
        var (exitCode, output) = await ChildProcess.RunAsync("dotnet", directory, s_buildPatience, arguments);
        Assert.True(exitCode == 0, $"dotnet {string.Join(' ', arguments)} exited with {exitCode}:\n{output}");
        return output;
    }
}
