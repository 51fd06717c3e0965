namespace P2PLocal.Rpc.Dispatch;

/// <summary>
/// The node-wide cap on the work its running requests hold: kwargs values (what decoding may build) and request bytes
/// (the frames kept until each handler finishes), so many connections together cannot take the process to gigabytes
/// (issue 8, item 6). See <see cref="NodeOptions.MaxKwargsElementsInFlight"/> and <see cref="NodeOptions.MaxRequestBytesInFlight"/>.
/// </summary>
/// <remarks>Thread-safe.</remarks>
internal sealed class WorkInFlight(long maxElements, long maxBytes)
{
    private readonly object _gate = new();
    private long _elements;
    private long _bytes;

    public long MaxElements => maxElements;

    public long MaxBytes => maxBytes;

    /// <summary>Takes room for one request; false when it would go over either cap (nothing is taken then).</summary>
    public bool TryTake(int elements, int bytes)
    {
        lock (_gate)
        {
            if (_elements + elements > maxElements || _bytes + bytes > maxBytes)
                return false;
            _elements += elements;
            _bytes += bytes;
            return true;
        }
    }

    /// <summary>Gives back what <see cref="TryTake"/> took, once the request finished.</summary>
    public void Give(int elements, int bytes)
    {
        lock (_gate)
        {
            _elements -= elements;
            _bytes -= bytes;
        }
    }

    /// <summary>What the running requests hold now (for tests and diagnostics).</summary>
    public (long Elements, long Bytes) Held
    {
        get
        {
            lock (_gate)
                return (_elements, _bytes);
        }
    }
}
