using System.Buffers;
using System.Globalization;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using MessagePack;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Legacy;
using P2PLocal.Rpc.Protocol;
using P2PLocal.Rpc.Transport;

namespace P2PLocal.Rpc;

/// <summary>Calls to legacy (Python p2p-local) peers: XML-RPC over HTTP/1.0, one connection per call (issue 13).</summary>
public sealed partial class Node
{
    private static readonly TimeSpan s_localAddressesLifetime = TimeSpan.FromSeconds(10);
    private static (long Ticks, HashSet<IPAddress>? Addresses) s_localAddresses; // none until the first look

    /// <summary>
    /// Sends one call to a legacy peer. The kwargs go as the one struct parameter that the Python
    /// <c>request(target, function, **kwargs)</c> sends; the result comes back as the dynamic API gives it and goes
    /// through <paramref name="readResult"/> as MessagePack, so <c>RequestAsync&lt;T&gt;</c> and typed proxies convert
    /// as for any peer. <c>$methods</c> becomes <c>system.listMethods</c>, its names dynamic functions.
    /// </summary>
    private async ValueTask<TResult> InvokeLegacyAsync<TState, TResult>(PeerInfo peer, string function, TState state,
        KwargsWriter<TState> writeKwargs, ResultReader<TResult> readResult, CancellationToken cancellationToken)
    {
        if (!_options.LegacyInterop)
        {
            throw new P2PException($"Peer '{peer.Name}' at {peer.EndPoint} is a Python p2p-local node (XML-RPC). " +
                "Set NodeOptions.LegacyInterop = true to call it.");
        }

        var listing = function == Messages.MethodsFunction;
        byte[] request;
        try
        {
            request = listing ? XmlRpcValues.WriteCall("system.listMethods", []) : XmlRpcValues.WriteCall(function, [ToPlainKwargs(state, writeKwargs)]);
        }
        catch (XmlRpcTypeException e)
        {
            throw new InvalidKwargsException($"'{peer.Name}'.{function}: {e.Message}", e);
        }

        if (request.Length > _options.MaxFrameSize)
            throw new FrameTooLargeException($"The call to '{peer.Name}'.{function} is {request.Length} bytes of XML; at most {_options.MaxFrameSize} are allowed (NodeOptions.MaxFrameSize).");

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (_options.RequestTimeout != Timeout.InfiniteTimeSpan)
            timeout.CancelAfter(_options.RequestTimeout);
        XmlRpcValues.Response response;
        try
        {
            var body = await PostAsync(peer, request, timeout.Token).ConfigureAwait(false);
            response = XmlRpcValues.ReadResponse(body, SerializerOptions.Security.MaximumObjectGraphDepth);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested && timeout.IsCancellationRequested)
        {
            throw new TimeoutException($"'{peer.Name}'.{function} did not answer within {_options.RequestTimeout} (NodeOptions.RequestTimeout).");
        }
        catch (XmlRpcFormatException e)
        {
            throw new P2PException($"Peer '{peer.Name}' sent a reply to '{function}' that cannot be read: {e.Message}", e);
        }

        if (response.FaultCode is { } code)
            throw FaultToException(code, response.FaultString ?? "", peer.Name, function);

        var result = new ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(result);
        if (listing)
        {
            if (response.Value is not object?[] names || names.Any(n => n is not string))
                throw new P2PException($"Peer '{peer.Name}' answered system.listMethods with something other than a list of names.");
            BuiltInFunctions.WriteDescriptors(ref writer, [.. names.Select(n => FunctionDescriptor.Dynamic((string)n!))]);
        }
        else
        {
            XmlRpcValues.WritePlain(ref writer, response.Value);
        }

        writer.Flush();
        var reader = new MessagePackReader(result.WrittenMemory);
        return readResult(ref reader, SerializerOptions);
    }

