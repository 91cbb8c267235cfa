namespace RamPay.Server.Http;

/// <summary>The optional description and webhook URL of a payment request, journaled with the payment as its attachment.</summary>
public static class PaymentNotes
{
    public static byte[]? Parse(JsonBody.Fields f)
    {
        string? description = f.OptionalString("description");
        string? webhook = f.OptionalString("webhook_url");
        if (description is null && webhook is null) return null;
        throw ApiError.InvalidRequest("description and webhook_url are not stored yet"); // replaced when PaymentNote lands in Core
    }
}
