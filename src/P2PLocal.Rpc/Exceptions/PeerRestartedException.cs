namespace P2PLocal.Rpc;

/// <summary>The endpoint answered as another instance than the one discovery knows: the peer restarted there.</summary>
internal sealed class PeerRestartedException(string message) : PeerConnectionException(message);
