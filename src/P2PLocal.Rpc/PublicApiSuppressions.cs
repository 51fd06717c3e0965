using System.Diagnostics.CodeAnalysis;

// RS0026 guards against two overloads whose optional parameters make a call ambiguous once a third is added. The
// ContractClient calls used by generated proxies differ in generic arity (<TState> vs <TState, TResult>), so a call
// binds to exactly one of them; an optional trailing CancellationToken keeps the generated code short. Kept in this
// file (not on the members) so the suppressions are reviewed with the public API files.
[assembly: SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters", Scope = "member",
    Target = "~M:P2PLocal.Rpc.Dispatch.ContractClient.InvokeAsync``2(System.String,``0,P2PLocal.Rpc.Dispatch.KwargsWriter{``0},P2PLocal.Rpc.Dispatch.ResultReader{``1},System.Threading.CancellationToken)~System.Threading.Tasks.ValueTask{``1}",
    Justification = "Overloads differ in generic arity; no ambiguous call.")]
[assembly: SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters", Scope = "member",
    Target = "~M:P2PLocal.Rpc.Dispatch.ContractClient.InvokeAsync``1(System.String,``0,P2PLocal.Rpc.Dispatch.KwargsWriter{``0},System.Threading.CancellationToken)~System.Threading.Tasks.ValueTask",
    Justification = "Overloads differ in generic arity; no ambiguous call.")]
[assembly: SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters", Scope = "member",
    Target = "~M:P2PLocal.Rpc.Dispatch.ContractClient.Invoke``2(System.String,``0,P2PLocal.Rpc.Dispatch.KwargsWriter{``0},P2PLocal.Rpc.Dispatch.ResultReader{``1},System.Threading.CancellationToken)~``1",
    Justification = "Overloads differ in generic arity; no ambiguous call.")]
[assembly: SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters", Scope = "member",
    Target = "~M:P2PLocal.Rpc.Dispatch.ContractClient.Invoke``1(System.String,``0,P2PLocal.Rpc.Dispatch.KwargsWriter{``0},System.Threading.CancellationToken)",
    Justification = "Overloads differ in generic arity; no ambiguous call.")]

// RS0027 wants the overload with optional parameters to have the most parameters. WaitForAsync(name, cancellationToken
// = default) shipped first; WaitForAsync(name, timeout[, cancellationToken]) adds a deadline without optional
// parameters, so no call is ambiguous and the shipped signature stays as it is.
[assembly: SuppressMessage("ApiDesign", "RS0027:API with optional parameter(s) should have the most parameters amongst its public overloads", Scope = "member",
    Target = "~M:P2PLocal.Rpc.PeerDirectory.WaitForAsync(System.String,System.Threading.CancellationToken)~System.Threading.Tasks.Task{P2PLocal.Rpc.PeerInfo}",
    Justification = "The shipped overload keeps its signature; the timeout overloads have no optional parameters.")]
