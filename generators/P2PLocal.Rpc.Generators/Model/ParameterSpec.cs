namespace P2PLocal.Rpc.Generators.Model;

/// <summary>One parameter of a function: a kwarg, or the <c>CancellationToken</c> or <c>CallContext</c> that is not sent.</summary>
/// <param name="Name">The kwarg name: the parameter name without <c>@</c>.</param>
/// <param name="Identifier">The parameter name as C# code writes it (<c>@class</c>).</param>
/// <param name="Type">Its type.</param>
/// <param name="IsCancellationToken">True for the parameter that takes the request's cancellation token.</param>
/// <param name="DefaultValue">The C# expression of its default value, or null when it has none (a required kwarg).</param>
/// <param name="IsParams">True for a <c>params</c> array.</param>
/// <param name="IsCallContext">True for a parameter that takes the caller's <c>CallContext</c>, which is not sent either.</param>
internal sealed record ParameterSpec(string Name, string Identifier, TypeRef Type, bool IsCancellationToken, string? DefaultValue, bool IsParams,
    bool IsCallContext = false)
{
    public bool IsOptional => DefaultValue is not null;

    /// <summary>True for a kwarg: a parameter the caller sends.</summary>
    public bool IsSent => !IsCancellationToken && !IsCallContext;
}
