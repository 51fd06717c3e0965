using P2PLocal.Rpc.Cli.Output;

namespace P2PLocal.Rpc.Cli.Commands;

/// <summary>
/// Turns successive snapshots of the peer list into joins and leaves (by name and instance, so a restart is a leave
/// and a join), and keeps each mark on the live table for <see cref="MarkFor"/>.
/// </summary>
/// <remarks>Not thread-safe: one watch loop owns it.</remarks>
internal sealed class PeerWatch
{
    public const string Joined = "joined";
    public const string Left = "left";

    /// <summary>How long a join or leave stays marked on the live table.</summary>
    public static readonly TimeSpan MarkFor = TimeSpan.FromSeconds(10);

    private readonly Dictionary<(string Name, string Instance), PeerJson> _current = [];
    private readonly Dictionary<(string Name, string Instance), (string Change, DateTimeOffset At, PeerJson Peer)> _marks = [];

    /// <summary>Takes the newest snapshot and returns what changed since the last one.</summary>
    public List<(string Change, PeerJson Peer)> Update(IEnumerable<PeerJson> snapshot, DateTimeOffset now)
    {
        var changes = new List<(string, PeerJson)>();
        var next = snapshot.ToDictionary(p => (p.Name, p.Instance));
        foreach (var (key, peer) in next)
        {
            if (!_current.ContainsKey(key))
            {
                changes.Add((Joined, peer));
                _marks[key] = (Joined, now, peer);
            }
        }

        foreach (var (key, peer) in _current)
        {
            if (!next.ContainsKey(key))
            {
                changes.Add((Left, peer));
                _marks[key] = (Left, now, peer);
            }
        }

        _current.Clear();
        foreach (var (key, peer) in next)
            _current[key] = peer;
        foreach (var key in _marks.Where(m => now - m.Value.At > MarkFor).Select(m => m.Key).ToList())
            _marks.Remove(key);
        return changes;
    }

    /// <summary>The rows of the live table: current peers (marked when they joined lately), then peers that left lately.</summary>
    public IEnumerable<(string Mark, PeerJson Peer)> Rows(DateTimeOffset now)
    {
        foreach (var (key, peer) in _current.OrderBy(p => p.Key.Name, StringComparer.Ordinal).ThenBy(p => p.Key.Instance, StringComparer.Ordinal))
            yield return (_marks.TryGetValue(key, out var mark) && now - mark.At <= MarkFor ? mark.Change : "", peer);
        foreach (var (_, mark) in _marks)
        {
            if (mark.Change == Left && now - mark.At <= MarkFor)
                yield return (Left, mark.Peer);
        }
    }
}
