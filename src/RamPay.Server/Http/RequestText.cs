using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using Microsoft.AspNetCore.Http.Features;

namespace RamPay.Server.Http;

/// <summary>
/// The one rule for text in a request: every string a caller sends (a JSON body, the request target's %-escapes, the
/// Idempotency-Key header) must be well-formed Unicode, that is UTF-8 without invalid, overlong, surrogate or truncated
/// sequences, and JSON without a <c>\uD800</c>..<c>\uDFFF</c> escape that lacks its pair. Anything else is refused
/// with <c>400 invalid_text</c> (the key: <c>invalid_idempotency_key</c>) before the request reaches the engine, so
/// no handler ever meets a string that .NET cannot decode (System.Text.Json throws InvalidOperationException from
/// GetString on such a string: that was a 500).
/// </summary>
/// <remarks>
/// The checks are cheap on the fast path (a vectorized UTF-8 validation and a search for a backslash or a percent
/// sign); the work of finding and naming the offending field runs only for a request that is refused.
/// Raw bytes above 0x7F in the request line (not %-escaped) never get here: HTTP/1.1 requires an ASCII request
/// target, and Kestrel refuses such a request itself with a bare 400 before any middleware runs.
/// </remarks>
public static class RequestText
{
    public const string Code = "invalid_text";

    /// <summary>The headers an endpoint reads as text. Kestrel decodes them as Latin-1 (one char per byte) so that a
    /// byte above 0x7F reaches the endpoint, which refuses it with a JSON error, instead of Kestrel's bare 400.</summary>
    private static readonly string[] TextHeaders = ["Idempotency-Key", "Authorization"];

    /// <summary>For <c>KestrelServerOptions.RequestHeaderEncodingSelector</c>: Latin-1 for <see cref="TextHeaders"/>,
    /// Kestrel's default (ASCII only) for every other header.</summary>
    public static Encoding? HeaderEncoding(string headerName)
    {
        foreach (string name in TextHeaders)
            if (string.Equals(name, headerName, StringComparison.OrdinalIgnoreCase)) return Encoding.Latin1;
        return null;
    }

    /// <summary>True when every char of a header value is ASCII (with <see cref="HeaderEncoding"/>, a char is a byte).</summary>
    public static bool IsAscii(string value) => Ascii.IsValid(value);

    // ---- the JSON body ------------------------------------------------------------------------------------------

    /// <summary>Refuses a body that is not UTF-8: run before parsing, since RFC 8259 JSON text is UTF-8.</summary>
    public static void CheckUtf8(ReadOnlySpan<byte> body)
    {
        if (!Utf8.IsValid(body)) throw InvalidUtf8(body);
    }

    /// <summary>Refuses a parsed body holding a string (a value or a property name) with a lone surrogate escape.</summary>
    public static void CheckEscapes(ReadOnlySpan<byte> body)
    {
        // A lone surrogate can only be written as a \u escape: a body without a backslash has none.
        if (body.IndexOf((byte)'\\') >= 0 && HasLoneSurrogateEscape(body)) throw LoneSurrogate(body);
    }

    /// <summary>
    /// Whether a body that parsed as JSON holds a \u escape of a surrogate without its pair. In valid JSON a backslash
    /// only ever begins an escape inside a string, so the escapes can be walked without tokenizing (and without the
    /// allocations of decoding each escaped string).
    /// </summary>
    private static bool HasLoneSurrogateEscape(ReadOnlySpan<byte> json)
    {
        int i = 0;
        while (true)
        {
            int at = json[i..].IndexOf((byte)'\\');
            if (at < 0) return false;
            i += at;
            if (json[i + 1] != (byte)'u')
            {
                i += 2; // \" \\ \/ \b \f \n \r \t
                continue;
            }
            int unit = Hex4(json.Slice(i + 2, 4));
            i += 6;
            if (unit is < 0xD800 or > 0xDFFF) continue;
            if (unit >= 0xDC00) return true; // a low surrogate with no high one before it
            if (json.Length - i >= 6 && json[i] == (byte)'\\' && json[i + 1] == (byte)'u' && Hex4(json.Slice(i + 2, 4)) is >= 0xDC00 and <= 0xDFFF)
            {
                i += 6;
                continue;
            }
            return true; // a high surrogate without its low one
        }
    }

