using System.Runtime.CompilerServices;
using System.Net;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using P2PLocal.Rpc.Benchmarks.Grpc;

namespace P2PLocal.Rpc.Benchmarks.Arms;

/// <summary>grpc-dotnet on Kestrel, HTTP/2 without TLS (h2c) on 127.0.0.1, one channel (one connection).</summary>
public sealed class GrpcArm : IArm
{
    private WebApplication? _app;
    private GrpcChannel? _channel;

    public string Name => "grpc";

    public int ServerPort { get; private set; }

    public async Task StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            // Let every in-flight call of one channel run at once, as the other multiplexed arms do.
            kestrel.Limits.Http2.MaxStreamsPerConnection = 1024;
            kestrel.Listen(IPAddress.Loopback, 0, listen => listen.Protocols = HttpProtocols.Http2);
        });
        builder.Services.AddGrpc();
        _app = builder.Build();
        _app.MapGrpcService<GreeterService>();
        await _app.StartAsync();
        var address = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        ServerPort = new Uri(address).Port;
    }

    public Task<ICaller> CreateCallerAsync()
    {
        _channel ??= GrpcChannel.ForAddress($"http://127.0.0.1:{ServerPort}", new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler { EnableMultipleHttp2Connections = false },
        });
        return Task.FromResult<ICaller>(new Caller(new Greeter.GreeterClient(_channel)));
    }

    public async ValueTask DisposeAsync()
    {
        _channel?.Dispose();
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }

    private sealed class Caller(Greeter.GreeterClient client) : ICaller
    {
        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
        public async ValueTask<string> GreetAsync(string name) =>
            (await client.GreetAsync(new GreetRequest { Name = name })).Message;

        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]

        public async ValueTask<Payload> EchoAsync(Payload payload) =>
            Payload.FromProto(await client.EchoAsync(payload.ToProto()));
    }

    private sealed class GreeterService : Greeter.GreeterBase
    {
        public override Task<GreetReply> Greet(GreetRequest request, ServerCallContext context) =>
            Task.FromResult(new GreetReply { Message = "Hello, " + request.Name });

        public override Task<Grpc.Payload> Echo(Grpc.Payload request, ServerCallContext context) => Task.FromResult(request);
    }
}
