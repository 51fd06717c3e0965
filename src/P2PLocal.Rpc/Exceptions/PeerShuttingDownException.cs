namespace P2PLocal.Rpc;

/// <summary>The peer answered error 7: it is shutting down and did not run the request (calls to any peer try another, issue 14).</summary>
internal sealed class PeerShuttingDownException(string message) : PeerConnectionException(message);
