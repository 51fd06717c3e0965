using System.Diagnostics;

namespace P2PLocal.Rpc.Reliability.Tests;

/// <summary>
/// A private Ethernet segment made of network namespaces: a hub namespace holding a bridge, and one namespace per
/// "host", each joined to the bridge by a veth pair and given an address in 10.213.x.0/24. Nothing is created in the
/// namespace the tests run in, so broadcasts inside never reach the machine's own interfaces. Needs root.
/// </summary>
public sealed class NetNamespaces : IDisposable
{
    private readonly List<string> _created = [];
    private readonly string _run = Guid.NewGuid().ToString("N")[..6];

    private NetNamespaces()
    {
    }

    public IReadOnlyList<string> Hosts => _created.Skip(1).ToList();

    public string Subnet { get; private set; } = "";

    /// <summary>Why the segment cannot be made here, or null when it can.</summary>
    public static string? WhyUnavailable()
    {
        if (!OperatingSystem.IsLinux())
            return "network namespaces need Linux";
        if (Environment.UserName != "root" && Environment.GetEnvironmentVariable("USER") != "root")
            return "creating network namespaces needs root";
        try
        {
            var (code, output) = Run("ip", "netns", "list");
            return code == 0 ? null : $"`ip netns` is refused here: {output}";
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return $"the `ip` tool is missing: {e.Message}";
        }
    }

    /// <summary>Creates the hub and <paramref name="hosts"/> host namespaces; throws with the kernel's words on refusal.</summary>
    public static NetNamespaces Create(int hosts)
    {
        var segment = new NetNamespaces();
        try
        {
            var third = Random.Shared.Next(1, 250);
            segment.Subnet = $"10.213.{third}";
            var hub = $"p2p{segment._run}h";
            segment.Add(hub);
            Must("ip", "-n", hub, "link", "add", "br0", "type", "bridge");
            Must("ip", "-n", hub, "link", "set", "br0", "up");
            for (var i = 0; i < hosts; i++)
            {
                var ns = $"p2p{segment._run}{(char)('a' + i)}";
                segment.Add(ns);
                var hubSide = $"port{i}";
                Must("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", hubSide, "netns", hub);
                Must("ip", "-n", hub, "link", "set", hubSide, "master", "br0");
                Must("ip", "-n", hub, "link", "set", hubSide, "up");
                Must("ip", "-n", ns, "addr", "add", $"{segment.Subnet}.{i + 1}/24", "broadcast", $"{segment.Subnet}.255", "dev", "eth0");
                Must("ip", "-n", ns, "link", "set", "eth0", "up");
                Must("ip", "-n", ns, "link", "set", "lo", "up");
            }

            return segment;
        }
        catch
        {
            segment.Dispose();
            throw;
        }
    }

    public string AddressOf(int host) => $"{Subnet}.{host + 1}";

    private void Add(string ns)
    {
        Must("ip", "netns", "add", ns);
        _created.Add(ns);
    }

    private static void Must(params string[] args)
    {
        var (code, output) = Run(args[0], args[1..]);
        if (code != 0)
            throw new InvalidOperationException($"`{string.Join(' ', args)}` failed ({code}): {output}");
    }

    private static (int Code, string Output) Run(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args)
            info.ArgumentList.Add(arg);
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, output.Trim());
    }

    /// <summary>Deletes every namespace made (their veths and the bridge go with them).</summary>
    public void Dispose()
    {
        for (var i = _created.Count - 1; i >= 0; i--)
            Run("ip", "netns", "del", _created[i]);
        _created.Clear();
    }
}
