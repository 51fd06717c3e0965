using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using P2PLocal.Rpc.Generators.Helpers;
using P2PLocal.Rpc.Generators.Model;

namespace P2PLocal.Rpc.Generators;

public sealed partial class ServiceGenerator
{
    internal static partial class Parser
    {
        private const string SerializationConstructorAttribute = "MessagePack.SerializationConstructorAttribute";

        // typeof() names: global::-qualified, special types by keyword, no nullable reference marks (typeof refuses them).
        private static readonly SymbolDisplayFormat s_typeOfFormat = SymbolDisplayFormat.FullyQualifiedFormat;

        // Generic collections MessagePack has a formatter class for, by metadata name (System.Collections.Generic).
        private static readonly Dictionary<string, string> s_collectionFormatters = new()
        {
            ["List`1"] = "ListFormatter", ["Dictionary`2"] = "DictionaryFormatter", ["HashSet`1"] = "HashSetFormatter",
            ["IList`1"] = "InterfaceListFormatter2", ["ICollection`1"] = "InterfaceCollectionFormatter2",
            ["IEnumerable`1"] = "InterfaceEnumerableFormatter", ["IReadOnlyList`1"] = "InterfaceReadOnlyListFormatter",
            ["IReadOnlyCollection`1"] = "InterfaceReadOnlyCollectionFormatter", ["ISet`1"] = "InterfaceSetFormatter",
            ["IDictionary`2"] = "InterfaceDictionaryFormatter", ["IReadOnlyDictionary`2"] = "InterfaceReadOnlyDictionaryFormatter",
        };

        /// <summary>
        /// Adds a formatter for every type <paramref name="root"/> reaches that MessagePack's standard resolver would
        /// build with dynamic code: <c>[MessagePackObject]</c> types (generated here), enums, and the arrays, lists,
        /// dictionaries and nullables of them. Types it cannot generate for are left to the standard resolver.
        /// </summary>
        private static void CollectFormatters(ITypeSymbol root, IAssemblySymbol assembly, Dictionary<string, FormatterSpec> formatters)
        {
            var seen = new HashSet<ITypeSymbol>(SymbolEqualityComparer.Default);
            Visit(root);

            void Visit(ITypeSymbol type)
            {
                type = type.WithNullableAnnotation(NullableAnnotation.NotAnnotated);
                if (!seen.Add(type) || !IsAccessible(type, assembly))
                    return;
                var typeOf = type.ToDisplayString(s_typeOfFormat);
                const string Formatters = "global::MessagePack.Formatters.";
                switch (type)
                {
                    case IArrayTypeSymbol { IsSZArray: true } array:
                        Visit(array.ElementType);
                        // Arrays of keyword types have built-in formatters already.
                        if (array.ElementType.SpecialType == SpecialType.None || array.ElementType.SpecialType == SpecialType.System_Object)
                            Add(typeOf, $"new {Formatters}ArrayFormatter<{array.ElementType.ToDisplayString(s_typeOfFormat)}>()");
                        return;
                    case INamedTypeSymbol named:
                        foreach (var argument in named.TypeArguments)
                            Visit(argument);
                        if (named.TypeKind == TypeKind.Enum)
                        {
                            Add(typeOf, $"new {Formatters}GenericEnumFormatter<{typeOf}>()");
                            return;
                        }

                        if (named.OriginalDefinition.SpecialType == SpecialType.System_Nullable_T)
                        {
                            if (named.TypeArguments[0].SpecialType == SpecialType.None)
                                Add(typeOf, $"new {Formatters}NullableFormatter<{named.TypeArguments[0].ToDisplayString(s_typeOfFormat)}>()");
                            return;
                        }

                        if (named.IsGenericType && named.ContainingNamespace?.ToDisplayString() == "System.Collections.Generic"
                            && s_collectionFormatters.TryGetValue(named.MetadataName, out var collection))
                        {
                            Add(typeOf, $"new {Formatters}{collection}<{string.Join(", ", named.TypeArguments.Select(a => a.ToDisplayString(s_typeOfFormat)))}>()");
                            return;
                        }

                        var shape = Shape(named, typeOf, assembly);
                        if (shape is null)
                            return;
                        Add(typeOf, null, shape);
                        foreach (var member in SerializedMembers(named))
                            Visit(member is IPropertySymbol property ? property.Type : ((IFieldSymbol)member).Type);
                        return;
                }
            }

            void Add(string typeOf, string? creation, ObjectShape? shape = null)
            {
                if (!formatters.ContainsKey(typeOf))
                    formatters[typeOf] = new FormatterSpec(typeOf, creation, shape);
            }
        }

        /// <summary>Whether generated code in <paramref name="assembly"/> can name the type.</summary>
        private static bool IsAccessible(ITypeSymbol type, IAssemblySymbol assembly)
        {
            switch (type)
            {
                case IArrayTypeSymbol array:
                    return IsAccessible(array.ElementType, assembly);
                case INamedTypeSymbol named:
                    for (INamedTypeSymbol? current = named; current is not null; current = current.ContainingType)
                    {
                        var reachable = current.DeclaredAccessibility == Accessibility.Public
                            || (current.DeclaredAccessibility == Accessibility.Internal && SymbolEqualityComparer.Default.Equals(current.ContainingAssembly, assembly));
                        if (!reachable || current.IsFileLocal)
                            return false;
                    }

                    return named.TypeArguments.All(a => IsAccessible(a, assembly));
                default:
                    return false;
            }
        }

