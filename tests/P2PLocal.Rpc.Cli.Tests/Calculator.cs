namespace P2PLocal.Rpc.Cli.Tests;

/// <summary>A typed service: its functions list kwargs with types and a contract fingerprint.</summary>
[P2PService]
public partial class Calculator
{
    public int Add(int a, int b = 1) => a + b;

    public string Describe(string name, List<int> values) => $"{name}: {string.Join(",", values)}";
}
