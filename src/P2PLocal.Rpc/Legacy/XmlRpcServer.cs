using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.Net.Sockets;
using MessagePack;
using Microsoft.Extensions.Logging;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Protocol;
using P2PLocal.Rpc.Server;
using P2PLocal.Rpc.Transport;

namespace P2PLocal.Rpc.Legacy;

/// <summary>
/// Serves Python p2p-local callers (issue 13): XML-RPC over HTTP/1.x on the service port, one request per connection,
/// as Python's SimpleXMLRPCServer does. The connection listener hands every accepted connection to
/// <see cref="Sniff"/>: one whose first byte is an upper-case letter (an HTTP method such as <c>POST</c>) is served
/// here; any other goes back to the framed protocol, whose first byte is always 0 (the high byte of a small hello's length).
/// </summary>
/// <remarks>
/// The framed limits hold here too: the whole request (head and body) must arrive within
/// <see cref="NodeOptions.HandshakeTimeout"/>; the head is at most <see cref="HttpMessage.MaxHeadBytes"/>; the body at
/// most <see cref="NodeOptions.MaxFrameSize"/>; values nest at most as deep as the serializer's
/// <see cref="MessagePackSecurity.MaximumObjectGraphDepth"/>; connections here count against
/// <see cref="NodeOptions.MaxIncomingConnections"/> and the per-address limit, and ones still sending their request are
/// evicted first. Each connection runs one request, so <see cref="NodeOptions.MaxConcurrentRequestsPerConnection"/> is
/// met by construction. Thread-safe.
/// </remarks>
internal sealed class XmlRpcServer(IRequestHost host, int maxBodyBytes)
{
    private static readonly string[] s_introspection = ["system.listMethods", "system.methodHelp", "system.methodSignature"];
    private readonly ConcurrentDictionary<Exchange, byte> _exchanges = new();
    private volatile bool _draining;

    /// <summary>Connections being sniffed or served here.</summary>
    public int Count => _exchanges.Count;

    /// <summary>Takes an accepted connection: serves it here if it speaks HTTP, else calls <paramref name="serveFramed"/>.</summary>
    /// <param name="socket">The accepted connection; this server owns it until it hands it back.</param>
    /// <param name="serveFramed">Serves the connection with the framed protocol (it then owns the socket and the slot).</param>
    /// <param name="release">Frees the connection's slot in the listener's tables, once, when this side closes it.</param>
    public void Sniff(Socket socket, Action serveFramed, Action release)
    {
        var exchange = new Exchange(socket, host.Options.TimeProvider);
        _exchanges[exchange] = 0;
        exchange.Run = RunAsync(exchange, serveFramed, release);
    }

    /// <summary>Closes the oldest connection still sending its request; false when every one is running a request.</summary>
    public bool TryEvictWaiting()
    {
        var oldest = _exchanges.Keys.Where(e => !e.Running).MinBy(e => e.OpenedTicks);
        if (oldest is null || !_exchanges.TryRemove(oldest, out _))
            return false;
        host.Logger.LogWarning("Connection limit reached: closed an XML-RPC connection that was still sending its request");
        oldest.Abort();
        return true;
    }

    /// <summary>Stops serving: closes connections still sending, lets running requests finish for <paramref name="grace"/>, then cancels them.</summary>
    public async Task DrainAsync(TimeSpan grace)
    {
        _draining = true;
        foreach (var exchange in _exchanges.Keys.Where(e => !e.Running))
            exchange.Abort();
        var running = Task.WhenAll(_exchanges.Keys.Select(e => e.Run)); // Run never faults: RunAsync catches and logs everything
        if (!await ServerConnection.CompletesWithinAsync(running, grace).ConfigureAwait(false))
        {
            foreach (var exchange in _exchanges.Keys)
                exchange.Abort();
            await ServerConnection.CompletesWithinAsync(running, TimeSpan.FromSeconds(1)).ConfigureAwait(false);
        }
    }

