using System.Text.RegularExpressions;

namespace P2PLocal.Rpc.Tests;

/// <summary>
/// Every relative link in the repository's Markdown (README, PROTOCOL.md, docs/, samples/) points at a file that
/// exists and, with a <c>#fragment</c>, at a heading or anchor in it: a second implementation is written from these pages.
/// </summary>
public partial class DocsLinkTests
{
    [Fact]
    public void Relative_links_and_anchors_in_markdown_resolve()
    {
        var root = RepositoryRoot();
        var broken = new List<string>();
        var pages = Directory.EnumerateFiles(root, "*.md", SearchOption.AllDirectories)
            .Where(p => !p.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !p.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !p.Contains($"{Path.DirectorySeparatorChar}.", StringComparison.Ordinal))
            .ToList();
        Assert.Contains(pages, p => p.EndsWith("PROTOCOL.md", StringComparison.Ordinal));

        foreach (var page in pages)
        {
            foreach (Match link in LinkPattern().Matches(File.ReadAllText(page)))
            {
                var target = link.Groups[1].Value;
                if (target.Contains("://", StringComparison.Ordinal) || target.StartsWith("mailto:", StringComparison.Ordinal))
                    continue;
                var hash = target.IndexOf('#', StringComparison.Ordinal);
                var file = hash < 0 ? target : target[..hash];
                var anchor = hash < 0 ? null : target[(hash + 1)..];
                var path = file.Length == 0 ? page : Path.GetFullPath(Path.Combine(Path.GetDirectoryName(page)!, file));
                var where = $"{Path.GetRelativePath(root, page)}: ({target})";
                if (!File.Exists(path) && !Directory.Exists(path))
                    broken.Add($"{where} -> no such file");
                else if (anchor is not null && path.EndsWith(".md", StringComparison.Ordinal) && !AnchorsOf(path).Contains(anchor))
                    broken.Add($"{where} -> no heading or anchor '{anchor}'");
            }
        }

        Assert.True(broken.Count == 0, "Broken links:\n" + string.Join('\n', broken));
    }

    /// <summary>GitHub's heading ids (lowercase, punctuation dropped, spaces to hyphens) and explicit <c>id</c> anchors.</summary>
    private static HashSet<string> AnchorsOf(string page)
    {
        var anchors = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in File.ReadLines(page))
        {
            if (line.StartsWith('#'))
            {
                var text = line.TrimStart('#').Trim().ToLowerInvariant();
                anchors.Add(SlugDrop().Replace(text, "").Replace(' ', '-'));
            }

            foreach (Match id in IdPattern().Matches(line))
                anchors.Add(id.Groups[1].Value);
        }

        return anchors;
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "P2PLocal.Rpc.sln")))
                return dir.FullName;
        }

        throw new InvalidOperationException($"No P2PLocal.Rpc.sln above {AppContext.BaseDirectory}.");
    }

    [GeneratedRegex(@"\]\(([^)\s]+)\)")]
    private static partial Regex LinkPattern();

    [GeneratedRegex(@"<a id=""([^""]+)""")]
    private static partial Regex IdPattern();

    [GeneratedRegex(@"[^\p{L}\p{Nd}\- _]")]
    private static partial Regex SlugDrop();
}
