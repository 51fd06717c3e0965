namespace P2PLocal.Rpc.Security;

/// <summary>
/// Passes everything through to the inner stream, keeping the first bytes read until <see cref="Stop"/>: when a TLS
/// handshake fails, they tell whether the server sent a plaintext refusal instead (a full node, PROTOCOL.md), so the
/// caller gets <see cref="PeerBusyException"/> and not an authentication error.
/// </summary>
/// <remarks>One reader and one writer at a time, as <see cref="System.Net.Security.SslStream"/> uses it.</remarks>
internal sealed class HandshakeRecorder(Stream inner) : Stream
{
    private const int Capacity = 1024;
    private byte[]? _recorded = new byte[Capacity];
    private int _length;

    /// <summary>The bytes read so far (at most 1 KiB), until <see cref="Stop"/>.</summary>
    public ReadOnlySpan<byte> Recorded => _recorded.AsSpan(0, _length);

    /// <summary>The handshake is done: record nothing more.</summary>
    public void Stop() => _recorded = null;

    private int Record(ReadOnlySpan<byte> read)
    {
        if (_recorded is { } recorded && _length < Capacity)
        {
            var take = Math.Min(read.Length, Capacity - _length);
            read[..take].CopyTo(recorded.AsSpan(_length));
            _length += take;
        }

        return read.Length;
    }

    // After the handshake, reads go straight through: no state machine, so no allocation per read.
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        _recorded is null ? inner.ReadAsync(buffer, cancellationToken) : RecordingReadAsync(buffer, cancellationToken);

    private async ValueTask<int> RecordingReadAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        var read = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        return _recorded is null ? read : Record(buffer.Span[..read]);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(Span<byte> buffer)
    {
        var read = inner.Read(buffer);
        return _recorded is null ? read : Record(buffer[..read]);
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => inner.WriteAsync(buffer, cancellationToken);

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => inner.WriteAsync(buffer, offset, count, cancellationToken);

    public override void Write(ReadOnlySpan<byte> buffer) => inner.Write(buffer);

    public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);

    public override void Flush() => inner.Flush();

    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

    public override bool CanRead => true;

    public override bool CanWrite => true;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
            inner.Dispose();
        base.Dispose(disposing);
    }
}
