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

/// <summary>One line of <c>call --json</c> on a function that streams: an item, in the order the producer yielded it.</summary>
internal sealed record StreamItemJson(int Schema, string Event, long Index, JsonNode? Item);

/// <summary>
/// The last line of <c>call --json</c> on a function that streams. <c>Complete</c> is true when the producer ended the
/// stream itself, false when the tool left early (<c>--max-items</c>, Ctrl+C) or the stream failed.
/// </summary>
internal sealed record StreamEndJson(int Schema, string Event, NetworkJson Network, string Peer, string Function, bool Ok, long Items, bool Complete,
    ErrorJson? Error, double ElapsedMs);

/// <summary>What <c>publish --json</c> writes: who was seen, and how many the event reached (<see cref="EventStatistics"/>).</summary>
internal sealed record PublishJson(int Schema, NetworkJson Network, string Topic, JsonNode? Value, bool Ok, IReadOnlyList<string> PeersSeen, long Reached,
    long Dropped, double ElapsedMs);

/// <summary>One line of <c>subscribe --json</c>: an event a peer published.</summary>
internal sealed record EventJson(int Schema, DateTimeOffset Time, string Topic, string Sender, string Instance, string? PeerId, JsonNode? Value);

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
[JsonSerializable(typeof(StreamItemJson))]
[JsonSerializable(typeof(StreamEndJson))]
[JsonSerializable(typeof(PublishJson))]
[JsonSerializable(typeof(EventJson))]
internal sealed partial class CliJson : JsonSerializerContext
{
    public static CliJson Compact { get; } = new(new JsonSerializerOptions(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });

    public static CliJson Indented { get; } = new(new JsonSerializerOptions(Compact.Options) { WriteIndented = true });
}
