using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using P2PLocal.Rpc.Generators.Diagnostics;
using P2PLocal.Rpc.Generators.Helpers;
using P2PLocal.Rpc.Generators.Model;

namespace P2PLocal.Rpc.Generators;

public sealed partial class ServiceGenerator
{
    /// <summary>Symbols to specs. The only place that sees Roslyn symbols.</summary>
    internal static partial class Parser
    {
        private const string FunctionAttribute = "P2PLocal.Rpc.P2PFunctionAttribute";
        private const string IgnoreAttribute = "P2PLocal.Rpc.P2PIgnoreAttribute";
        private const string CallContextType = "P2PLocal.Rpc.CallContext";
        private const string EnumeratorCancellationAttribute = "System.Runtime.CompilerServices.EnumeratorCancellationAttribute";

        private static readonly SymbolDisplayFormat s_codeFormat = SymbolDisplayFormat.FullyQualifiedFormat
            .AddMiscellaneousOptions(SymbolDisplayMiscellaneousOptions.IncludeNullableReferenceTypeModifier);

        // What peers see in descriptors and what the fingerprint hashes: no global::, no nullable reference marks,
        // so a caller compiled with nullable annotations off still matches.
        private static readonly SymbolDisplayFormat s_wireFormat = new(
            typeQualificationStyle: SymbolDisplayTypeQualificationStyle.NameAndContainingTypesAndNamespaces,
            genericsOptions: SymbolDisplayGenericsOptions.IncludeTypeParameters,
            miscellaneousOptions: SymbolDisplayMiscellaneousOptions.UseSpecialTypes);

        public static ParseResult Parse(GeneratorAttributeSyntaxContext context, CancellationToken cancellationToken)
        {
            var type = (INamedTypeSymbol)context.TargetSymbol;
            var syntax = (TypeDeclarationSyntax)context.TargetNode;
            var diagnostics = new List<DiagnosticInfo>();
            var parse = new ParseContext(context.SemanticModel.Compilation.Assembly);
            var soft = parse.Soft;
            var where = LocationInfo.From(syntax.Identifier.GetLocation());
            var isInterface = type.TypeKind == TypeKind.Interface;

            if (type.ContainingType is not null)
                Report(diagnostics, DiagnosticDescriptors.Nested, where, type.Name, type.ContainingType.Name);
            if (type.TypeParameters.Length > 0)
                Report(diagnostics, DiagnosticDescriptors.Generic, where, type.Name);
            if (type.IsFileLocal)
                Report(diagnostics, DiagnosticDescriptors.NotAccessible, where, type.Name);

            var contracts = new List<ContractSpec>();
            string? generatedInterface = null;
            var serviceType = type.ToDisplayString(s_codeFormat);
            var dispatcherServiceType = serviceType;
            var dispatcherKeys = new List<string> { serviceType };

            if (isInterface)
            {
                var functions = ParseFunctions(type, isInterface: true, diagnostics, parse, cancellationToken);
                contracts.Add(Contract(type.ToDisplayString(s_wireFormat), serviceType, functions, "_service", emitProxy: true));
            }
            else
            {
                var contractInterfaces = type.AllInterfaces.Where(IsService).ToList();
                if (contractInterfaces.Count == 0)
                {
                    // The contract is the class's own public methods, as an interface the generator adds to it.
                    if (!syntax.Modifiers.Any(SyntaxKind.PartialKeyword))
                        Report(diagnostics, DiagnosticDescriptors.NotPartial, where, type.Name);
                    generatedInterface = "I" + type.Name;
                    var ns = type.ContainingNamespace.IsGlobalNamespace ? null : type.ContainingNamespace.ToDisplayString();
                    var contractName = ns is null ? generatedInterface : ns + "." + generatedInterface;
                    var contractType = "global::" + contractName;
                    var functions = ParseFunctions(type, isInterface: false, diagnostics, parse, cancellationToken);
                    contracts.Add(Contract(contractName, contractType, functions, "_service", emitProxy: true));
                    dispatcherServiceType = contractType;
                    dispatcherKeys.Add(contractType);
                }
                else
                {
                    // The class serves the [P2PService] interfaces it implements; their own generation reports their
                    // problems, so a broken interface is skipped quietly here.
                    foreach (var contract in contractInterfaces)
                    {
                        var ignored = new List<DiagnosticInfo>();
                        var functions = ParseFunctions(contract, isInterface: true, ignored, new ParseContext(parse.Assembly), cancellationToken);
                        if (ignored.Count > 0)
                            return new ParseResult(null, diagnostics.ToEquatableArray(), EquatableArray<FormatterSpec>.Empty);
                        var contractType = contract.ToDisplayString(s_codeFormat);
                        contracts.Add(Contract(contract.ToDisplayString(s_wireFormat), contractType, functions, $"(({contractType})_service)", emitProxy: false));
                    }
                }
            }

            CheckWireNames(contracts.SelectMany(c => c.Functions).ToList(), type, diagnostics);

            if (diagnostics.Count > 0)
                return new ParseResult(null, diagnostics.Concat(soft).ToEquatableArray(), EquatableArray<FormatterSpec>.Empty);

            var service = new ServiceSpec(
                type.ContainingNamespace.IsGlobalNamespace ? null : type.ContainingNamespace.ToDisplayString(),
                type.Name,
                serviceType,
                isInterface ? "interface" : type.IsRecord ? "record" : "class",
                type.DeclaredAccessibility == Accessibility.Public ? "public" : "internal",
                generatedInterface,
                dispatcherServiceType,
                dispatcherKeys.ToEquatableArray(),
                contracts.ToEquatableArray());
            return new ParseResult(service, soft.ToEquatableArray(), parse.Formatters.Values.OrderBy(f => f.TypeOfName, StringComparer.Ordinal).ToEquatableArray());
        }

