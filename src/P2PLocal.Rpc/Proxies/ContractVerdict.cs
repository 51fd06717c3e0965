namespace P2PLocal.Rpc.Dispatch;

/// <summary>How one peer instance serves one function of a contract, as judged from its <c>$methods</c>.</summary>
/// <param name="Problem">Why calls cannot be served alike, or null when they can.</param>
/// <param name="LackingKwargs">Optional kwargs of this side that the peer does not know: fine while left at their default (the proxy does not send them then).</param>
internal sealed record FunctionVerdict(string? Problem, string[] LackingKwargs)
{
    public static readonly FunctionVerdict Served = new(null, []);
}

/// <summary>
/// Compatibility judged per function (issue 15, rolling upgrades): a peer that serves a newer or older version of a
/// contract still serves the functions whose kwargs and result fit, so only calls to changed functions fail.
/// </summary>
/// <remarks>Immutable; shared by every proxy of the contract for one peer instance.</remarks>
internal sealed class ContractVerdict
{
    private readonly Dictionary<string, FunctionVerdict> _functions;

    private ContractVerdict(Dictionary<string, FunctionVerdict> functions)
    {
        _functions = functions;
        AllServed = functions.Values.All(v => v == FunctionVerdict.Served);
    }

    /// <summary>True when every function of the contract is served alike, so calls need no further look.</summary>
    public bool AllServed { get; }

    public FunctionVerdict For(string function) => _functions.GetValueOrDefault(function, FunctionVerdict.Served);

    /// <summary>
    /// Judges each expected function against what the peer serves. Served alike: the same contract fingerprint, a
    /// dynamic function (no fingerprint: taken on trust), or the same result type (any, when this side expects
    /// nothing) with every kwarg this side may send known there with the same type and every kwarg the peer requires
    /// sent from here. A kwarg optional here and unknown there is allowed while it is left at its default.
    /// </summary>
    public static ContractVerdict Judge(IReadOnlyList<FunctionDescriptor> expected, string fingerprint, IReadOnlyList<FunctionDescriptor> served)
    {
        var byName = new Dictionary<string, FunctionDescriptor>(StringComparer.Ordinal);
        foreach (var function in served)
            byName.TryAdd(function.Name, function);
        var verdicts = new Dictionary<string, FunctionVerdict>(StringComparer.Ordinal);
        foreach (var mine in expected)
            verdicts[mine.Name] = JudgeOne(mine, fingerprint, byName.GetValueOrDefault(mine.Name));
        return new ContractVerdict(verdicts);
    }

    private static FunctionVerdict JudgeOne(FunctionDescriptor mine, string fingerprint, FunctionDescriptor? theirs)
    {
        if (theirs is null)
            return new FunctionVerdict($"it has no function '{mine.Name}'", []);
        if (theirs.Fingerprint is null || theirs.Fingerprint == fingerprint)
            return FunctionVerdict.Served;

        var fits = mine.ReturnType == "void" || mine.ReturnType == theirs.ReturnType;
        var lacking = new List<string>();
        foreach (var parameter in mine.Parameters)
        {
            var match = theirs.Parameters.FirstOrDefault(p => p.Name == parameter.Name);
            if (match is not null)
                fits &= match.Type == parameter.Type;
            else if (parameter.IsOptional)
                lacking.Add(parameter.Name);
            else
                fits = false;
        }

        fits &= theirs.Parameters.All(p => p.IsOptional || mine.Parameters.Any(m => m.Name == p.Name));
        return fits
            ? lacking.Count == 0 ? FunctionVerdict.Served : new FunctionVerdict(null, [.. lacking])
            : new FunctionVerdict($"'{mine.Name}' is {Describe(mine)} here but {Describe(theirs)} there", []);
    }

    private static string Describe(FunctionDescriptor function) =>
        $"({string.Join(", ", function.Parameters.Select(p => $"{p.Name}: {p.Type}{(p.IsOptional ? " = ..." : "")}"))}) -> {function.ReturnType}";
}
