namespace P2PLocal.Rpc.Cli.Tests;

/// <summary>A typed service: its functions list kwargs with types and a contract fingerprint.</summary>
[P2PService]
public partial class Calculator
{
    public int Add(int a, int b = 1) => a + b;

    public string Describe(string name, List<int> values) => $"{name}: {string.Join(",", values)}";
}

/// <summary>An object kwarg: <c>methods</c> shows how it travels.</summary>
[MessagePack.MessagePackObject]
public sealed record Spot([property: MessagePack.Key(0)] int X, [property: MessagePack.Key(1)] string Name);

/// <summary>A typed service whose kwarg is a <c>[MessagePackObject]</c> type.</summary>
[P2PService]
public partial class Plotter
{
    public int Plot(Spot spot, string color = "red") => spot.X;
}