        private static bool IsService(INamedTypeSymbol type) =>
            type.GetAttributes().Any(a => a.AttributeClass?.ToDisplayString() == ServiceAttribute);

        private static bool HasAttribute(ISymbol symbol, string name) =>
            symbol.GetAttributes().Any(a => a.AttributeClass?.ToDisplayString() == name);

        private static ContractSpec Contract(string name, string fullyQualifiedName, List<FunctionSpec> functions, string receiver, bool emitProxy) =>
            new(name, fullyQualifiedName, Fingerprint(functions), functions.ToEquatableArray(), receiver, emitProxy);

        private static List<FunctionSpec> ParseFunctions(INamedTypeSymbol type, bool isInterface, List<DiagnosticInfo> diagnostics, ParseContext parse,
            CancellationToken cancellationToken)
        {
            var functions = new List<FunctionSpec>();
            // A proxy implements the whole interface, so a contract includes what its base interfaces declare.
            var members = isInterface ? type.GetMembers().Concat(type.AllInterfaces.SelectMany(i => i.GetMembers())) : type.GetMembers();
            foreach (var member in members)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (member is IMethodSymbol { MethodKind: MethodKind.Ordinary } method)
                {
                    if (method.IsStatic)
                    {
                        if (isInterface && (method.IsAbstract || method.IsVirtual))
                            Report(diagnostics, DiagnosticDescriptors.UnsupportedMember, At(member), member.Name, type.Name);
                        continue;
                    }

                    if (!isInterface && !IsServed(method))
                        continue;
                    var function = ParseFunction(method, diagnostics, parse);
                    if (function is not null)
                        functions.Add(function);
                }
                else if (isInterface && member is IPropertySymbol or IEventSymbol)
                {
                    Report(diagnostics, DiagnosticDescriptors.UnsupportedMember, At(member), member.Name, type.Name);
                }
            }

            return functions;
        }

