using System.Globalization;

namespace P2PLocal.Rpc.Generators.Tests;

/// <summary>
/// Publishes samples/P2PLocal.Rpc.AotSample with Native AOT and runs two of its nodes, which call each other typed with
/// [MessagePackObject] arguments and results. Slow (a native build), so it carries the Aot trait; it needs clang and
/// zlib1g-dev, which .ci/run installs, and says so when they are missing.
/// </summary>
public sealed class AotTests
{
    private static readonly TimeSpan s_patience = TimeSpan.FromMinutes(9);

    [Fact]
    [Trait("Category", "Aot")]
    public async Task Two_native_AOT_nodes_call_each_other_typed_and_our_code_has_no_trim_or_AOT_warning()
    {
        Assert.True(File.Exists("/usr/bin/clang") || File.Exists("/usr/local/bin/clang"),
            "Native AOT needs clang and zlib1g-dev (apt-get install clang zlib1g-dev; .ci/run does it).");
        var work = Directory.CreateTempSubdirectory("p2p-aot-");
        try
        {
            var output = Path.Combine(work.FullName, "out");
            var (code, log) = await ChildProcess.RunAsync("dotnet", Repository.Root, s_patience, "publish", Path.Combine(Repository.Root, "samples", "P2PLocal.Rpc.AotSample"),
                "-c", "Release", "-r", "linux-x64", "-o", output, "--artifacts-path", Path.Combine(work.FullName, "artifacts"));
            Assert.True(code == 0, $"dotnet publish exited with {code}:\n{log}");

            // MessagePack 2.5 warns about its own dynamic resolvers (not used by typed calls); no warning may be about
            // our assemblies, the generated code or the sample (the project path each line ends with aside).
            var ours = log.Split('\n')
                .Where(line => line.Contains("warning", StringComparison.Ordinal))
                .Select(line => line.Contains(" [/", StringComparison.Ordinal) ? line[..line.LastIndexOf(" [/", StringComparison.Ordinal)] : line)
                .Where(line => line.Contains("P2PLocal", StringComparison.Ordinal) || line.Contains("AotSample", StringComparison.Ordinal)
                    || line.Contains("warning CS", StringComparison.Ordinal))
                .ToList();
            Assert.True(ours.Count == 0, "Warnings outside MessagePack:\n" + string.Join("\n", ours));

            var binary = Path.Combine(output, "P2PLocal.Rpc.AotSample");
            Assert.True(File.Exists(binary), "No native binary at " + binary);
            var port = TestNetwork.FreeUdpPort().ToString(CultureInfo.InvariantCulture);
            var bob = ChildProcess.RunAsync(binary, work.FullName, s_patience, "bob", "alice", port);
            var alice = ChildProcess.RunAsync(binary, work.FullName, s_patience, "alice", "bob", port);
            foreach (var (name, run) in new[] { ("alice", alice), ("bob", bob) })
            {
                var (exit, text) = await run;
                Assert.True(exit == 0, $"{name} exited with {exit}:\n{text}");
                var peer = name == "alice" ? "bob" : "alice";
                Assert.Contains($"OK {name}: {peer} has 4 Kilogram tea, 10 Kilogram rice; rice costs 7.5; found rice; made 3 salt; {peer} is done", text, StringComparison.Ordinal);
            }
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }
}
