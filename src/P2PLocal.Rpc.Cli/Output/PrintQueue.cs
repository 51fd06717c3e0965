using System.Threading.Channels;

namespace P2PLocal.Rpc.Cli.Output;

/// <summary>
/// What <c>listen</c> and <c>subscribe</c> print as it arrives: a bounded queue between the thread that hears it and
/// the one that prints it. A flood past <see cref="Capacity"/> drops the oldest and is counted, so a long run on a busy
/// network does not grow, and the count is reported at the end.
/// </summary>
/// <typeparam name="T">What is printed.</typeparam>
internal sealed class PrintQueue<T>
{
    /// <summary>Items waiting to be printed at most.</summary>
    public const int Capacity = 10_000;

    private readonly Channel<T> _channel;
    private long _dropped;

    public PrintQueue() =>
        _channel = Channel.CreateBounded<T>(new BoundedChannelOptions(Capacity) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true },
            _ => Interlocked.Increment(ref _dropped));

    /// <summary>Queues an item (from any thread); never waits.</summary>
    public void Add(T item) => _channel.Writer.TryWrite(item);

    /// <summary>
    /// Prints the items as they arrive until <paramref name="count"/> were printed, <c>--wait</c> ran out, or
    /// <paramref name="cancellationToken"/> fired (Ctrl+C); returns how many were printed.
    /// </summary>
    public async Task<long> PrintAsync(CommonSettings settings, Action<T> print, long? count, CancellationToken cancellationToken)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (settings.WaitGiven)
            stop.CancelAfter(settings.Wait);
        long printed = 0;
        try
        {
            await foreach (var item in _channel.Reader.ReadAllAsync(stop.Token).ConfigureAwait(false))
            {
                print(item);
                if (++printed == count)
                    break;
            }
        }
        catch (OperationCanceledException)
        {
        }

        return printed;
    }

    /// <summary>Says how many <paramref name="what"/> were dropped, if any.</summary>
    public void ReportDropped(CliConsole console, string what)
    {
        var dropped = Interlocked.Read(ref _dropped);
        if (dropped > 0)
            console.Fail($"{dropped} {what} arrived faster than they could be printed and were not shown.");
    }
}
