namespace P2PLocal.Rpc.Generators.Tests.Services;

/// <summary>Two versions of one service: same function name, different kwargs; a V1 proxy must refuse a V2 peer.</summary>
[P2PService]
public partial class ShopV1
{
    public int Price(string item) => item.Length;
}

[P2PService]
public partial class ShopV2
{
    public int Price(int item) => item;
}