        /// <summary>
        /// The public methods a class declares, less those marked [P2PIgnore], compiler-made ones (records), overrides of
        /// object's members, and Dispose/DisposeAsync: a peer must not be able to dispose the service.
        /// </summary>
        private static bool IsServed(IMethodSymbol method)
        {
            if (method.DeclaredAccessibility != Accessibility.Public || method.IsImplicitlyDeclared || HasAttribute(method, IgnoreAttribute))
                return false;
            for (var overridden = method.OverriddenMethod; overridden is not null; overridden = overridden.OverriddenMethod)
            {
                if (overridden.ContainingType.SpecialType == SpecialType.System_Object)
                    return false;
            }

            return !(method.Parameters.Length == 0 && method.Name is "Dispose" or "DisposeAsync"
                && method.ContainingType.AllInterfaces.Any(i => i.ToDisplayString() is "System.IDisposable" or "System.IAsyncDisposable"));
        }

        private static FunctionSpec? ParseFunction(IMethodSymbol method, List<DiagnosticInfo> diagnostics, ParseContext parse)
        {
            var where = At(method);
            var before = diagnostics.Count;
            if (method.TypeParameters.Length > 0)
            {
                // Its type parameters would trip every other check; this one says all there is to say.
                Report(diagnostics, DiagnosticDescriptors.GenericMethod, where, method.Name);
                return null;
            }

            var wireName = method.Name;
            var runsInline = false;
            var idempotent = false;
            var rename = method.GetAttributes().FirstOrDefault(a => a.AttributeClass?.ToDisplayString() == FunctionAttribute);
            foreach (var argument in rename?.NamedArguments ?? Enumerable.Empty<KeyValuePair<string, TypedConstant>>())
            {
                if (argument.Key == "Name" && argument.Value.Value is string name)
                    wireName = name;
                else if (argument.Key == "Inline" && argument.Value.Value is bool inline)
                    runsInline = inline;
                else if (argument.Key == "Idempotent" && argument.Value.Value is bool isIdempotent)
                    idempotent = isIdempotent;
            }

            if (wireName.Length == 0 || wireName[0] == '$')
                Report(diagnostics, DiagnosticDescriptors.InvalidWireName, where, method.Name);

            var (kind, result) = Classify(method);
            var reached = new Dictionary<string, FormatterSpec>(StringComparer.Ordinal);
            var streamProblem = StreamProblem(method.ReturnType, kind, result);
            if (streamProblem is not null)
                Report(diagnostics, DiagnosticDescriptors.UnsupportedStream, where, method.Name, method.ReturnType.ToDisplayString(), streamProblem);
            else if (method.ReturnsByRef || method.ReturnsByRefReadonly || (result is not null && !IsSerializable(result)))
                Report(diagnostics, DiagnosticDescriptors.UnsupportedReturnType, where, method.Name, method.ReturnType.ToDisplayString());
            else if (result is not null)
                parse.Check(result, kind == ReturnKind.Stream ? $"items of '{method.Name}'" : $"result of '{method.Name}'", where, reached);

            var parameters = new List<ParameterSpec>();
            var tokens = 0;
            foreach (var parameter in method.Parameters)
            {
                var at = At(parameter);
                if (parameter.RefKind != RefKind.None)
                {
                    var modifier = parameter.RefKind switch
                    {
                        RefKind.Out => "out",
                        RefKind.In => "in",
                        RefKind.RefReadOnlyParameter => "ref readonly",
                        _ => "ref",
                    };
                    Report(diagnostics, DiagnosticDescriptors.RefParameter, at, parameter.Name, modifier, method.Name);
                }

                var isToken = parameter.Type.ToDisplayString() == "System.Threading.CancellationToken";
                var isContext = parameter.Type.ToDisplayString(s_wireFormat) == CallContextType;
                if (isToken && ++tokens == 2)
                    Report(diagnostics, DiagnosticDescriptors.TooManyCancellationTokens, at, method.Name);
                if (IsAsyncStream(parameter.Type))
                    Report(diagnostics, DiagnosticDescriptors.StreamParameter, at, parameter.Name, method.Name, parameter.Type.ToDisplayString());
                // A bare dynamic kwarg would make the generated proxy's calls bind at run time (CS1978 on its writer).
                else if (!isToken && !isContext && (!IsSerializable(parameter.Type) || parameter.Type.TypeKind == TypeKind.Dynamic))
                    Report(diagnostics, DiagnosticDescriptors.UnsupportedParameterType, at, parameter.Name, method.Name, parameter.Type.ToDisplayString());
                else if (!isToken && !isContext)
                    parse.Check(parameter.Type, $"kwarg '{parameter.Name}' of '{method.Name}'", at, reached);

                parameters.Add(new ParameterSpec(
                    parameter.Name,
                    Identifier(parameter.Name),
                    Type(parameter.Type),
                    isToken,
                    parameter.HasExplicitDefaultValue ? DefaultValue(parameter) : null,
                    parameter.IsParams,
                    isContext));
            }

            if (kind == ReturnKind.Stream && streamProblem is null)
                CheckStreamToken(method, diagnostics, where);
            if (diagnostics.Count > before)
                return null;
            return new FunctionSpec(Identifier(method.Name), wireName, parameters.ToEquatableArray(), kind, Type(method.ReturnType),
                result is null ? null : Type(result),
                reached.Values.Where(f => f.Shape is not null).Select(f => f.Shape!).OrderBy(s => s.Name, StringComparer.Ordinal).ToEquatableArray(),
                runsInline,
                idempotent);
        }

