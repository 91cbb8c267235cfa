using System.Buffers;
using System.IO.Pipelines;
using System.Text.Json;
using RamPay.Core;

namespace RamPay.Server.Http;

/// <summary>
/// Reads a request body as JSON and pulls typed fields out of it with the refusals docs/api.md promises: a money
/// amount that is not a positive integer is <c>invalid_amount</c> (not a generic parse error), a field of the wrong
/// type is <c>invalid_request</c> naming the field, a body over the limit is 413, and a body that is not well-formed
/// text (bytes that are not UTF-8, a lone surrogate escape) is <c>invalid_text</c> naming the field (<see cref="RequestText"/>).
/// </summary>
public sealed class JsonBody : IDisposable
{
    private readonly JsonDocument? _document;
    private byte[]? _bytes;

    private JsonBody(JsonDocument? document, byte[]? bytes)
    {
        _document = document;
        _bytes = bytes;
    }

    /// <summary>An empty body reads as <c>{}</c> when <paramref name="emptyIsObject"/>; otherwise it is invalid_json.</summary>
    public static async Task<JsonBody> ReadAsync(HttpContext ctx, int maxBytes, bool emptyIsObject = false)
    {
        if (ctx.Request.ContentLength > maxBytes) throw TooLarge(maxBytes);
        PipeReader reader = ctx.Request.BodyReader;
        while (true)
        {
            var read = await reader.ReadAsync(ctx.RequestAborted);
            var buffer = read.Buffer;
            if (buffer.Length > maxBytes)
            {
                reader.AdvanceTo(buffer.Start, buffer.End);
                throw TooLarge(maxBytes);
            }
            if (!read.IsCompleted)
            {
                reader.AdvanceTo(buffer.Start, buffer.End);
                continue;
            }
            try
            {
                if (buffer.Length == 0)
                {
                    if (emptyIsObject) return new JsonBody(null, null);
                    throw ApiError.BadRequest("invalid_json", "The request body must be a JSON object.");
                }
                // The document keeps pointing into the bytes it parsed, and the pipe reuses its memory once advanced:
                // so the body is copied into a pooled array that lives as long as the document.
                int length = (int)buffer.Length;
                byte[] bytes = ArrayPool<byte>.Shared.Rent(length);
                buffer.CopyTo(bytes);
                JsonDocument? document = null;
                try
                {
                    // Text first: JsonDocument does not check the UTF-8 inside strings, nor that a \u escape pairs its
                    // surrogates, and GetString then throws InvalidOperationException deep in a handler (a 500).
                    RequestText.CheckUtf8(bytes.AsSpan(0, length));
                    try
                    {
                        document = JsonDocument.Parse(bytes.AsMemory(0, length), new JsonDocumentOptions { MaxDepth = 16 });
                    }
                    catch (JsonException e)
                    {
                        throw ApiError.BadRequest("invalid_json", $"The request body is not valid JSON: {e.Message}");
                    }
                    if (document.RootElement.ValueKind != JsonValueKind.Object)
                        throw ApiError.BadRequest("invalid_json", "The request body must be a JSON object.");
                    RequestText.CheckEscapes(bytes.AsSpan(0, length));
                }
                catch (ApiError)
                {
                    document?.Dispose();
                    ArrayPool<byte>.Shared.Return(bytes);
                    throw;
                }
                return new JsonBody(document, bytes);
            }
            finally
            {
                reader.AdvanceTo(buffer.End);
            }
        }
    }

    private static ApiError TooLarge(int maxBytes) => new(413, "payload_too_large", $"The request body is larger than {maxBytes} bytes.");

    public JsonElement Root => _document?.RootElement ?? default;

    public void Dispose()
    {
        _document?.Dispose();
        if (_bytes is { } bytes)
        {
            _bytes = null;
            ArrayPool<byte>.Shared.Return(bytes);
        }
    }

    /// <summary>Field access over one JSON object (the body, or one item of a batch).</summary>
    public readonly struct Fields(JsonElement obj, string prefix = "")
    {
        public JsonElement Object => obj;
        /// <summary>What goes before a member's name in an error's <c>field</c> (a batch item's <c>payments[i].</c>).</summary>
        public string Prefix => prefix;

        private bool TryGet(string name, out JsonElement value)
        {
            value = default;
            return obj.ValueKind == JsonValueKind.Object && obj.TryGetProperty(name, out value) && value.ValueKind != JsonValueKind.Null;
        }

        /// <summary>A positive integer number of minor units, or <c>invalid_amount</c>.</summary>
        public long Amount(string name = "amount") => TryGet(name, out var v) ? AmountOf(v, prefix + name) : throw MissingAmount(prefix + name);

        public long? OptionalAmount(string name = "amount") => TryGet(name, out var v) ? AmountOf(v, prefix + name) : null;

        private static long AmountOf(JsonElement v, string field)
        {
            if (v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out long amount) && amount > 0) return amount;
            throw ApiError.BadRequest("invalid_amount", $"'{field}' must be a positive whole number of minor units (an integer, not a float or a string).", field);
        }

        private static ApiError MissingAmount(string field) => ApiError.InvalidRequest($"'{field}' is required: a positive whole number of minor units.", field);

        public long Id(string name) => TryGet(name, out var v) ? IdOf(v, prefix + name) : throw ApiError.InvalidRequest($"'{prefix + name}' is required: a positive integer id.", prefix + name);

        private static long IdOf(JsonElement v, string field) =>
            v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out long id) && id > 0 ? id : throw ApiError.InvalidRequest($"'{field}' must be a positive integer id.", field);

        public Currency Currency(string name = "currency") => TryGet(name, out var v) ? CurrencyOf(v, prefix + name) : throw ApiError.InvalidRequest($"'{prefix + name}' is required: a three-letter ISO 4217 code such as \"USD\".", prefix + name);

        public Currency? OptionalCurrency(string name = "currency") => TryGet(name, out var v) ? CurrencyOf(v, prefix + name) : null;

        private static Currency CurrencyOf(JsonElement v, string field) =>
            v.ValueKind == JsonValueKind.String && Core.Currency.TryParse(v.GetString(), out var c)
                ? c
                : throw ApiError.BadRequest("invalid_currency", $"'{field}' must be a three-letter upper-case ISO 4217 code such as \"USD\".", field);

        public string? OptionalString(string name) => TryGet(name, out var v)
            ? v.ValueKind == JsonValueKind.String ? v.GetString() : throw ApiError.InvalidRequest($"'{prefix + name}' must be a string.", prefix + name)
            : null;

        public string String(string name) => OptionalString(name) ?? throw ApiError.InvalidRequest($"'{prefix + name}' is required.", prefix + name);

        public bool? OptionalBool(string name) => TryGet(name, out var v)
            ? v.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw ApiError.InvalidRequest($"'{prefix + name}' must be true or false.", prefix + name),
            }
            : null;

        public long? OptionalNonNegativeLong(string name, string code = "invalid_request") => TryGet(name, out var v)
            ? v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out long x) && x >= 0 ? x : throw ApiError.BadRequest(code, $"'{prefix + name}' must be a non-negative integer.", prefix + name)
            : null;
    }

    public Fields Body => new(Root);
}
