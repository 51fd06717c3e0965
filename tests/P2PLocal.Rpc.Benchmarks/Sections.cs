namespace P2PLocal.Rpc.Benchmarks;

/// <summary>
/// Parts of docs/benchmarks.md written by their own runs (<c>--ceiling</c>, <c>--growth</c>) between markers, so a
/// full run, which rewrites the file, carries them over instead of dropping them.
/// </summary>
public static class Sections
{
    private static string Start(string name) => $"<!-- {name}:start -->";

    private static string End(string name) => $"<!-- {name}:end -->";

    /// <summary>Puts <paramref name="content"/> between the section's markers in the file, appending the section when absent.</summary>
    public static void Write(string path, string name, string content)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var text = File.Exists(path) ? File.ReadAllText(path) : "";
        var block = $"{Start(name)}\n{content.TrimEnd()}\n{End(name)}";
        var start = text.IndexOf(Start(name), StringComparison.Ordinal);
        var end = text.IndexOf(End(name), StringComparison.Ordinal);
        text = start >= 0 && end > start
            ? text[..start] + block + text[(end + End(name).Length)..]
            : text.TrimEnd() + "\n\n" + block + "\n";
        File.WriteAllText(path, text);
    }

    /// <summary>Every marked section of the file at <paramref name="path"/>, to append to a rewritten report.</summary>
    public static string Carried(string path)
    {
        if (!File.Exists(path))
            return "";
        var text = File.ReadAllText(path);
        var carried = new List<string>();
        for (var at = text.IndexOf("<!-- ", StringComparison.Ordinal); at >= 0; at = text.IndexOf("<!-- ", at + 1, StringComparison.Ordinal))
        {
            var close = text.IndexOf(":start -->", at, StringComparison.Ordinal);
            if (close < 0 || text.IndexOf('\n', at) < close)
                continue;
            var name = text[(at + 5)..close];
            var end = text.IndexOf(End(name), close, StringComparison.Ordinal);
            if (end < 0)
                continue;
            carried.Add(text[at..(end + End(name).Length)]);
            at = end;
        }

        return carried.Count == 0 ? "" : "\n" + string.Join("\n\n", carried) + "\n";
    }
}
