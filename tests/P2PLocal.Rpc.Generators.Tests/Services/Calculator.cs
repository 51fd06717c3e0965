using MessagePack;

namespace P2PLocal.Rpc.Generators.Tests.Services;

public enum Direction
{
    North,
    East,
    South,
    West,
}

[MessagePackObject]
public sealed record Point([property: Key(0)] int X, [property: Key(1)] int Y);

[MessagePackObject]
public sealed class Person
{
    [Key(0)]
    public string Name { get; set; } = "";

    [Key(1)]
    public int Age { get; set; }

    [Key(2)]
    public string City { get; init; } = "";

    [Key(3)]
    public string? Nickname { get; set; }
}

/// <summary>Every supported shape, served by the real generated dispatcher and called through the real proxy.</summary>
[P2PService]
public partial class Calculator
{
    private readonly TaskCompletionSource _cancelled = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task HandlerCancelled => _cancelled.Task;

    public Task HandlerStarted => _started.Task;

    public int Resets { get; private set; }

    public int Add(int a, int b = 1) => a + b;

    public async Task<int> AddAsync(int a, int b, CancellationToken cancellationToken = default)
    {
        await Task.Yield();
        return a + b;
    }

    public ValueTask<string> EchoAsync(string text) => ValueTask.FromResult(text);

    public Task PingAsync() => Task.CompletedTask;

    public async ValueTask NoopAsync() => await Task.Yield();

    public void Reset() => Resets++;

    public string Greet(string name, string greeting = "Hello", int times = 1, Direction direction = Direction.East, double? scale = null) =>
        $"{string.Join(" ", Enumerable.Repeat(greeting, times))}, {name} ({direction}, {scale?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none"})";

    public async Task<int> WaitForCancelAsync(CancellationToken cancellationToken)
    {
        _started.TrySetResult();
        try
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return 0;
        }
        catch (OperationCanceledException)
        {
            _cancelled.TrySetResult();
            throw;
        }
    }

    public void Fail(string message) => throw new InvalidOperationException(message);

    public Point Move(Point point, Direction direction) => direction switch
    {
        Direction.North => point with { Y = point.Y + 1 },
        Direction.South => point with { Y = point.Y - 1 },
        Direction.East => point with { X = point.X + 1 },
        _ => point with { X = point.X - 1 },
    };

    public int[] Twice(int[] values) => [.. values.Select(v => v * 2)];

    public List<string> Upper(List<string> words) => [.. words.Select(w => w.ToUpperInvariant())];

    public Dictionary<string, int> Count(string[] words) => words.GroupBy(w => w).ToDictionary(g => g.Key, g => g.Count());

    public int? Half(int? value) => value / 2;

    public string? Nothing(string? text) => text;

    public Direction Turn(Direction direction) => (Direction)(((int)direction + 1) % 4);

    public int Sum(params int[] values) => values.Sum();

    [P2PFunction(Name = "add_three")]
    public int AddThree(int a, int b, int c) => a + b + c;

    /// <summary>Nine kwargs: the proxy's value-tuple state nests past seven items.</summary>
    public string Nine(int a, int b, int c, int d, int e, int f, int g, int h, string i = "!") => $"{a + b + c + d + e + f + g + h}{i}";

    /// <summary>Kwarg names that are also names in the generated code.</summary>
    public string Clash(string call, string reader, string function, int count, string key, string _client) => call + reader + function + count + key + _client;

    [P2PIgnore]
    public void NotServed() => Resets = -1;

    /// <summary>Takes the caller's context, which is not a kwarg.</summary>
    public string WhoCalls(string greeting, CallContext? caller = null) =>
        $"{greeting} {caller!.PeerName} {caller.InstanceId.Length} {caller.RemoteEndPoint?.Address} {caller.PeerId ?? "unverified"}";

    public double Mul(double x, float y = 1f, long z = 1) => x * y * z;

    public string Introduce(Person person) => $"{person.Name.ToUpperInvariant()} {person.Age} {person.City.Length} {person.Nickname ?? "-"}";

    public List<Person> Family(Person[] people, Dictionary<string, Direction> homes) =>
        [.. people.Select(p => new Person { Name = p.Name, Age = p.Age, City = homes[p.Name].ToString(), Nickname = p.Nickname })];
}
