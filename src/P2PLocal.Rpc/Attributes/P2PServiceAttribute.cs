namespace P2PLocal.Rpc;

/// <summary>
/// Marks a service for the P2PLocal.Rpc source generator.
/// </summary>
/// <remarks>
/// <para>
/// On a <see langword="partial"/> class <c>Foo</c>, the generator emits the contract interface <c>IFoo</c> (the class
/// implements it), a dispatcher that serves every public instance method of <c>Foo</c> as a function (register it with
/// <see cref="Node.Register{TService}(TService)"/>), and a typed proxy for <c>IFoo</c> (get it with
/// <see cref="PeerDirectory.Get{TService}(string)"/>). A class that already implements a <c>[P2PService]</c> interface
/// serves that interface's methods instead and gets no generated interface.
/// </para>
/// <para>
/// On an interface (contract first, e.g. in an assembly shared by both sides), the generator emits a proxy for it and
/// a dispatcher that serves any implementation: <c>node.Register&lt;IFoo&gt;(implementation)</c>.
/// </para>
/// <para>
/// Each method is a function named as the method (see <see cref="P2PFunctionAttribute"/> to rename it); its parameters
/// are the kwargs, by name. A <see cref="CancellationToken"/> parameter is not sent: it carries the caller's
/// cancellation to the handler.
/// </para>
/// </remarks>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Interface, Inherited = false, AllowMultiple = false)]
public sealed class P2PServiceAttribute : Attribute
{
}
