using Microsoft.Extensions.Options;

namespace P2PLocal.Rpc.Hosting;

/// <summary>
/// Checks bound options when the host starts (<c>ValidateOnStart</c>), with the rules of
/// <see cref="NodeOptions.Validate"/>, and names the configuration key at fault.
/// </summary>
internal sealed class P2PNodeOptionsValidator(string? sectionPath) : IValidateOptions<P2PNodeOptions>
{
    public ValidateOptionsResult Validate(string? name, P2PNodeOptions options)
    {
        try
        {
            options.ToNodeOptions().Validate();
            return ValidateOptionsResult.Success;
        }
        catch (ArgumentException e)
        {
            var key = string.IsNullOrEmpty(sectionPath) ? e.ParamName : $"{sectionPath}:{e.ParamName}";
            return ValidateOptionsResult.Fail($"P2P node option '{key}' is not valid: {e.Message}");
        }
    }
}
