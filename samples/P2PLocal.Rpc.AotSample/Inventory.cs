using MessagePack;
using P2PLocal.Rpc;

namespace AotSample;

public enum Unit
{
    Piece,
    Kilogram,
}

[MessagePackObject]
public sealed record Item([property: Key(0)] string Name, [property: Key(1)] int Count, [property: Key(2)] Unit Unit);

[MessagePackObject]
public sealed class Stock
{
    [Key(0)]
    public string Owner { get; set; } = "";

    [Key(1)]
    public List<Item> Items { get; set; } = [];

    [Key(2)]
    public Dictionary<string, double> Prices { get; set; } = [];
}

/// <summary>Every call carries [MessagePackObject] types, enums, lists and dictionaries: what Native AOT must serialize without emitted code.</summary>
[P2PService]
public partial class Inventory(string owner)
{
    private readonly TaskCompletionSource<string> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes with the caller's name once a peer has said it is done calling this node.</summary>
    public Task<string> PeerDone => _done.Task;

    public Stock Restock(Item[] items, Unit unit = Unit.Piece)
    {
        return new Stock
        {
            Owner = owner,
            Items = [.. items.Select(i => i with { Count = i.Count * 2, Unit = unit })],
            Prices = items.ToDictionary(i => i.Name, i => i.Count * 1.5),
        };
    }

    public Task<Item?> Find(List<Item> items, string name) => Task.FromResult(items.FirstOrDefault(i => i.Name == name));

    public Item Make(string name, int count) => new(name, count, Unit.Piece);

    /// <summary>The caller's last call: it will call no more, so this node may stop once it is done itself.</summary>
    public void Done(CallContext? caller = null) => _done.TrySetResult(caller?.PeerName ?? "?");
}
