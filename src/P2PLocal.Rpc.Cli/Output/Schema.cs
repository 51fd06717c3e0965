using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace P2PLocal.Rpc.Cli.Output;

// The JSON that --json writes. This is a public contract (docs/cli.md): add fields, never rename or remove one, and
// bump Schema.Version only for a change a reader would misread. Every field is always present (null when unknown).

/// <summary>The schema version every JSON document carries in its <c>schema</c> field.</summary>
internal static class Schema
{
    public const int Version = 1;
}

/// <summary>Where a command looked.</summary>
internal sealed record NetworkJson(int Port, string Protocol, string Scope);

/// <summary>A peer as <c>peers</c> lists it.</summary>
internal sealed record PeerJson(
    string Name,
    string Endpoint,
    string Instance,
    string? LibraryVersion,
    bool Legacy,
    DateTimeOffset LastSeen,
    DateTimeOffset? StartedAt,
    long? AdvertiseIntervalMs,
    string? PeerId);

internal sealed record PeersJson(int Schema, NetworkJson Network, IReadOnlyList<PeerJson> Peers);

/// <summary>One line of <c>peers --watch --json</c>.</summary>
internal sealed record PeerEventJson(int Schema, string Event, DateTimeOffset Time, PeerJson Peer);

internal sealed record ParameterJson(string Name, string Type, bool Optional, JsonNode? Default = null);

/// <summary>A member of a <c>[MessagePackObject]</c> type: its key (an integer for the array layout, a string for the map layout).</summary>
internal sealed record MemberJson(string Name, JsonNode Key, string Type, bool Required);

/// <summary>A <c>[MessagePackObject]</c> type a function reaches, as <c>$methods</c> describes it.</summary>
internal sealed record ObjectTypeJson(string Name, string Layout, IReadOnlyList<MemberJson> Members);

internal sealed record FunctionJson(string Name, IReadOnlyList<ParameterJson> Kwargs, string Returns, string? Fingerprint, bool Dynamic, string? Contract = null,
    IReadOnlyList<ObjectTypeJson>? Types = null);

internal sealed record MethodsJson(int Schema, NetworkJson Network, string Peer, string Endpoint, string Instance, IReadOnlyList<FunctionJson> Functions);

/// <summary>What went wrong: the exception type, its message, and for a remote failure the remote type.</summary>
internal sealed record ErrorJson(string Type, string Message, string? RemoteType);

internal sealed record CallJson(int Schema, NetworkJson Network, string Peer, string Function, bool Ok, JsonNode? Result, ErrorJson? Error, double ElapsedMs);

/// <summary>One line of <c>listen --json</c>: a datagram heard on the discovery port.</summary>
internal sealed record DatagramJson(
    int Schema,
    DateTimeOffset Time,
    string Source,
    int Length,
    string Decoded,
    string? Kind,
    string? Protocol,
    bool? OurProtocol,
    string? Name,
    string? Endpoint,
    string? Instance,
    long? AdvertiseIntervalMs,
    DateTimeOffset? StartedAt,
    string? LibraryVersion,
    string? Text,
    string? Base64);

internal sealed record CheckJson(string Id, string Status, string Summary, string? Fix);

internal sealed record DoctorJson(int Schema, NetworkJson Network, string? Peer, double WaitSeconds, bool Passed, IReadOnlyList<CheckJson> Checks);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(PeersJson))]
[JsonSerializable(typeof(PeerEventJson))]
[JsonSerializable(typeof(MethodsJson))]
[JsonSerializable(typeof(CallJson))]
[JsonSerializable(typeof(DatagramJson))]
[JsonSerializable(typeof(DoctorJson))]
internal sealed partial class CliJson : JsonSerializerContext
{
    public static CliJson Compact { get; } = new(new JsonSerializerOptions(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });

    public static CliJson Indented { get; } = new(new JsonSerializerOptions(Compact.Options) { WriteIndented = true });
}
