using System.Net;

namespace P2PLocal.Rpc.Transport;

/// <summary>Where a peer instance serves, as much of it as a connection needs (the peer table's entry stays above).</summary>
/// <param name="Name">The peer's name, for error messages and its TLS check.</param>
/// <param name="InstanceId">The instance the connection must reach (a restarted peer is another instance).</param>
/// <param name="EndPoint">Where it serves.</param>
/// <param name="PeerId">Its verified id in secure mode, when discovery knows it.</param>
internal readonly record struct PeerAddress(string Name, string InstanceId, IPEndPoint EndPoint, string? PeerId);
