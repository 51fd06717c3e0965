namespace P2PLocal.Rpc.Generators.Tests;

internal static class Repository
{
    /// <summary>The folder that holds P2PLocal.Rpc.sln, found above the test binaries.</summary>
    public static string Root { get; } = Find();

    private static string Find()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "P2PLocal.Rpc.sln")))
            directory = directory.Parent;
        return directory?.FullName ?? throw new InvalidOperationException("The repository root (P2PLocal.Rpc.sln) is not above the test binaries.");
    }
}
