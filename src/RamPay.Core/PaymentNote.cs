using System.Buffers;
using System.Text;

namespace RamPay.Core;

/// <summary>
/// What a payment carries besides its money: a description for people and a URL the host calls about it. It travels
/// as the attachment of a Transfer or Authorize command, is kept by the ledger per payment
/// (<see cref="IReadOnlyLedger.GetPaymentNote"/>), and is replayed and snapshotted with the rest of the state.
/// A field that is absent is null, never empty. The note takes no part in idempotency: a key reused with another
/// note replays the first result, and the payment keeps its first note.
/// <para>
/// Encoding, version 1: one byte <see cref="EncodingVersion"/>, then two fields, description and webhook URL, each a
/// u16 little-endian byte length and that many UTF-8 bytes; length 0 means absent. Nothing may follow.
/// </para>
/// </summary>
public sealed record PaymentNote(string? Description, string? WebhookUrl)
{
    public const int MaxDescriptionLength = 500;
    public const int MaxWebhookUrlLength = 2000;
    public const byte EncodingVersion = 1;

    /// <summary>
    /// The largest encoding of a valid note, and the largest <see cref="TryDecode"/> reads: 3,505 bytes, under the
    /// engine's 4,016-byte attachment limit (an engine test pins that). A UTF-16 char is at most 3 UTF-8 bytes (a
    /// surrogate pair is 4 for 2 chars) and a webhook URL is ASCII, 1 byte a char.
    /// </summary>
    public const int MaxEncodedBytes = 1 + 2 + MaxDescriptionLength * 3 + 2 + MaxWebhookUrlLength;

    /// <summary>Neither field: such a note is never encoded into a command (send no attachment instead).</summary>
    public bool IsEmpty => Description is null && WebhookUrl is null;

    /// <summary>
    /// Each field absent, or within its rules. Description: 1..500 UTF-16 chars, well-formed (no lone surrogate: it has
    /// no UTF-8 form) and free of control characters, tab and newline included: it is one line of text for people,
    /// shown in lists, logs and exports, where a control character breaks the line or hides what follows. Webhook URL:
    /// 1..2,000 chars of printable ASCII (no space, no control; a URL proper, so international names arrive
    /// percent-encoded or as punycode) that parse as an absolute http or https URL with a host. Printable ASCII also
    /// keeps the check independent of the machine's IDN tables: replay must accept exactly what the live run accepted.
    /// An empty note is valid; the ledger refuses it as an attachment all the same (see <see cref="IsEmpty"/>).
    /// </summary>
    public bool IsValid => IsValidDescription(Description) && IsValidWebhookUrl(WebhookUrl);

    private static bool IsValidDescription(string? description)
    {
        if (description is null) return true;
        if (description.Length is 0 or > MaxDescriptionLength) return false;
        ReadOnlySpan<char> rest = description;
        while (!rest.IsEmpty)
        {
            if (Rune.DecodeFromUtf16(rest, out Rune rune, out int used) != OperationStatus.Done || Rune.IsControl(rune)) return false;
            rest = rest[used..];
        }
        return true;
    }

    private static bool IsValidWebhookUrl(string? url)
    {
        if (url is null) return true;
        if (url.Length is 0 or > MaxWebhookUrlLength || url.AsSpan().ContainsAnyExceptInRange('!', '~')) return false;
        return Uri.TryCreate(url, UriKind.Absolute, out var uri)
               && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)
               && uri.Host.Length > 0;
    }

    /// <summary>
    /// The attachment bytes. Does not check <see cref="IsValid"/> (the host does, before it submits; the ledger does
    /// again), but refuses with <see cref="ArgumentException"/> what the format cannot carry: a field with no UTF-8
    /// form, or more than <see cref="MaxEncodedBytes"/> in all.
    /// </summary>
    public byte[] Encode()
    {
        string description = Description ?? "", webhookUrl = WebhookUrl ?? "";
        int size = 1 + LengthPrefixedUtf8.Size(description) + LengthPrefixedUtf8.Size(webhookUrl);
        if (size > MaxEncodedBytes) throw new ArgumentException($"the note encodes to {size} bytes; at most {MaxEncodedBytes} are allowed");
        var bytes = new byte[size];
        bytes[0] = EncodingVersion;
        int offset = 1 + LengthPrefixedUtf8.Write(bytes.AsSpan(1), description);
        LengthPrefixedUtf8.Write(bytes.AsSpan(offset), webhookUrl);
        return bytes;
    }

    /// <summary>
    /// Decodes an attachment; null when it is longer than <see cref="MaxEncodedBytes"/>, of another version, cut short,
    /// not UTF-8, or followed by anything. Says nothing of <see cref="IsValid"/>.
    /// </summary>
    public static PaymentNote? TryDecode(ReadOnlySpan<byte> bytes)
    {
        if (bytes.IsEmpty || bytes.Length > MaxEncodedBytes || bytes[0] != EncodingVersion) return null;
        bytes = bytes[1..];
        return LengthPrefixedUtf8.TryRead(ref bytes, out string description) && LengthPrefixedUtf8.TryRead(ref bytes, out string webhookUrl)
               && bytes.IsEmpty
            ? new PaymentNote(NullIfEmpty(description), NullIfEmpty(webhookUrl))
            : null;
    }

    private static string? NullIfEmpty(string value) => value.Length == 0 ? null : value;
}
