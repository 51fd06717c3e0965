namespace P2PLocal.Rpc.Benchmarks.Arms;

/// <summary>One stack under test: a server it starts on 127.0.0.1 and the callers that talk to it.</summary>
public interface IArm : IAsyncDisposable
{
    string Name { get; }

    /// <summary>The TCP port callers connect to, so the wire counter can find their sockets.</summary>
    int ServerPort { get; }

    Task StartAsync();

    /// <summary>
    /// A caller for one concurrent loop. Arms that multiplex hand every loop the same caller (one connection);
    /// <c>raw</c> opens a connection per caller.
    /// </summary>
    Task<ICaller> CreateCallerAsync();
}

public interface ICaller
{
    ValueTask<string> GreetAsync(string name);

    ValueTask<Payload> EchoAsync(Payload payload);
}
