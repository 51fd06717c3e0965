namespace P2PLocal.Rpc;

/// <summary>The peer could not be reached (connect, TLS or hello failed): no request was sent to it (issue 14, calls to any peer).</summary>
internal sealed class PeerUnreachableException(string message, Exception inner) : PeerConnectionException(message, inner);