    /// <summary>The kwargs as plain values: written by <paramref name="writeKwargs"/> (as for any peer), then read back.</summary>
    private Dictionary<string, object?> ToPlainKwargs<TState>(TState state, KwargsWriter<TState> writeKwargs)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(buffer);
        writeKwargs(ref writer, state, SerializerOptions);
        writer.Flush();
        var reader = new MessagePackReader(buffer.WrittenMemory);
        if (reader.NextMessagePackType != MessagePackType.Map)
            throw new InvalidKwargsException("Kwargs must be a map from parameter name to value.");
        try
        {
            return (Dictionary<string, object?>)KwargsCodec.ReadValue(ref reader, SerializerOptions)!;
        }
        catch (InvalidCastException e)
        {
            throw new InvalidKwargsException("Kwargs keys must be strings.", e);
        }
    }

    /// <summary>POSTs one XML-RPC request and returns the response body; HTTP/1.0, one request per connection, as Python's server wants.</summary>
    private async Task<ReadOnlyMemory<byte>> PostAsync(PeerInfo peer, byte[] request, CancellationToken cancellationToken)
    {
        var endPoint = LegacyEndPoint(peer.EndPoint);
        using var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using (var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            connectTimeout.CancelAfter(_options.ConnectTimeout);
            try
            {
                await socket.ConnectAsync(endPoint, connectTimeout.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException || e is OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                throw new PeerConnectionException($"Cannot reach legacy peer '{peer.Name}' at {endPoint}: {e.Message}", e);
            }
        }

        try
        {
            var host = endPoint.ToString();
            await HttpMessage.SendAsync(socket,
                $"POST /RPC2 HTTP/1.0\r\nHost: {host}\r\nUser-Agent: P2PLocal.Rpc\r\nContent-Type: text/xml\r\nContent-Length: {request.Length.ToString(CultureInfo.InvariantCulture)}\r\n\r\n",
                request, cancellationToken).ConfigureAwait(false);
            var head = await HttpMessage.ReadHeadAsync(socket, cancellationToken).ConfigureAwait(false);
            var status = head.StartLine.Split(' ', 3);
            if (status.Length < 2 || !status[0].StartsWith("HTTP/1.", StringComparison.Ordinal))
                throw new PeerConnectionException($"Legacy peer '{peer.Name}' at {endPoint} did not answer in HTTP/1.x.");
            if (status[1] != "200")
                throw new P2PException($"Legacy peer '{peer.Name}' answered HTTP {string.Join(' ', status[1..])}.");
            if (head.HasTransferEncoding)
                throw new P2PException($"Legacy peer '{peer.Name}' sent a chunked reply, which this node does not read.");
            return await HttpMessage.ReadBodyAsync(socket, head, head.ContentLength, _options.MaxFrameSize, cancellationToken).ConfigureAwait(false);
        }
        catch (Legacy.HttpProtocolException e)
        {
            throw e.Status == 413 ? new FrameTooLargeException($"The reply of legacy peer '{peer.Name}': {e.Message}")
                : new P2PException($"Legacy peer '{peer.Name}' sent a reply that cannot be read: {e.Message}", e);
        }
        catch (Exception e) when (e is SocketException or IOException or EndOfStreamException)
        {
            throw new PeerConnectionException($"The connection to legacy peer '{peer.Name}' at {endPoint} dropped mid-call: {e.Message}", e);
        }
    }

    /// <summary>
    /// Where to reach a legacy peer. Python serves on <c>localhost</c> only and advertises
    /// <c>gethostbyname(gethostname())</c> (127.0.1.1 on Debian-like hosts, else a LAN address); its own client then
    /// connects to localhost, so this node does the same for any address of this host.
    /// </summary>
    internal static IPEndPoint LegacyEndPoint(IPEndPoint advertised)
    {
        var address = advertised.Address.IsIPv4MappedToIPv6 ? advertised.Address.MapToIPv4() : advertised.Address;
        return IPAddress.IsLoopback(address) || LocalAddresses().Contains(address)
            ? new IPEndPoint(address.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Loopback : IPAddress.Loopback, advertised.Port)
            : advertised;
    }

    private static HashSet<IPAddress> LocalAddresses()
    {
        var cached = s_localAddresses;
        // Stamping "none yet" long.MinValue made now - stamp overflow to a negative age, read as fresh: an empty set forever.
        if (cached.Addresses is not null && Environment.TickCount64 - cached.Ticks < s_localAddressesLifetime.TotalMilliseconds)
            return cached.Addresses;
        HashSet<IPAddress> addresses = [];
        try
        {
            foreach (var network in NetworkInterface.GetAllNetworkInterfaces())
                addresses.UnionWith(network.GetIPProperties().UnicastAddresses.Select(a => a.Address));
        }
        catch (NetworkInformationException)
        {
            // No interface list: only loopback counts as this host.
        }

        s_localAddresses = (Environment.TickCount64, addresses);
        return addresses;
    }

    /// <summary>
    /// A fault as an exception. This node's faults carry PROTOCOL.md's error codes; Python's carry 1, with
    /// <c>&lt;class 'Type'&gt;:message</c>, and <c>method "x" is not supported</c> for an unknown function.
    /// </summary>
    internal static Exception FaultToException(int code, string faultString, string peerName, string function)
    {
        var match = Regex.Match(faultString, @"^<class '(?<type>[^']*)'>:(?<message>.*)$", RegexOptions.Singleline, TimeSpan.FromSeconds(1));
        var type = match.Success ? match.Groups["type"].Value : "Fault";
        var message = match.Success ? match.Groups["message"].Value : faultString;
        var errorCode = Enum.IsDefined((ErrorCode)code) ? (ErrorCode)code : ErrorCode.HandlerFailed;
        if (message.Contains($"method \"{function}\" is not supported", StringComparison.Ordinal))
            errorCode = ErrorCode.MethodNotFound;
        return WireErrors.ToException(errorCode, type, message, peerName, function);
    }
}
