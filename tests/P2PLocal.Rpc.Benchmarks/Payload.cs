using MessagePack;

namespace P2PLocal.Rpc.Benchmarks;

/// <summary>The larger payload every arm echoes: about 1 KB of mixed fields once serialized.</summary>
[MessagePackObject]
public sealed class Payload
{
    [Key(0)] public int Id { get; set; }
    [Key(1)] public string Title { get; set; } = "";
    [Key(2)] public string Description { get; set; } = "";
    [Key(3)] public double[] Values { get; set; } = [];
    [Key(4)] public string[] Tags { get; set; } = [];
    [Key(5)] public long Timestamp { get; set; }

    public static Payload Sample() => new()
    {
        Id = 42,
        Title = "A benchmark payload of moderate size",
        Description = string.Concat(Enumerable.Repeat("The quick brown fox jumps over the lazy dog. ", 9)),
        Values = [.. Enumerable.Range(0, 48).Select(i => i * 1.25 + 0.1)],
        Tags = [.. Enumerable.Range(0, 8).Select(i => $"tag-number-{i:D4}")],
        Timestamp = 1_700_000_000_000,
    };

    public Grpc.Payload ToProto()
    {
        var proto = new Grpc.Payload { Id = Id, Title = Title, Description = Description, Timestamp = Timestamp };
        proto.Values.Add(Values);
        proto.Tags.Add(Tags);
        return proto;
    }

    public static Payload FromProto(Grpc.Payload proto) => new()
    {
        Id = proto.Id,
        Title = proto.Title,
        Description = proto.Description,
        Values = [.. proto.Values],
        Tags = [.. proto.Tags],
        Timestamp = proto.Timestamp,
    };
}