        private static (ReturnKind Kind, ITypeSymbol? Result) Classify(IMethodSymbol method)
        {
            if (method.ReturnsVoid)
                return (ReturnKind.Void, null);
            if (method.ReturnType is INamedTypeSymbol named && named.ContainingNamespace?.ToDisplayString() == "System.Threading.Tasks")
            {
                switch (named.MetadataName)
                {
                    case "Task": return (ReturnKind.Task, null);
                    case "ValueTask": return (ReturnKind.ValueTask, null);
                    case "Task`1": return (ReturnKind.TaskOfT, named.TypeArguments[0]);
                    case "ValueTask`1": return (ReturnKind.ValueTaskOfT, named.TypeArguments[0]);
                }
            }

            if (method.ReturnType is INamedTypeSymbol { MetadataName: "IAsyncEnumerable`1" } stream && IsAsyncStream(stream))
                return (ReturnKind.Stream, stream.TypeArguments[0]);
            return (ReturnKind.Value, method.ReturnType);
        }

        /// <summary>Why a function's result is a stream this version cannot serve (null when it is not a stream, or is one it can).</summary>
        private static string? StreamProblem(ITypeSymbol returnType, ReturnKind kind, ITypeSymbol? result)
        {
            if (kind == ReturnKind.Stream)
            {
                if (result is not null && (IsAsyncStream(result) || IsTask(result)))
                    return "streams items that are themselves streams or tasks";
                return result is not null && !IsSerializable(result) ? "streams items that cannot be serialized" : null;
            }

            if (IsAsyncStream(returnType))
                return "is an enumerator, which cannot be sent; return the IAsyncEnumerable<T> it enumerates";
            if (kind is ReturnKind.TaskOfT or ReturnKind.ValueTaskOfT && result is not null && IsAsyncStream(result))
                return "is a task of a stream; return the stream itself (an async iterator can await before its first item)";
            return null;
        }

        private static bool IsTask(ITypeSymbol type) =>
            type is INamedTypeSymbol { Name: "Task" or "ValueTask" } named && named.ContainingNamespace?.ToDisplayString() == "System.Threading.Tasks";

