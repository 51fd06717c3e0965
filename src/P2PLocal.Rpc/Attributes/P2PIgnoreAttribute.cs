namespace P2PLocal.Rpc;

/// <summary>Keeps a public method of a <see cref="P2PServiceAttribute"/> class out of its contract: it is not served and not in the generated interface.</summary>
[AttributeUsage(AttributeTargets.Method, Inherited = false, AllowMultiple = false)]
public sealed class P2PIgnoreAttribute : Attribute
{
}
