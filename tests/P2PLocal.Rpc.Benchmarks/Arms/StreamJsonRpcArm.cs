using System.Net;
using System.Net.Sockets;
using StreamJsonRpc;

namespace P2PLocal.Rpc.Benchmarks.Arms;

/// <summary>StreamJsonRpc with its MessagePack formatter and length-header framing over one TCP connection.</summary>
public sealed class StreamJsonRpcArm : IArm
{
    private LoopbackAcceptor? _acceptor;
    private readonly List<IDisposable> _owned = [];
    private JsonRpc? _client;

    public string Name => "streamjsonrpc";

    public int ServerPort { get; private set; }

    public Task StartAsync()
    {
        _acceptor = new LoopbackAcceptor(16, OnAccepted);
        ServerPort = _acceptor.Port;
        return Task.CompletedTask;
    }

    private void OnAccepted(Socket socket)
    {
        var stream = new NetworkStream(socket, ownsSocket: true);
        var server = new JsonRpc(new LengthHeaderMessageHandler(stream, stream, new MessagePackFormatter()), new GreeterTarget());
        lock (_owned)
        {
            _owned.Add(stream);
            _owned.Add(server);
        }

        server.StartListening();
    }

    public async Task<ICaller> CreateCallerAsync()
    {
        if (_client is null)
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, ServerPort));
            var stream = new NetworkStream(socket, ownsSocket: true);
            _client = new JsonRpc(new LengthHeaderMessageHandler(stream, stream, new MessagePackFormatter()));
            _client.StartListening();
            lock (_owned)
            {
                _owned.Add(stream);
                _owned.Add(_client);
            }
        }

        return new Caller(_client);
    }

    public ValueTask DisposeAsync()
    {
        _acceptor?.Dispose();
        lock (_owned)
        {
            foreach (var owned in _owned)
                owned.Dispose();
        }

        return default;
    }

    private sealed class Caller(JsonRpc rpc) : ICaller
    {
        public ValueTask<string> GreetAsync(string name) => new(rpc.InvokeAsync<string>("Greet", name));

        public ValueTask<Payload> EchoAsync(Payload payload) => new(rpc.InvokeAsync<Payload>("Echo", payload));
    }

#pragma warning disable CA1822 // JsonRpc serves a target object's instance methods.
    public sealed class GreeterTarget
    {
        public string Greet(string name) => "Hello, " + name;

        public Payload Echo(Payload payload) => payload;
    }
#pragma warning restore CA1822
}