        /// <summary>A stream hears the caller's cancel through its token, which an async iterator must mark [EnumeratorCancellation].</summary>
        private static void CheckStreamToken(IMethodSymbol method, List<DiagnosticInfo> diagnostics, LocationInfo? where)
        {
            var token = method.Parameters.FirstOrDefault(p => p.Type.ToDisplayString() == "System.Threading.CancellationToken");
            if (token is null)
                Report(diagnostics, DiagnosticDescriptors.StreamWithoutToken, where, method.Name, method.IsAsync ? " marked [EnumeratorCancellation]" : "");
            else if (method.IsAsync && !HasAttribute(token, EnumeratorCancellationAttribute))
                Report(diagnostics, DiagnosticDescriptors.StreamWithoutToken, At(token), method.Name, $" ('{token.Name}' needs [EnumeratorCancellation])");
        }

        private static bool IsAsyncStream(ITypeSymbol type) =>
            type is INamedTypeSymbol { MetadataName: "IAsyncEnumerable`1" or "IAsyncEnumerator`1" } named
            && named.ContainingNamespace?.ToDisplayString() == "System.Collections.Generic";

        /// <summary>Rules out what MessagePack can never write; anything else is left to its resolvers.</summary>
        private static bool IsSerializable(ITypeSymbol type)
        {
            switch (type)
            {
                case IPointerTypeSymbol or IFunctionPointerTypeSymbol or ITypeParameterSymbol:
                    return false;
                case IArrayTypeSymbol array:
                    return IsSerializable(array.ElementType);
                case INamedTypeSymbol named:
                    if (named.TypeKind == TypeKind.Delegate || named.IsRefLikeType || IsAsyncStream(named))
                        return false;
                    if (named.ContainingNamespace?.ToDisplayString() == "System.Threading.Tasks" && named.Name is "Task" or "ValueTask")
                        return false;
                    return named.TypeArguments.All(IsSerializable);
                default:
                    return true;
            }
        }

        /// <summary>Overloads without distinct names, and two names that meet, are reported once per clash.</summary>
        private static void CheckWireNames(List<FunctionSpec> functions, INamedTypeSymbol type, List<DiagnosticInfo> diagnostics)
        {
            var where = LocationInfo.From(type.Locations.FirstOrDefault());
            foreach (var clash in functions.GroupBy(f => f.WireName, StringComparer.Ordinal).Where(g => g.Count() > 1))
            {
                var first = clash.First();
                var second = clash.Skip(1).First();
                if (clash.All(f => f.MethodName == first.MethodName && f.WireName == f.MethodName.TrimStart('@')))
                    Report(diagnostics, DiagnosticDescriptors.OverloadCollision, where, first.MethodName, clash.Key);
                else
                    Report(diagnostics, DiagnosticDescriptors.DuplicateWireName, where, first.MethodName, second.MethodName, clash.Key);
            }
        }

        /// <summary>A stable hash (FNV-1a, 64 bits) of the contract as peers see it, independent of declaration order.</summary>
        internal static string Fingerprint(IEnumerable<FunctionSpec> functions)
        {
            var text = new StringBuilder();
            foreach (var function in functions.OrderBy(f => f.WireName, StringComparer.Ordinal))
                text.Append(Signature(function));

            var hash = 14695981039346656037UL;
            foreach (var c in text.ToString())
            {
                hash ^= c;
                hash *= 1099511628211UL;
            }

            return hash.ToString("x16", CultureInfo.InvariantCulture);
        }

        /// <summary>One function's part of the fingerprint text, which peers also see as its <c>signature</c>.</summary>
        internal static string Signature(FunctionSpec function)
        {
            var text = new StringBuilder();
            text.Append(function.WireName).Append('(');
            foreach (var parameter in function.Parameters.Where(p => p.IsSent))
                text.Append(parameter.Name).Append(':').Append(parameter.Type.Name).Append(parameter.IsOptional ? "=," : ",");
            return text.Append(")->").Append(function.WireResult).Append(';').ToString();
        }