    private static int Hex4(ReadOnlySpan<byte> hex) =>
        HexValue((char)hex[0]) << 12 | HexValue((char)hex[1]) << 8 | HexValue((char)hex[2]) << 4 | HexValue((char)hex[3]);

    private static ApiError LoneSurrogate(ReadOnlySpan<byte> body)
    {
        var found = FindString(body, badOffset: -1);
        string what = found is { } f ? Describe(f) : "The request body";
        return new ApiError(400, Code, $"{what} is not valid text: it holds a \\u escape of a lone UTF-16 surrogate (\\uD800..\\uDFFF without its pair).") { Field = FieldOf(found) };
    }

    private static ApiError InvalidUtf8(ReadOnlySpan<byte> body)
    {
        int offset = FirstInvalidUtf8(body);
        var found = FindString(body, offset);
        string what = found is { } f ? Describe(f) : "The request body";
        return new ApiError(400, Code, $"{what} is not valid text: byte {offset} of the body (0x{body[offset]:X2}) does not belong to a well-formed UTF-8 sequence.") { Field = FieldOf(found) };
    }

    private static int FirstInvalidUtf8(ReadOnlySpan<byte> bytes)
    {
        int i = 0;
        while (i < bytes.Length)
        {
            if (System.Text.Rune.DecodeFromUtf8(bytes[i..], out _, out int consumed) != System.Buffers.OperationStatus.Done) return i;
            i += consumed;
        }
        return bytes.Length; // unreachable for a span that Utf8.IsValid refused
    }

    private readonly record struct Found(string Path, bool IsPropertyName);

    /// <summary><c>field</c> of the error: the member holding the bad string (for a bad property name, the name's path), or null for the body itself.</summary>
    private static string? FieldOf(Found? found) => found is { Path.Length: > 0 } f ? f.Path : null;

    private static string Describe(Found f) =>
        f.IsPropertyName ? $"A property name in {(f.Path.Length == 0 ? "the body" : $"'{f.Path}'")}"
        : f.Path.Length == 0 ? "The request body" : $"'{f.Path}'";

    private sealed class Frame(bool isArray)
    {
        public bool IsArray { get; } = isArray;
        public int Count { get; set; }
        public string? Name { get; set; }
    }