    private async Task RunAsync(Exchange exchange, Action serveFramed, Action release)
    {
        await Task.CompletedTask.ConfigureAwait(ConfigureAwaitOptions.ForceYielding); // off the accept loop, onto the pool
        var handedOff = false;
        try
        {
            exchange.Cancellation.CancelAfter(host.Options.HandshakeTimeout);
            var first = new byte[1];
            if (await exchange.Socket.ReceiveAsync(first, SocketFlags.Peek, exchange.Cancellation.Token).ConfigureAwait(false) == 0)
                return;
            if (first[0] is < (byte)'A' or > (byte)'Z')
            {
                handedOff = _exchanges.TryRemove(exchange, out _); // false: evicted meanwhile
                if (handedOff)
                    serveFramed();
                return;
            }

            await ServeAsync(exchange).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or IOException or OperationCanceledException or ObjectDisposedException or EndOfStreamException)
        {
            host.Logger.LogDebug("XML-RPC connection from {Remote} closed: {Reason}", SafeRemote(exchange.Socket), e.Message);
        }
#pragma warning disable CA1031 // nothing a peer sends may fault the node or its shutdown
        catch (Exception e)
#pragma warning restore CA1031
        {
            host.Logger.LogWarning(e, "Serving an XML-RPC connection from {Remote} failed", SafeRemote(exchange.Socket));
        }
        finally
        {
            if (!handedOff)
            {
                _exchanges.TryRemove(exchange, out _);
                exchange.Socket.Dispose();
                release();
            }

            exchange.Cancellation.Dispose();
        }
    }

    private async Task ServeAsync(Exchange exchange)
    {
        var socket = exchange.Socket;
        var token = exchange.Cancellation.Token;
        byte[] response;
        try
        {
            var head = await HttpMessage.ReadHeadAsync(socket, token).ConfigureAwait(false);
            var parts = head.StartLine.Split(' ');
            if (parts.Length != 3 || !parts[2].StartsWith("HTTP/1.", StringComparison.Ordinal))
                throw new HttpProtocolException(400, "Bad Request", "This port serves P2PLocal.Rpc frames, or XML-RPC over HTTP/1.x.");
            if (parts[0] != "POST")
                throw new HttpProtocolException(405, "Method Not Allowed", $"XML-RPC calls are POSTs, not {parts[0]}.");
            if (head.HasTransferEncoding)
                throw new HttpProtocolException(501, "Not Implemented", "Chunked request bodies are not supported: send a Content-Length.");
            var length = head.ContentLength ?? throw new HttpProtocolException(411, "Length Required", "An XML-RPC request needs a Content-Length.");
            if (head.Headers.TryGetValue("expect", out var expect) && expect.Equals("100-continue", StringComparison.OrdinalIgnoreCase) && length <= maxBodyBytes)
                await HttpMessage.SendAsync(socket, "HTTP/1.1 100 Continue\r\n\r\n", default, token).ConfigureAwait(false);
            var body = await HttpMessage.ReadBodyAsync(socket, head, length, maxBodyBytes, token).ConfigureAwait(false);

            exchange.Running = true;
            exchange.Cancellation.CancelAfter(Timeout.InfiniteTimeSpan); // the request is in: from now on only shutdown cancels
            // A Python caller sends no name or instance id: the context is empty but for its address (PeerInfo.IsLegacy's convention).
            response = await ExecuteAsync(body, new CallContext("", "", socket.RemoteEndPoint as System.Net.IPEndPoint), token).ConfigureAwait(false);
        }
        catch (HttpProtocolException e)
        {
            host.Logger.LogDebug("Refused an HTTP request from {Remote}: {Status} {Reason}", SafeRemote(socket), e.Status, e.Message);
            await SendAsync(exchange, $"HTTP/1.0 {e.Status} {e.Reason}\r\nContent-Type: text/plain\r\n", System.Text.Encoding.UTF8.GetBytes(e.Message)).ConfigureAwait(false);
            return;
        }

        await SendAsync(exchange, "HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\n", response).ConfigureAwait(false);
    }

    /// <summary>Sends a response (a peer that does not read it gets <see cref="NodeOptions.StalledConnectionTimeout"/>), then closes.</summary>
    private async Task SendAsync(Exchange exchange, string head, byte[] body)
    {
        exchange.Cancellation.CancelAfter(host.Options.StalledConnectionTimeout);
        await HttpMessage.SendAsync(exchange.Socket, $"{head}Server: P2PLocal.Rpc\r\nContent-Length: {body.Length.ToString(CultureInfo.InvariantCulture)}\r\nConnection: close\r\n\r\n",
            body, exchange.Cancellation.Token).ConfigureAwait(false);
        exchange.Socket.Shutdown(SocketShutdown.Send);
    }