        private static TypeRef Type(ITypeSymbol type) => new(type.ToDisplayString(s_wireFormat), type.ToDisplayString(s_codeFormat));

        private static string Identifier(string name) =>
            SyntaxFacts.GetKeywordKind(name) != SyntaxKind.None || SyntaxFacts.GetContextualKeywordKind(name) is SyntaxKind.AwaitKeyword
                ? "@" + name
                : name;

        private static string DefaultValue(IParameterSymbol parameter)
        {
            var value = parameter.ExplicitDefaultValue;
            var type = parameter.Type;
            if (type is INamedTypeSymbol { OriginalDefinition.SpecialType: SpecialType.System_Nullable_T } nullable)
                type = nullable.TypeArguments[0];
            if (value is null)
                return parameter.Type.IsValueType && parameter.Type.OriginalDefinition.SpecialType != SpecialType.System_Nullable_T ? "default" : "null";
            if (type.TypeKind == TypeKind.Enum)
                return $"({type.ToDisplayString(s_codeFormat)})({Literal(value)})";
            return Literal(value);
        }

        private static string Literal(object value) => value switch
        {
            bool b => b ? "true" : "false",
            string s => SymbolDisplay.FormatLiteral(s, quote: true),
            char c => SymbolDisplay.FormatLiteral(c, quote: true),
            float f when float.IsNaN(f) => "float.NaN",
            float f when float.IsPositiveInfinity(f) => "float.PositiveInfinity",
            float f when float.IsNegativeInfinity(f) => "float.NegativeInfinity",
            float f => f.ToString("R", CultureInfo.InvariantCulture) + "F",
            double d when double.IsNaN(d) => "double.NaN",
            double d when double.IsPositiveInfinity(d) => "double.PositiveInfinity",
            double d when double.IsNegativeInfinity(d) => "double.NegativeInfinity",
            double d => d.ToString("R", CultureInfo.InvariantCulture) + "D",
            decimal m => m.ToString(CultureInfo.InvariantCulture) + "M",
            long l => l.ToString(CultureInfo.InvariantCulture) + "L",
            ulong u => u.ToString(CultureInfo.InvariantCulture) + "UL",
            uint u => u.ToString(CultureInfo.InvariantCulture) + "U",
            IFormattable number => number.ToString(null, CultureInfo.InvariantCulture),
            _ => value.ToString() ?? "default",
        };

        /// <summary>What parsing one service gathers besides its functions: soft diagnostics and the formatters its types need.</summary>
        private sealed class ParseContext(IAssemblySymbol assembly)
        {
            public IAssemblySymbol Assembly { get; } = assembly;

            /// <summary>Reported, but the service is still generated.</summary>
            public List<DiagnosticInfo> Soft { get; } = [];

            public Dictionary<string, FormatterSpec> Formatters { get; } = new(StringComparer.Ordinal);

            /// <summary>Checks a kwarg or result type, and gathers the formatters it needs into <paramref name="reached"/> (one function's) and <see cref="Formatters"/>.</summary>
            public void Check(ITypeSymbol type, string where, LocationInfo? at, Dictionary<string, FormatterSpec> reached)
            {
                CheckSerializable(type, where, at, Soft);
                CollectFormatters(type, Assembly, reached);
                foreach (var formatter in reached)
                {
                    if (!Formatters.ContainsKey(formatter.Key))
                        Formatters[formatter.Key] = formatter.Value;
                }
            }
        }

        private static LocationInfo? At(ISymbol symbol) => LocationInfo.From(symbol.Locations.FirstOrDefault());

        private static void Report(List<DiagnosticInfo> diagnostics, DiagnosticDescriptor descriptor, LocationInfo? where, params string[] arguments) =>
            diagnostics.Add(new DiagnosticInfo(descriptor.Id, where, arguments.ToEquatableArray()));
    }
}
