using System.Diagnostics;
using System.Text;

namespace P2PLocal.Rpc.Generators.Tests;

/// <summary>Runs a program (the dotnet CLI, or a binary a test built) to its end, for the tests that build and publish.</summary>
internal static class ChildProcess
{
    /// <summary>Runs <paramref name="program"/> and returns its exit code and output; kills it after <paramref name="patience"/>.</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(string program, string directory, TimeSpan patience, params string[] arguments)
    {
        var start = new ProcessStartInfo(program) { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);
        if (program == "dotnet" && arguments[0] is "build" or "pack" or "publish")
        {
            // No build servers or reused nodes: they would outlive the test and keep its output pipes open.
            start.ArgumentList.Add("-nodeReuse:false");
            start.ArgumentList.Add("-p:UseSharedCompilation=false");
        }

        // The test host runs under the dotnet test's MSBuild environment; a child build must pick its own.
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase)).ToList())
            start.Environment.Remove(name);
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        start.Environment["DOTNET_CLI_USE_MSBUILD_SERVER"] = "0";
        start.Environment["MSBUILDDISABLENODEREUSE"] = "1";

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            await process.WaitForExitAsync().WaitAsync(patience);
        }
        catch (TimeoutException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        return (process.ExitCode, new StringBuilder().Append(await stdout).Append(await stderr).ToString());
    }
}
