using System.Net;
using System.Net.Sockets;

namespace P2PLocal.Rpc.Transport;

/// <summary>
/// Opens the byte stream of an outgoing connection to <paramref name="endPoint"/>: the socket it runs over (the
/// connection shuts it down on close) and the stream that frames travel over, which owns the socket. The node dials
/// TCP (no dialer); tests dial an in-memory peer so the transport runs without the network.
/// </summary>
internal delegate ValueTask<(Socket Socket, Stream Stream)> PeerDialer(IPEndPoint endPoint, CancellationToken cancellationToken);
