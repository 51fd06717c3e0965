using System.Diagnostics;
using System.Text.RegularExpressions;

namespace P2PLocal.Rpc.Benchmarks;

/// <summary>
/// Counts the TCP payload bytes (both directions, headers of TCP/IP excluded) on the client sockets connected to a
/// server port, from the kernel's own per-socket counters as <c>ss -ti</c> reports them (Linux). Every arm is
/// counted the same way, whatever its framing.
/// </summary>
public static partial class WireCounter
{
    public static bool IsAvailable { get; } = OperatingSystem.IsLinux() && Read(1) is not null;

    /// <summary>Bytes sent plus bytes received by every established client socket whose peer is 127.0.0.1:<paramref name="serverPort"/>.</summary>
    public static long? Read(int serverPort)
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo("ss", $"-tinH state established dst 127.0.0.1:{serverPort}")
            {
                RedirectStandardOutput = true,
                UseShellExecute = false,
            });
            if (process is null)
                return null;
            var output = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode != 0)
                return null;
            long total = 0;
            foreach (Match match in Counter().Matches(output))
                total += long.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
            return total;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }

    [GeneratedRegex(@"\bbytes_(?:sent|received):(\d+)")]
    private static partial Regex Counter();
}
