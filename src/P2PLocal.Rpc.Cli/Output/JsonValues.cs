using System.Collections;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace P2PLocal.Rpc.Cli.Output;

/// <summary>
/// Converts between JSON and the plain .NET values that dynamic calls send and return (see
/// <see cref="Dispatch.KwargsCodec"/>): integers as <see cref="long"/> (or <see cref="ulong"/>), other numbers as
/// <see cref="double"/>, objects as dictionaries, arrays as <c>object?[]</c>.
/// </summary>
internal static class JsonValues
{
    /// <summary>The most nesting a kwarg value may have, as MessagePack's untrusted-data limit on the peer.</summary>
    public const int MaxDepth = 64;

    /// <summary>Reads <c>value</c> of <c>key=value</c>: JSON where it parses as JSON, a string otherwise.</summary>
    public static object? ParseArgument(string text)
    {
        try
        {
            using var document = JsonDocument.Parse(text, new JsonDocumentOptions { MaxDepth = MaxDepth });
            return FromJson(document.RootElement);
        }
        catch (JsonException)
        {
            return text;
        }
    }

    /// <summary>Reads a <c>--kwargs</c> object.</summary>
    /// <exception cref="JsonException">The text is not JSON, or not an object.</exception>
    public static Dictionary<string, object?> ParseObject(string text)
    {
        using var document = JsonDocument.Parse(text, new JsonDocumentOptions { MaxDepth = MaxDepth });
        if (document.RootElement.ValueKind != JsonValueKind.Object)
            throw new JsonException($"--kwargs must be a JSON object such as '{{\"name\": \"Ann\"}}', not a {document.RootElement.ValueKind.ToString().ToLowerInvariant()}.");
        return (Dictionary<string, object?>)FromJson(document.RootElement)!;
    }

    public static object? FromJson(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Null => null,
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.String => element.GetString(),
        JsonValueKind.Number when element.TryGetInt64(out var integer) => integer,
        JsonValueKind.Number when element.TryGetUInt64(out var large) => large,
        JsonValueKind.Number => element.GetDouble(),
        JsonValueKind.Array => element.EnumerateArray().Select(FromJson).ToArray(),
        JsonValueKind.Object => ReadObject(element),
        _ => throw new JsonException($"Unexpected JSON {element.ValueKind}."),
    };

    private static Dictionary<string, object?> ReadObject(JsonElement element)
    {
        var map = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var property in element.EnumerateObject())
            map[property.Name] = FromJson(property.Value);
        return map;
    }

    /// <summary>
    /// A result as JSON. Binary becomes a base64 string, a timestamp an ISO 8601 string, a float that JSON cannot
    /// hold (NaN, infinity) its name as a string, and a map key that is not a string its JSON text.
    /// </summary>
    public static JsonNode? ToJson(object? value) => value switch
    {
        null => null,
        string s => JsonValue.Create(s),
        bool b => JsonValue.Create(b),
        double d => double.IsFinite(d) ? JsonValue.Create(d) : JsonValue.Create(d.ToString(CultureInfo.InvariantCulture)),
        float f => double.IsFinite(f) ? JsonValue.Create((double)f) : JsonValue.Create(f.ToString(CultureInfo.InvariantCulture)),
        long l => JsonValue.Create(l),
        ulong u => JsonValue.Create(u),
        int i => JsonValue.Create(i),
        uint u => JsonValue.Create(u),
        short s => JsonValue.Create(s),
        ushort u => JsonValue.Create(u),
        byte b => JsonValue.Create(b),
        sbyte b => JsonValue.Create(b),
        char c => JsonValue.Create(c.ToString()),
        byte[] bytes => JsonValue.Create(Convert.ToBase64String(bytes)),
        DateTime time => JsonValue.Create(time.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture)),
        DateTimeOffset time => JsonValue.Create(time.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture)),
        IDictionary map => ToJsonObject(map),
        IEnumerable items => new JsonArray([.. items.Cast<object?>().Select(ToJson)]),
        _ => JsonValue.Create(Convert.ToString(value, CultureInfo.InvariantCulture)),
    };

    private static JsonObject ToJsonObject(IDictionary map)
    {
        var json = new JsonObject();
        foreach (DictionaryEntry entry in map)
            json[entry.Key as string ?? ToJson(entry.Key)?.ToJsonString() ?? "null"] = ToJson(entry.Value);
        return json;
    }
}
