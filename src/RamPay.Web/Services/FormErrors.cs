using RamPay.Contracts;
namespace RamPay.Web.Services;

/// <summary>A form's errors: one per field (shown next to it) and one for the form (shown above the button).</summary>
public sealed class FormErrors
{
    private readonly Dictionary<string, string> _fields = new(StringComparer.Ordinal);

    public string? General { get; private set; }
    /// <summary>The code of the last API error (for tests and for pages that react to one, such as fraud_suspected).</summary>
    public string? Code { get; private set; }

    public bool Has(string field) => _fields.ContainsKey(field);
    public string Of(string field) => _fields.TryGetValue(field, out var m) ? m : "";
    public bool Any => _fields.Count > 0 || General is not null;

    public void Clear()
    {
        _fields.Clear();
        General = null;
        Code = null;
    }

    public void Set(string field, string message) => _fields[field] = message;

    /// <summary>Puts an API error next to the field it is about, or on the form when it is about none of <paramref name="fields"/>.</summary>
    public void Show<T>(ApiResult<T> result, params string[] fields)
    {
        var error = result.Error ?? throw new InvalidOperationException("Show is for a refused request");
        Code = error.Code;
        // The server's own field name when it gives one (notifications.sms -> sms), else the code's field.
        string field = result.ErrorField is { Length: > 0 } named ? named[(named.LastIndexOf('.') + 1)..] : ErrorFields.FieldOf(error.Code);
        if (field.Length > 0 && fields.Contains(field)) _fields[field] = error.Message;
        else General = error.Message;
    }
}
