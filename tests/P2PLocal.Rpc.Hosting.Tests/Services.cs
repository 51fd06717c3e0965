using System.Collections.Concurrent;
using P2PLocal.Rpc;

namespace P2PLocal.Rpc.Hosting.Tests;

/// <summary>A dependency injected into <see cref="Greeter"/>.</summary>
public sealed class Salutation
{
    public string Word { get; init; } = "Hello";
}

[P2PService]
public partial class Greeter(Salutation salutation)
{
    public string Greet(string name) => $"{salutation.Word}, {name}";

    public string Fail(string why) => throw new InvalidOperationException(why);
}

/// <summary>A scoped dependency: one per DI scope, counting how many were made and disposed.</summary>
public sealed class CallScope : IDisposable
{
    private static int s_next;

    public static readonly ConcurrentBag<int> Disposed = [];

    public int Id { get; } = Interlocked.Increment(ref s_next);

    public void Dispose() => Disposed.Add(Id);
}

[P2PService]
public partial class ScopeReporter(CallScope scope)
{
    public int ScopeId() => scope.Id;
}
