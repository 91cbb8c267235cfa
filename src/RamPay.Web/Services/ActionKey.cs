using RamPay.Contracts;
namespace RamPay.Web.Services;

/// <summary>
/// The Idempotency-Key of one user action. A form asks for the key of what it is about to send: the same request
/// (a double click, the button pressed again after no answer came) gets the same key, so the server applies it once
/// and answers the first result again; a different request, or any request after a definite answer, gets a new one.
/// </summary>
public sealed class ActionKey
{
    private string? _key;
    private string? _request;

    /// <summary>The key for this request (its method, path and body as one string).</summary>
    public string For(string request)
    {
        if (_key is null || _request != request)
        {
            _key = "web-" + Guid.NewGuid().ToString("N");
            _request = request;
        }
        return _key;
    }

    /// <summary>After a definite answer (done, or refused): the next action is a new one. Not after no answer.</summary>
    public void Settle<T>(ApiResult<T> result)
    {
        if (!result.Inconclusive) { _key = null; _request = null; }
    }

    public string? Current => _key;
}

/// <summary>Which form field an API error is about, so it is shown next to that field (docs/api.md's codes).</summary>
public static class ErrorFields
{
    public static string FieldOf(string code) => code switch
    {
        "invalid_amount" or "insufficient_funds" or "amount_exceeds_authorized" or "amount_exceeds_captured" or "deposit_limit_exceeded" or "overflow" => "amount",
        "invalid_email" or "email_taken" or "user_not_found" => "email",
        "invalid_password" or "invalid_credentials" => "password",
        "invalid_name" => "name",
        "invalid_currency" or "currency_mismatch" => "currency",
        "account_not_found" or "same_account" or "account_frozen" => "payee",
        "invalid_payment_note" => "description",
        "invalid_hold_timeout" => "hold",
        "invalid_url" => "url",
        "invalid_enabled_events" => "events",
        "invalid_description" => "description",
        "invalid_reward_rule" => "rule",
        "invalid_phone" => "phone",
        "phone_not_verified" => "sms",
        "invalid_code" => "code",
        _ => "",
    };

    /// <summary>The message to show for a code: the server's message, which says what is wrong in words.</summary>
    public static string Message(ApiError error) => error.Message;
}
