using System.Collections;
using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;

namespace P2PLocal.Rpc;

/// <summary>
/// The peers of a <see cref="PeerDirectory"/> by key (instance id, or <c>legacy|endpoint</c>), with an index by name:
/// <see cref="Named"/> answers in O(1) without the directory's lock, so a call resolves its peer without scanning the
/// table or waiting for discovery.
/// </summary>
/// <remarks>
/// Writes (the indexer, <see cref="Remove(string)"/>, <see cref="Clear"/>) and key reads run under the directory's
/// lock. <see cref="Named"/> may run on any thread: it reads an immutable array published per name.
/// </remarks>
internal sealed class PeerTable : IEnumerable<KeyValuePair<string, PeerInfo>>
{
    private readonly Dictionary<string, PeerInfo> _byKey = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<string>> _keysByName = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, PeerInfo[]> _byName = new(StringComparer.Ordinal);

    public int Count => _byKey.Count;

    public Dictionary<string, PeerInfo>.ValueCollection Values => _byKey.Values;

    /// <summary>Adds or replaces the peer under <paramref name="key"/>.</summary>
    public PeerInfo this[string key]
    {
        set
        {
            var renamed = _byKey.TryGetValue(key, out var old) && old.Name != value.Name;
            if (renamed)
                Unindex(old!.Name, key);
            _byKey[key] = value;
            if (old is null || renamed)
            {
                if (!_keysByName.TryGetValue(value.Name, out var keys))
                    _keysByName[value.Name] = keys = [];
                keys.Add(key);
            }

            Publish(value.Name);
        }
    }

    /// <summary>Every live instance that uses <paramref name="name"/> (usually one; two or more are a name conflict). Lock-free.</summary>
    public PeerInfo[] Named(string name) => _byName.TryGetValue(name, out var peers) ? peers : [];

    public bool ContainsKey(string key) => _byKey.ContainsKey(key);

    public bool TryGetValue(string key, [MaybeNullWhen(false)] out PeerInfo peer) => _byKey.TryGetValue(key, out peer);

    public bool Remove(string key) => Remove(key, out _);

    public bool Remove(string key, [MaybeNullWhen(false)] out PeerInfo peer)
    {
        if (!_byKey.Remove(key, out peer))
            return false;
        Unindex(peer.Name, key);
        return true;
    }

    public void Clear()
    {
        _byKey.Clear();
        _keysByName.Clear();
        _byName.Clear();
    }

    public IEnumerator<KeyValuePair<string, PeerInfo>> GetEnumerator() => _byKey.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    private void Unindex(string name, string key)
    {
        if (_keysByName.TryGetValue(name, out var keys))
            keys.Remove(key);
        Publish(name);
    }

    /// <summary>Publishes a new array for <paramref name="name"/> (never changes one already read).</summary>
    private void Publish(string name)
    {
        if (!_keysByName.TryGetValue(name, out var keys) || keys.Count == 0)
        {
            _keysByName.Remove(name);
            _byName.TryRemove(name, out _);
            return;
        }

        var peers = new PeerInfo[keys.Count];
        for (var i = 0; i < peers.Length; i++)
            peers[i] = _byKey[keys[i]];
        _byName[name] = peers;
    }
}
