using System.Text;

namespace P2PLocal.Rpc;

/// <summary>Waiting for a peer with a deadline, and saying what was seen instead when it does not come.</summary>
public sealed partial class PeerDirectory
{
    /// <summary>How many (protocol, name) pairs of other protocols are remembered for near-miss hints; the oldest go first.</summary>
    private const int MaxOtherProtocolNames = 32;

    private readonly Queue<(string Protocol, string Name)> _otherProtocols = new();

    /// <summary>
    /// Completes as soon as a peer of that name is seen (at once if it already is), or fails after
    /// <paramref name="timeout"/> with an error that names the peer, this node's protocol and discovery port, and
    /// the near misses seen meanwhile: the name in another case, or on another protocol.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="PeerNotFoundException">No peer of that name was seen within <paramref name="timeout"/>.</exception>
    /// <exception cref="OperationCanceledException">The cancellation token fired first.</exception>
    /// <exception cref="ObjectDisposedException">The node shut down first.</exception>
    public Task<PeerInfo> WaitForAsync(string name, TimeSpan timeout) => WaitForAsync(name, timeout, CancellationToken.None);

    /// <inheritdoc cref="WaitForAsync(string, TimeSpan)"/>
    public async Task<PeerInfo> WaitForAsync(string name, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (timeout < TimeSpan.Zero && timeout != Timeout.InfiniteTimeSpan)
            throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "The timeout must not be negative.");
        // A linked token rather than Task.WaitAsync: cancelling removes the waiter, so timed-out waits leave nothing behind.
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            return await WaitForAsync(name, deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new PeerNotFoundException(DescribeMissing(name, timeout), e) { PeerName = name };
        }
    }

    /// <summary>Whether a claim on <paramref name="name"/> is being checked (its node probed) right now.</summary>
    internal bool IsCheckingClaimOn(string name)
    {
        lock (_gate)
            return CandidatesOnLocked(name).Any();
    }

    /// <summary>Remembers a name beaconed on another protocol (bounded), so a wait that times out can point at it.</summary>
    internal void NoteOtherProtocol(string name, string protocol)
    {
        lock (_gate)
        {
            if (_otherProtocols.Contains((protocol, name)))
                return;
            if (_otherProtocols.Count >= MaxOtherProtocolNames)
                _otherProtocols.Dequeue();
            _otherProtocols.Enqueue((protocol, name));
        }
    }

    private string DescribeMissing(string name, TimeSpan timeout)
    {
        var options = _host.Options;
        var text = new StringBuilder()
            .Append("Node '").Append(_host.Name).Append("' saw no peer named '").Append(name).Append("' within ")
            .Append(timeout.TotalSeconds.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture)).Append(" s on protocol '")
            .Append(options.Protocol).Append("', discovery port ").Append(options.DiscoveryPort).Append(" (")
            .Append(options.Scope == DiscoveryScope.Loopback ? "loopback scope" : "LAN scope").Append(").");
        if (name == _host.Name)
            text.Append(" That is this node's own name: a node is not its own peer.");

        List<string> misses;
        lock (_gate)
        {
            misses =
            [
                .. _peers.Values.Where(p => p.Name != name && string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase))
                    .Select(p => $"'{p.Name}' (another case)").Distinct(),
                .. _otherProtocols.Where(o => string.Equals(o.Name, name, StringComparison.OrdinalIgnoreCase))
                    .Select(o => $"'{o.Name}' on protocol '{o.Protocol}'"),
            ];
            if (_peers.Named(name).Length > 1)
                misses.Add($"'{name}' claimed by two live nodes (a name conflict)");
        }

        if (misses.Count > 0)
            text.Append(" Seen instead: ").Append(string.Join(", ", misses)).Append('.');
        else
            text.Append(" Check that the peer runs, uses the same protocol, discovery port and scope, and that no firewall drops UDP broadcast.");
        return text.ToString();
    }
}
