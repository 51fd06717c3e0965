using MessagePack;
using P2PLocal.Rpc;

namespace P2PLocal.Rpc.Sample;

/// <summary>Travels as the array <c>[x, y]</c> (integer keys).</summary>
[MessagePackObject]
public sealed record Point([property: Key(0)] double X, [property: Key(1)] double Y);

/// <summary>Travels as the array <c>[from, to, label]</c>; the label may be nil or left out, the points may not.</summary>
[MessagePackObject]
public sealed class Segment
{
    [Key(0)]
    public Point From { get; set; } = new(0, 0);

    [Key(1)]
    public Point To { get; set; } = new(0, 0);

    [Key(2)]
    public string? Label { get; set; }
}

/// <summary>Travels as the map <c>{"label": ..., "length": ...}</c> (string keys).</summary>
[MessagePackObject]
public sealed class Measurement
{
    [Key("label")]
    public string Label { get; set; } = "";

    [Key("length")]
    public double Length { get; set; }
}

/// <summary>
/// A typed service whose kwargs and results are <c>[MessagePackObject]</c> types: <c>$methods</c> describes them, so
/// a caller in another language can build them (samples/python/example.py does).
/// </summary>
[P2PService]
public partial class Geometry
{
    public Measurement Measure(Segment segment, int decimals = 2) => new()
    {
        Label = segment.Label ?? "segment",
        Length = Math.Round(Math.Sqrt(Square(segment.To.X - segment.From.X) + Square(segment.To.Y - segment.From.Y)), decimals),
    };

    private static double Square(double value) => value * value;
}
