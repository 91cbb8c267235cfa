using RamPay.Core;

namespace RamPay.Server.Http;

/// <summary>The optional description and webhook URL of a payment request, journaled with the payment as its attachment.</summary>
public static class PaymentNotes
{
    /// <summary>The attachment for the request's note, or null when it has none; a note the ledger would refuse is 400 here.</summary>
    public static byte[]? Parse(JsonBody.Fields f)
    {
        string? description = f.OptionalString("description");
        string? webhook = f.OptionalString("webhook_url");
        // An empty string means "none", as an absent field does.
        var note = new PaymentNote(string.IsNullOrEmpty(description) ? null : description, string.IsNullOrEmpty(webhook) ? null : webhook);
        if (note.IsEmpty) return null;
        if (!note.IsValid)
            throw ApiError.BadRequest("invalid_payment_note",
                $"'description' must be at most {PaymentNote.MaxDescriptionLength} characters with no control characters, and 'webhook_url' an absolute http or https URL of printable ASCII, at most {PaymentNote.MaxWebhookUrlLength} characters.",
                // The one that is wrong (the description when both are).
                f.Prefix + (new PaymentNote(note.Description, null).IsValid ? "webhook_url" : "description"));
        return note.Encode();
    }
}