        /// <summary>The layout and construction of a <c>[MessagePackObject]</c> type, or null when it cannot be generated (left to MessagePack).</summary>
        private static ObjectShape? Shape(INamedTypeSymbol type, string typeOf, IAssemblySymbol assembly)
        {
            var attribute = type.GetAttributes().FirstOrDefault(a => a.AttributeClass?.ToDisplayString() == MessagePackObjectAttribute);
            if (attribute is null || type.IsAbstract || type.TypeKind is not (TypeKind.Class or TypeKind.Struct) || type.IsRefLikeType)
                return null;
            var keyAsPropertyName = attribute.ConstructorArguments.Length > 0 && attribute.ConstructorArguments[0].Value is true;

            var members = new List<MemberSpec>();
            var symbols = SerializedMembers(type).ToList();
            foreach (var member in symbols)
            {
                var memberType = member is IPropertySymbol property ? property.Type : ((IFieldSymbol)member).Type;
                if (!IsAccessible(memberType, assembly))
                    return null;
                var key = member.GetAttributes().FirstOrDefault(a => a.AttributeClass?.ToDisplayString() == KeyAttribute);
                var keyValue = key?.ConstructorArguments.FirstOrDefault().Value;
                int intKey = -1;
                string? stringKey = null;
                if (keyAsPropertyName)
                    stringKey = keyValue as string ?? member.Name;
                else if (keyValue is int number && number is >= 0 and < 1024)
                    intKey = number;
                else if (keyValue is string text)
                    stringKey = text;
                else
                    return null; // no [Key] (P2P015) or one out of reach

                var settable = member switch
                {
                    IPropertySymbol p => p.SetMethod is { DeclaredAccessibility: Accessibility.Public },
                    IFieldSymbol f => !f.IsReadOnly && !f.IsConst,
                    _ => false,
                };
                var initOnly = member is IPropertySymbol { SetMethod.IsInitOnly: true } || !settable;
                members.Add(new MemberSpec(member.Name, intKey, stringKey,
                    new TypeRef(memberType.ToDisplayString(s_wireFormat), memberType.WithNullableAnnotation(NullableAnnotation.NotAnnotated).ToDisplayString(s_typeOfFormat)),
                    memberType.IsReferenceType && memberType.NullableAnnotation == NullableAnnotation.NotAnnotated,
                    initOnly));
            }

            var isMap = members.Any(m => m.StringKey is not null);
            if (isMap && members.Any(m => m.StringKey is null))
                return null; // mixed keys: MessagePack refuses them too
            if (!isMap && members.Select(m => m.IntKey).Distinct().Count() != members.Count)
                return null;
            if (isMap && members.Select(m => m.StringKey).Distinct().Count() != members.Count)
                return null;

            var constructor = Constructor(type, symbols);
            if (constructor is null)
                return null;
            // Members the constructor does not take must be settable.
            for (var i = 0; i < members.Count; i++)
            {
                if (!constructor.Contains(i) && members[i].IsInitOnly && IsReadOnly(symbols[i]))
                    return null;
            }

            var name = type.ToDisplayString(s_wireFormat);
            var className = "Formatter_" + new string(typeOf.Replace("global::", "").Select(c => char.IsLetterOrDigit(c) ? c : '_').ToArray());
            return new ObjectShape(name, className, type.IsValueType, isMap, isMap ? members.Count : members.Count == 0 ? 0 : members.Max(m => m.IntKey) + 1,
                members.ToEquatableArray(), constructor.ToEquatableArray());
        }

        private static bool IsReadOnly(ISymbol member) => member switch
        {
            IPropertySymbol p => p.SetMethod is null || p.SetMethod.DeclaredAccessibility != Accessibility.Public,
            IFieldSymbol f => f.IsReadOnly,
            _ => true,
        };

        /// <summary>
        /// The constructor MessagePack would pick: the one marked [SerializationConstructor], else the public one with
        /// the most parameters that each match a member by name (ignoring case) and type. Returns member indexes in
        /// parameter order, or null when no constructor fits.
        /// </summary>
        private static List<int>? Constructor(INamedTypeSymbol type, List<ISymbol> members)
        {
            var constructors = type.InstanceConstructors.Where(c => c.DeclaredAccessibility == Accessibility.Public).ToList();
            var marked = constructors.Where(c => HasAttribute(c, SerializationConstructorAttribute)).ToList();
            foreach (var constructor in (marked.Count > 0 ? marked : constructors).OrderByDescending(c => c.Parameters.Length))
            {
                var order = new List<int>();
                foreach (var parameter in constructor.Parameters)
                {
                    var index = members.FindIndex(m => string.Equals(m.Name, parameter.Name, StringComparison.OrdinalIgnoreCase)
                        && SymbolEqualityComparer.Default.Equals(
                            (m is IPropertySymbol p ? p.Type : ((IFieldSymbol)m).Type).WithNullableAnnotation(NullableAnnotation.NotAnnotated),
                            parameter.Type.WithNullableAnnotation(NullableAnnotation.NotAnnotated)));
                    if (index < 0 || order.Contains(index))
                    {
                        order = null;
                        break;
                    }

                    order.Add(index);
                }

                if (order is not null)
                    return order;
            }

            return null;
        }
    }
}