    /// <summary>Runs one call and returns the methodResponse: the result, or a fault a Python user can read.</summary>
    private async Task<byte[]> ExecuteAsync(ReadOnlyMemory<byte> body, CallContext context, CancellationToken cancellationToken)
    {
        XmlRpcValues.Call call;
        try
        {
            call = XmlRpcValues.ReadCall(body, host.SerializerOptions.Security.MaximumObjectGraphDepth);
        }
        catch (XmlRpcFormatException e)
        {
            return Fault(ErrorCode.BadRequest, "BadRequest", e.Message);
        }

        if (_draining)
            return Fault(ErrorCode.ShuttingDown, "ShuttingDown", "The node is shutting down.");
        object? result;
        switch (call.Method)
        {
            case "system.listMethods":
                result = ListMethods();
                break;
            case "system.methodSignature" or "system.methodHelp":
                if (call.Params is not [string name])
                    return Fault(ErrorCode.InvalidKwargs, "TypeError", $"{call.Method} takes one string: the function's name.");
                var function = host.Functions.FirstOrDefault(f => f.Name == name);
                if (function is null && !s_introspection.Contains(name))
                    return NoSuchFunction(name);
                result = call.Method == "system.methodHelp" ? Help(function) : Signature(function);
                break;
            default:
                var dispatcher = call.Method.StartsWith('$') ? null : host.FindFunction(call.Method);
                if (dispatcher is null)
                    return NoSuchFunction(call.Method);
                var kwargs = call.Params switch
                {
                    [] => [],
                    [Dictionary<string, object?> map] => map,
                    _ => null,
                };
                if (kwargs is null)
                {
                    return Fault(ErrorCode.InvalidKwargs, nameof(InvalidKwargsException),
                        $"'{call.Method}' takes keyword arguments: pass one struct of them, as the Python p2p-local's request(target, function, **kwargs) does, not {call.Params.Length} positional parameter(s).");
                }

                try
                {
                    result = await InvokeAsync(dispatcher, call.Method, kwargs, body.Length, context, cancellationToken).ConfigureAwait(false);
                }
                catch (BusyException e)
                {
                    return Fault(ErrorCode.Busy, "Busy", e.Message);
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    return Fault(ErrorCode.Canceled, nameof(OperationCanceledException), "The request was cancelled: the node is shutting down.");
                }
                catch (InvalidKwargsException e)
                {
                    return Fault(ErrorCode.InvalidKwargs, nameof(InvalidKwargsException), e.Message);
                }
                catch (Exception e)
                {
                    host.Logger.LogDebug(e, "Function {Function} failed for an XML-RPC caller", call.Method);
                    return Fault(ErrorCode.HandlerFailed, e.GetType().FullName ?? e.GetType().Name, e.Message);
                }

                break;
        }

        byte[] response;
        try
        {
            response = XmlRpcValues.WriteResult(result);
        }
        catch (XmlRpcTypeException e)
        {
            return Fault(ErrorCode.HandlerFailed, "TypeError", $"The result of '{call.Method}' cannot cross XML-RPC: {e.Message}");
        }

        return response.Length <= maxBodyBytes ? response
            : Fault(ErrorCode.FrameTooLarge, nameof(FrameTooLargeException), $"The result of '{call.Method}' is {response.Length} bytes of XML; at most {maxBodyBytes} are allowed (NodeOptions.MaxFrameSize).");
    }

    /// <summary>The framed server's path: the kwargs as one MessagePack map into the dispatcher, its MessagePack result back out as plain values.</summary>
    /// <remarks>
    /// The kwargs count against <see cref="NodeOptions.MaxKwargsElements"/> and, while the call runs, the node-wide
    /// <see cref="NodeOptions.MaxKwargsElementsInFlight"/> / <see cref="NodeOptions.MaxRequestBytesInFlight"/>, as framed requests do.
    /// </remarks>
    private async Task<object?> InvokeAsync(IServiceDispatcher dispatcher, string function, Dictionary<string, object?> kwargs, int requestBytes, CallContext context, CancellationToken cancellationToken)
    {
        var kwargsBuffer = new ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(kwargsBuffer);
        XmlRpcValues.WritePlain(ref writer, kwargs);
        writer.Flush();
        var scan = new MessagePackReader(kwargsBuffer.WrittenMemory);
        if (MessagePackValues.Scan(ref scan, UntrustedInputSecurity.MaxElementsOf(host.SerializerOptions), out var elements) is { } problem)
            throw new InvalidKwargsException($"The kwargs of '{function}' are refused: {problem}.");
        if (!host.WorkInFlight.TryTake(elements, requestBytes))
        {
            throw new BusyException($"Node '{host.LocalHello.Name}' is at its cap on work in flight across all running requests (NodeOptions.MaxKwargsElementsInFlight " +
                $"{host.WorkInFlight.MaxElements} kwargs values, MaxRequestBytesInFlight {host.WorkInFlight.MaxBytes} bytes); try again later.");
        }

        var resultBuffer = new ArrayBufferWriter<byte>();
        try
        {
            await dispatcher.InvokeAsync(new FunctionCall(function, kwargsBuffer.WrittenMemory, resultBuffer, host.SerializerOptions, context, cancellationToken)).ConfigureAwait(false);
        }
        finally
        {
            host.WorkInFlight.Give(elements, requestBytes);
        }

        if (resultBuffer.WrittenCount > maxBodyBytes)
            throw new FrameTooLargeException($"The result of '{function}' is {resultBuffer.WrittenCount} bytes; at most {maxBodyBytes} are allowed.");
        var reader = new MessagePackReader(resultBuffer.WrittenMemory);
        return KwargsCodec.ReadValue(ref reader, host.SerializerOptions);
    }

