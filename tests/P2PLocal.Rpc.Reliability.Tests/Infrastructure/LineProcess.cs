using System.Diagnostics;
using System.Threading.Channels;

namespace P2PLocal.Rpc.Reliability.Tests;

/// <summary>
/// A child process driven by lines: its stdout lines queued in order (the queue completes when stdout closes), its
/// stderr kept for error messages. The test host and the Python legacy node both run this way.
/// </summary>
public sealed class LineProcess : IDisposable
{
    private readonly Channel<string> _lines = Channel.CreateUnbounded<string>();
    private readonly List<string> _stderr = [];

    /// <summary>Starts the process (stdin, stdout and stderr redirected) and begins reading its output.</summary>
    public LineProcess(ProcessStartInfo info)
    {
        info.RedirectStandardInput = true;
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        info.UseShellExecute = false;
        Process = Process.Start(info) ?? throw new InvalidOperationException($"Could not start {info.FileName}.");
        Process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
                _lines.Writer.TryComplete();
            else
                _lines.Writer.TryWrite(e.Data);
        };
        Process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (_stderr)
                    _stderr.Add(e.Data);
            }
        };
        Process.BeginOutputReadLine();
        Process.BeginErrorReadLine();
    }

    public Process Process { get; }

    /// <summary>Its stdout, line by line.</summary>
    public ChannelReader<string> Lines => _lines.Reader;

    /// <summary>What it wrote to stderr so far.</summary>
    public string Stderr
    {
        get
        {
            lock (_stderr)
                return string.Join('\n', _stderr);
        }
    }

    /// <summary>Writes one line to its stdin.</summary>
    public async Task SendLineAsync(string line)
    {
        await Process.StandardInput.WriteLineAsync(line);
        await Process.StandardInput.FlushAsync();
    }

    public void Dispose() => Process.Dispose();
}
