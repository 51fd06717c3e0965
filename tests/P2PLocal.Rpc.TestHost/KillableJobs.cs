using P2PLocal.Rpc.TestHost.Contracts;

namespace P2PLocal.Rpc.TestHost;

/// <summary>
/// Appends "run N" or "look N" to a file as each call starts (flushed before the call goes on), so a test can count
/// where every call ran even after it killed this process; each call then takes 2 ms, so a kill lands mid-load.
/// </summary>
internal sealed class KillableJobs(string name, string ranFile) : IKillableJobs
{
    private readonly Lock _gate = new();

    public Task<string> RunAsync(int job, CancellationToken cancellationToken = default) => RecordAsync("run", job, cancellationToken);

    public Task<string> LookAsync(int job, CancellationToken cancellationToken = default) => RecordAsync("look", job, cancellationToken);

    private async Task<string> RecordAsync(string what, int job, CancellationToken cancellationToken)
    {
        lock (_gate)
            File.AppendAllText(ranFile, $"{what} {job}\n");
        await Task.Delay(2, cancellationToken);
        return name;
    }
}
