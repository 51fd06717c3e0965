using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using MessagePack;

namespace P2PLocal.Rpc.Tests;

/// <summary>One TCP connection that speaks the frames of PROTOCOL.md by hand, for tests that play a peer or a stranger.</summary>
public sealed class WireSocket(Socket socket) : IDisposable
{
    public Socket Socket => socket;

    public static async Task<WireSocket> ConnectAsync(IPEndPoint endPoint)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(endPoint).Within();
        return new WireSocket(socket);
    }

    /// <summary>Says hello as a caller of this version would and returns the node's hello.</summary>
    public async Task<byte[]> HelloAsync(string name = "raw")
    {
        await SendAsync((ref MessagePackWriter w) =>
        {
            w.WriteArrayHeader(6);
            w.Write(4); w.Write(1); w.Write(name); w.Write(name + "-1"); w.Write(1 << 20); w.Write(0L);
        });
        return await ReadAsync().Within();
    }

    public async Task SendAsync(WriteMessage write) => await socket.SendAsync(WireFrames.Frame(write), SocketFlags.None);

    /// <summary>The next frame's payload; null when the other side closed.</summary>
    public async Task<byte[]?> TryReadAsync()
    {
        var prefix = new byte[4];
        if (!await ReadExactlyAsync(prefix))
            return null;
        var payload = new byte[BinaryPrimitives.ReadInt32BigEndian(prefix)];
        return await ReadExactlyAsync(payload) ? payload : null;
    }

    public async Task<byte[]> ReadAsync() => await TryReadAsync() ?? throw new EndOfStreamException("The other side closed.");

    /// <summary>The kind and id of a message (its first two elements).</summary>
    public static (int Kind, uint Id) Head(byte[] payload)
    {
        var reader = new MessagePackReader(payload);
        reader.ReadArrayHeader();
        return (reader.ReadInt32(), reader.ReadUInt32());
    }

    private async Task<bool> ReadExactlyAsync(Memory<byte> buffer)
    {
        try
        {
            while (buffer.Length > 0)
            {
                var read = await socket.ReceiveAsync(buffer, SocketFlags.None);
                if (read == 0)
                    return false;
                buffer = buffer[read..];
            }

            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    public void Dispose() => socket.Dispose();
}
