using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using P2PLocal.Rpc.Generators.Diagnostics;
using P2PLocal.Rpc.Generators.Model;

namespace P2PLocal.Rpc.Generators;

public sealed partial class ServiceGenerator
{
    internal static partial class Parser
    {
        private const string MessagePackObjectAttribute = "MessagePack.MessagePackObjectAttribute";
        private const string KeyAttribute = "MessagePack.KeyAttribute";
        private const string IgnoreMemberAttribute = "MessagePack.IgnoreMemberAttribute";
        private const string UnionAttribute = "MessagePack.UnionAttribute";
        private const string FormatterAttribute = "MessagePack.MessagePackFormatterAttribute";
        private const string IgnoreDataMemberAttribute = "System.Runtime.Serialization.IgnoreDataMemberAttribute";
        private const string DataContractAttribute = "System.Runtime.Serialization.DataContractAttribute";

        /// <summary>
        /// Walks a kwarg or result type the way MessagePack's standard resolver would, and reports what it cannot
        /// serialize (P2P014) and [MessagePackObject] members without [Key] (P2P015). These do not stop generation: a
        /// project that registers its own formatter for such a type can lower their severity in .editorconfig.
        /// </summary>
        private static void CheckSerializable(ITypeSymbol root, string where, LocationInfo? at, List<DiagnosticInfo> soft)
        {
            var seen = new HashSet<ITypeSymbol>(SymbolEqualityComparer.Default);
            Visit(root, null);

            void Problem(ITypeSymbol type, string? via, string problem, string fix) =>
                Report(soft, DiagnosticDescriptors.UnserializableType, at, where, Name(type) + (via is null ? "" : $" (in {via})"), problem, fix);

            void Visit(ITypeSymbol type, string? via)
            {
                if (!seen.Add(type))
                    return;
                switch (type)
                {
                    case IArrayTypeSymbol array:
                        Visit(array.ElementType, via);
                        return;
                    case IErrorTypeSymbol:
                        return; // a compile error already
                    // Nothing else but named types gets here: IsSerializable has ruled out pointers and type parameters,
                    // at the top (P2P006/P2P007) and in members (below); dynamic is object to MessagePack.
                    case INamedTypeSymbol named:
                        VisitNamed(named, via);
                        return;
                }
            }

            void VisitNamed(INamedTypeSymbol type, string? via)
            {
                // object is allowed: MessagePack writes and reads it as plain values (numbers, strings, arrays, maps),
                // as dynamic kwargs are; what it cannot do is bring back a class, which its type says nothing about.
                if (type.SpecialType != SpecialType.None || type.TypeKind == TypeKind.Enum)
                    return;
                if (HasAttribute(type, FormatterAttribute) || HasAttribute(type, DataContractAttribute))
                    return;

                var ns = type.ContainingNamespace?.ToDisplayString() ?? "";
                if (ns == "System" || ns.StartsWith("System.", System.StringComparison.Ordinal))
                {
                    // Framework types: MessagePack's built-in and generic resolvers cover the common ones
                    // (collections, tuples, Nullable<T>, Guid, TimeSpan, Uri...); check what they hold.
                    foreach (var argument in type.TypeArguments)
                        Visit(argument, via);
                    return;
                }

                var objectAttribute = type.GetAttributes().FirstOrDefault(a => a.AttributeClass?.ToDisplayString() == MessagePackObjectAttribute);
                if (objectAttribute is null)
                {
                    if (type.TypeKind == TypeKind.Interface || type.IsAbstract)
                    {
                        if (!HasAttribute(type, UnionAttribute))
                        {
                            Problem(type, via, $"{(type.TypeKind == TypeKind.Interface ? "an interface" : "an abstract class")} without [Union] has no shape MessagePack can write",
                                "add [Union(0, typeof(SomeImplementation))] for each implementation, or use a concrete [MessagePackObject] type");
                        }

                        return;
                    }

                    Problem(type, via, $"{(type.TypeKind == TypeKind.Struct ? "the struct" : type.IsRecord ? "the record" : "the class")} is not marked [MessagePackObject]",
                        "mark it [MessagePackObject] and give each public member a [Key(n)] (or [IgnoreMember])");
                    return;
                }

                var keyAsPropertyName = objectAttribute.ConstructorArguments.Length > 0 && objectAttribute.ConstructorArguments[0].Value is true;
                foreach (var member in SerializedMembers(type))
                {
                    if (!keyAsPropertyName && !HasAttribute(member, KeyAttribute))
                        Report(soft, DiagnosticDescriptors.MissingKey, at, member.Name, Name(type), where);
                    var memberType = member is IPropertySymbol property ? property.Type : ((IFieldSymbol)member).Type;
                    if (IsSerializable(memberType))
                    {
                        Visit(memberType, Name(type) + "." + member.Name);
                    }
                    else
                    {
                        Problem(memberType, Name(type) + "." + member.Name, "MessagePack has no formatter for pointers, delegates, ref structs, streams or tasks",
                            "change the member's type, or mark it [IgnoreMember]");
                    }
                }
            }
        }

        /// <summary>The members MessagePack serializes: public instance fields and properties, base types' included, less ignored ones.</summary>
        private static IEnumerable<ISymbol> SerializedMembers(INamedTypeSymbol type)
        {
            var names = new HashSet<string>();
            for (var current = type; current is not null && current.SpecialType != SpecialType.System_Object; current = current.BaseType)
            {
                foreach (var member in current.GetMembers())
                {
                    if (member.IsStatic || member.DeclaredAccessibility != Accessibility.Public || member.IsImplicitlyDeclared)
                        continue;
                    if (member is not (IFieldSymbol or IPropertySymbol { IsIndexer: false }))
                        continue;
                    if (HasAttribute(member, IgnoreMemberAttribute) || HasAttribute(member, IgnoreDataMemberAttribute))
                        continue;
                    // Overrides appear once, at the most derived type. (A record's EqualityContract is the compiler's and
                    // protected, so it never gets here; a public member of that name is serialized like any other.)
                    if (!names.Add(member.Name))
                        continue;
                    yield return member;
                }
            }
        }

        private static string Name(ITypeSymbol type) => type.ToDisplayString(s_wireFormat);
    }
}