    private object?[] ListMethods() =>
        [.. host.Functions.Select(f => f.Name).Where(n => !n.StartsWith('$')).Concat(s_introspection).Order(StringComparer.Ordinal)];

    private byte[] NoSuchFunction(string function) =>
        Fault(ErrorCode.MethodNotFound, "MethodNotFound", $"Node '{host.LocalHello.Name}' has no function '{function}'.");

    /// <summary>
    /// The XML-RPC signature, <c>[[result, kwargs]]</c>: every function takes one struct. A dynamic function has none,
    /// and says so as Python's SimpleXMLRPCServer does.
    /// </summary>
    private static object? Signature(FunctionDescriptor? function) =>
        function is null || function.ReturnType == "object" && function.Parameters.Count == 0
            ? "signatures not supported"
            : new object?[] { new object?[] { XmlRpcType(function.ReturnType), "struct" } };

    /// <summary>The function's kwargs in C# terms: <c>add(a: long, b: long = ...) -> long</c>; empty for a dynamic function, as for a Python function without a docstring.</summary>
    private static string Help(FunctionDescriptor? function) =>
        function is null || function.Parameters.Count == 0 && function.ReturnType == "object" ? ""
            : $"{function.Name}({string.Join(", ", function.Parameters.Select(p => $"{p.Name}: {p.Type}{(p.IsOptional ? " = ..." : "")}"))}) -> {function.ReturnType}";

    private static string XmlRpcType(string csharpType) => csharpType.TrimEnd('?') switch
    {
        "int" or "long" or "short" or "byte" or "sbyte" or "ushort" or "uint" or "ulong" => "int",
        "double" or "float" => "double",
        "bool" => "boolean",
        "string" => "string",
        "byte[]" => "base64",
        "System.DateTime" or "DateTime" => "dateTime.iso8601",
        "void" or "System.Threading.Tasks.Task" or "System.Threading.Tasks.ValueTask" => "nil",
        var t when t.EndsWith(']') || t.Contains("List<", StringComparison.Ordinal) => "array",
        _ => "struct",
    };

    /// <summary>A fault as Python raises it: <c>faultString</c> is <c>&lt;class 'Type'&gt;:message</c>; <c>faultCode</c> is PROTOCOL.md's error code.</summary>
    private static byte[] Fault(ErrorCode code, string type, string message) =>
        XmlRpcValues.WriteFault((int)code, $"<class '{type}'>:{message}");

    private static string SafeRemote(Socket socket)
    {
        try
        {
            return socket.RemoteEndPoint?.ToString() ?? "?";
        }
        catch (ObjectDisposedException)
        {
            return "?";
        }
    }

    /// <summary>The node is at its in-flight cap: a fault with code 4 (busy).</summary>
    private sealed class BusyException(string message) : Exception(message);

    /// <summary>One accepted connection while it is sniffed and served.</summary>
    private sealed class Exchange(Socket socket, TimeProvider time)
    {
        public Socket Socket { get; } = socket;

        /// <summary>Fires at the request deadline, on eviction, or at shutdown.</summary>
        public CancellationTokenSource Cancellation { get; } = new(Timeout.InfiniteTimeSpan, time);

        public long OpenedTicks { get; } = time.GetTimestamp();

        public volatile bool Running;

        public Task Run { get; set; } = Task.CompletedTask;

        public void Abort()
        {
            try
            {
                Cancellation.Cancel();
            }
            catch (ObjectDisposedException)
            {
                // Finished meanwhile.
            }
        }
    }
}
