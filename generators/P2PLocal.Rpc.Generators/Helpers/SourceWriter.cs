using System;
using System.Text;

namespace P2PLocal.Rpc.Generators.Helpers;

/// <summary>A tiny indenting text writer for generated C#; multi-line text (raw string literals) is indented line by line.</summary>
internal sealed class SourceWriter
{
    private readonly StringBuilder _text = new();
    private int _indent;

    public SourceWriter WriteLine(string line = "")
    {
        if (line.IndexOf('\n') >= 0)
        {
            foreach (var part in line.Replace("\r\n", "\n").Split('\n'))
                WriteLine(part);
            return this;
        }

        if (line.Length > 0)
            _text.Append(' ', _indent * 4);
        _text.Append(line).Append('\n');
        return this;
    }

    public SourceWriter OpenBlock(string header)
    {
        WriteLine(header);
        WriteLine("{");
        _indent++;
        return this;
    }

    public SourceWriter CloseBlock(string closing = "}")
    {
        _indent--;
        return WriteLine(closing);
    }

    public SourceWriter Indent()
    {
        _indent++;
        return this;
    }

    public SourceWriter Unindent()
    {
        if (_indent == 0)
            throw new InvalidOperationException("Unbalanced indentation.");
        _indent--;
        return this;
    }

    public override string ToString() => _text.ToString();
}