    /// <summary>
    /// The first string token (value or property name) that holds the byte at <paramref name="badOffset"/>, or, when
    /// it is -1, the first whose escapes do not decode; with its JSON path (<c>payments[0].description</c>). Null when
    /// there is none or the body stops being JSON before it (the caller then names the body).
    /// </summary>
    private static Found? FindString(ReadOnlySpan<byte> body, int badOffset)
    {
        var frames = new List<Frame>();
        var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = 64 });
        try
        {
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.StartObject:
                    case JsonTokenType.StartArray:
                        BeginValue(frames);
                        frames.Add(new Frame(reader.TokenType == JsonTokenType.StartArray));
                        break;
                    case JsonTokenType.EndObject:
                    case JsonTokenType.EndArray:
                        frames.RemoveAt(frames.Count - 1);
                        break;
                    case JsonTokenType.PropertyName:
                        if (IsBad(ref reader, badOffset)) return new Found(PathOf(frames, upTo: frames.Count - 1), IsPropertyName: true);
                        frames[^1].Name = Encoding.UTF8.GetString(reader.ValueSpan);
                        break;
                    case JsonTokenType.String:
                        BeginValue(frames);
                        if (IsBad(ref reader, badOffset)) return new Found(PathOf(frames, upTo: frames.Count), IsPropertyName: false);
                        break;
                    default:
                        BeginValue(frames);
                        break;
                }
            }
        }
        catch (JsonException)
        {
            // The bad bytes are outside any string, or the body is cut short: no field to name.
        }
        return null;
    }

    private static void BeginValue(List<Frame> frames)
    {
        if (frames.Count > 0 && frames[^1].IsArray) frames[^1].Count++;
    }

    private static bool IsBad(ref Utf8JsonReader reader, int badOffset)
    {
        if (badOffset >= 0)
        {
            // The token spans its quotes; ValueSpan is what lies between them.
            long start = reader.TokenStartIndex;
            return badOffset >= start && badOffset < start + reader.ValueSpan.Length + 2;
        }
        if (!reader.ValueIsEscaped) return false;
        try
        {
            reader.GetString();
            return false;
        }
        catch (InvalidOperationException)
        {
            return true;
        }
    }

    private static string PathOf(List<Frame> frames, int upTo)
    {
        var path = new StringBuilder();
        for (int i = 0; i < upTo; i++)
        {
            var f = frames[i];
            if (f.IsArray) path.Append('[').Append(f.Count - 1).Append(']');
            else path.Append(path.Length == 0 ? "" : ".").Append(f.Name);
        }
        return path.ToString();
    }

    // ---- the request target -------------------------------------------------------------------------------------

    /// <summary>
    /// Refuses a path or query string whose %-escapes decode to bytes that are not UTF-8 (<c>%C3%28</c>, <c>%FF</c>,
    /// <c>%ED%A0%80</c>). ASP.NET would keep such escapes undecoded and carry on, so a route id would be a 404 and an
    /// unknown query parameter would be ignored: one answer for bad text everywhere is easier for a caller to act on.
    /// </summary>
    public static void CheckTarget(HttpContext ctx)
    {
        string? raw = ctx.Features.Get<IHttpRequestFeature>()?.RawTarget;
        if (raw is not null && raw.Contains('%')) CheckTargetSlow(raw);
    }

    private static void CheckTargetSlow(string raw)
    {
        ReadOnlySpan<char> target = raw;
        int question = target.IndexOf('?');
        if (!DecodesToUtf8(question < 0 ? target : target[..question]))
            throw new ApiError(400, Code, "The request path is not valid text: its %-escapes decode to bytes that are not well-formed UTF-8.");
        if (question < 0) return;
        foreach (var range in target[(question + 1)..].Split('&'))
        {
            var pair = target[(question + 1)..][range];
            int equals = pair.IndexOf('=');
            var name = equals < 0 ? pair : pair[..equals];
            if (!DecodesToUtf8(name))
                throw new ApiError(400, Code, $"The query parameter name '{name}' is not valid text: its %-escapes decode to bytes that are not well-formed UTF-8.") { Field = name.ToString() };
            if (equals >= 0 && !DecodesToUtf8(pair[(equals + 1)..]))
                throw new ApiError(400, Code, $"The query parameter '{name}' is not valid text: its %-escapes decode to bytes that are not well-formed UTF-8.") { Field = name.ToString() };
        }
    }

    /// <summary>Whether a piece of the request target %-decodes to well-formed UTF-8. A '%' not followed by two hex
    /// digits stays itself, as ASP.NET's own decoding leaves it.</summary>
    private static bool DecodesToUtf8(ReadOnlySpan<char> text)
    {
        if (!text.Contains('%')) return true;
        int max = Encoding.UTF8.GetMaxByteCount(text.Length);
        byte[]? rented = max > 512 ? System.Buffers.ArrayPool<byte>.Shared.Rent(max) : null;
        Span<byte> bytes = rented ?? stackalloc byte[512];
        try
        {
            int n = 0;
            for (int i = 0; i < text.Length; i++)
            {
                char c = text[i];
                if (c == '%' && i + 2 < text.Length && IsHex(text[i + 1]) && IsHex(text[i + 2]))
                {
                    bytes[n++] = (byte)(HexValue(text[i + 1]) << 4 | HexValue(text[i + 2]));
                    i += 2;
                }
                else if (c < 0x80)
                {
                    bytes[n++] = (byte)c;
                }
                else
                {
                    // Kestrel let a raw non-ASCII char through only as part of well-formed UTF-8: encode it back.
                    int length = char.IsHighSurrogate(c) && i + 1 < text.Length ? 2 : 1;
                    n += Encoding.UTF8.GetBytes(text.Slice(i, length), bytes[n..]);
                    i += length - 1;
                }
            }
            return Utf8.IsValid(bytes[..n]);
        }
        finally
        {
            if (rented is not null) System.Buffers.ArrayPool<byte>.Shared.Return(rented);
        }
    }

    private static int HexValue(char c) => c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;

    private static bool IsHex(char c) => char.IsAsciiHexDigit(c);
}
