using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace RamPay.Client;

/// <summary>
/// The HTTP API of docs/api.md, one method per endpoint. Answers outside 2xx throw <see cref="RamPayApiException"/>.
/// <para>
/// Keys: every money-moving call has an overload taking an idempotency key (use it when you may retry: the same key
/// returns the first result instead of paying twice) and one that makes a fresh key (a retry of that call is a new
/// payment; the key it made is in <see cref="RamPayResponse{T}.IdempotencyKey"/>).
/// </para>
/// <para>
/// The token goes on each request, not on the <see cref="HttpClient"/>'s default headers, so many instances with
/// different users may share one <see cref="HttpClient"/> (and its connection pool). An instance is safe to use from
/// several threads as long as <see cref="AccessToken"/> is not changed meanwhile.
/// </para>
/// </summary>
public sealed partial class RamPayHttpClient : IDisposable
{
    public const string IdempotencyKeyHeader = "Idempotency-Key";
    public const string ReplayedHeader = "Idempotent-Replayed";

    private static readonly RamPayJsonContext Json = RamPayJsonContext.Default;
    private readonly HttpClient _http;
    private readonly bool _ownsHttpClient;
    private readonly Uri _baseAddress;

    /// <summary>Makes and owns an <see cref="HttpClient"/> for <paramref name="baseAddress"/> (e.g. <c>http://127.0.0.1:8080</c>).</summary>
    public RamPayHttpClient(Uri baseAddress) : this(new HttpClient(), baseAddress, ownsHttpClient: true) { }

    /// <summary>Uses <paramref name="http"/> with its <see cref="HttpClient.BaseAddress"/>.</summary>
    public RamPayHttpClient(HttpClient http, bool ownsHttpClient = false)
        : this(http, http?.BaseAddress ?? throw new ArgumentException("the HttpClient needs a BaseAddress", nameof(http)), ownsHttpClient) { }

    /// <summary>Uses <paramref name="http"/> (possibly shared by many instances) against <paramref name="baseAddress"/>.</summary>
    public RamPayHttpClient(HttpClient http, Uri baseAddress, bool ownsHttpClient = false)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(baseAddress);
        if (!baseAddress.IsAbsoluteUri) throw new ArgumentException("the base address must be absolute", nameof(baseAddress));
        _http = http;
        _ownsHttpClient = ownsHttpClient;
        // Relative paths resolve against the last '/': without it, a base of http://host/rampay would lose "rampay".
        string s = baseAddress.AbsoluteUri;
        _baseAddress = s.EndsWith('/') ? baseAddress : new Uri(s + "/");
    }

    public Uri BaseAddress => _baseAddress;

    /// <summary>The bearer token sent on every <c>/v1</c> call except sign-up and login; set by <see cref="LoginAsync"/>.</summary>
    public string? AccessToken { get; set; }

    /// <summary>A fresh, unique key (a GUID's 32 hex digits).</summary>
    public static string NewIdempotencyKey() => Guid.NewGuid().ToString("N");

    // ---- users and tokens ----

    /// <summary><c>POST /v1/users</c>: sign up (no token needed). A null currency takes the server's default.</summary>
    public async Task<User> RegisterAsync(string email, string password, string name, string? currency = null, CancellationToken ct = default) =>
        (await SendAsync(HttpMethod.Post, "v1/users", Body(new RegisterRequest(email, password, name, currency), Json.RegisterRequest),
            idempotencyKey: null, Json.User, ct).ConfigureAwait(false)).Value;

    /// <summary><c>POST /v1/auth/token</c>: logs in and keeps the token in <see cref="AccessToken"/> for later calls.</summary>
    public async Task<TokenResponse> LoginAsync(string email, string password, CancellationToken ct = default)
    {
        TokenResponse token = (await SendAsync(HttpMethod.Post, "v1/auth/token", Body(new LoginRequest(email, password), Json.LoginRequest),
            idempotencyKey: null, Json.TokenResponse, ct).ConfigureAwait(false)).Value;
        AccessToken = token.AccessToken;
        return token;
    }

    /// <summary><c>GET /v1/users/me</c>.</summary>
    public Task<UserProfileView> GetMeAsync(CancellationToken ct = default) => GetAsync("v1/users/me", Json.UserProfileView, ct);

    // ---- accounts ----

    /// <summary><c>GET /v1/accounts/{id}</c>: your own account (an admin may read any).</summary>
    public Task<Account> GetAccountAsync(long accountId, CancellationToken ct = default) =>
        GetAsync(Path("v1/accounts/", accountId), Json.Account, ct);

    /// <summary>
    /// <c>GET /v1/accounts/{id}/payments</c>: one page, newest first. Pass the previous page's
    /// <see cref="PaymentPage.NextAfter"/> as <paramref name="after"/> for the next one.
    /// </summary>
    public Task<PaymentPage> ListPaymentsAsync(long accountId, int? limit = null, long? after = null, CancellationToken ct = default)
    {
        string path = Path("v1/accounts/", accountId) + "/payments";
        var query = new List<string>(2);
        if (limit is { } l) query.Add("limit=" + l.ToString(CultureInfo.InvariantCulture));
        if (after is { } a) query.Add("after=" + a.ToString(CultureInfo.InvariantCulture));
        if (query.Count > 0) path += "?" + string.Join('&', query);
        return GetAsync(path, Json.PaymentPage, ct);
    }

    /// <summary>Every payment of the account, newest first, fetching pages of <paramref name="pageSize"/> as it goes.</summary>
    public async IAsyncEnumerable<Payment> ListAllPaymentsAsync(long accountId, int pageSize = 100, [EnumeratorCancellation] CancellationToken ct = default)
    {
        long? after = null;
        while (true)
        {
            PaymentPage page = await ListPaymentsAsync(accountId, pageSize, after, ct).ConfigureAwait(false);
            foreach (Payment p in page.Data) yield return p;
            if (!page.HasMore || page.NextAfter is null) yield break;
            after = page.NextAfter;
        }
    }

    /// <summary><c>POST /v1/accounts/{id}/deposits</c>: from the platform's funding account into your account.</summary>
    public Task<RamPayResponse<Payment>> DepositAsync(long accountId, long amount, string currency, string idempotencyKey, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Post, Path("v1/accounts/", accountId) + "/deposits", Body(new DepositRequest(amount, currency), Json.DepositRequest),
            RequireKey(idempotencyKey), Json.Payment, ct);

    /// <inheritdoc cref="DepositAsync(long, long, string, string, CancellationToken)"/>
    /// <remarks>Makes a fresh key: calling this again deposits again.</remarks>
    public Task<RamPayResponse<Payment>> DepositAsync(long accountId, long amount, string currency, CancellationToken ct = default) =>
        DepositAsync(accountId, amount, currency, NewIdempotencyKey(), ct);

    // ---- payments ----

    /// <summary><c>POST /v1/payments</c>: a transfer, or an authorization when <see cref="PaymentRequest.Capture"/> is false.</summary>
    public Task<RamPayResponse<Payment>> CreatePaymentAsync(PaymentRequest payment, string idempotencyKey, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Post, "v1/payments", Body(payment, Json.PaymentRequest), RequireKey(idempotencyKey), Json.Payment, ct);

    /// <inheritdoc cref="CreatePaymentAsync(PaymentRequest, string, CancellationToken)"/>
    /// <remarks>Makes a fresh key: calling this again pays again.</remarks>
    public Task<RamPayResponse<Payment>> CreatePaymentAsync(PaymentRequest payment, CancellationToken ct = default) =>
        CreatePaymentAsync(payment, NewIdempotencyKey(), ct);

    /// <summary>
    /// <c>POST /v1/payments/batch</c>: the server derives item <c>i</c>'s key from the request's key and <c>i</c>, so
    /// retrying with the same key replays every item. Each item succeeds or fails on its own (see <see cref="BatchItemResult"/>).
    /// </summary>
    public Task<RamPayResponse<BatchResponse>> CreatePaymentsAsync(IReadOnlyList<PaymentRequest> payments, string idempotencyKey, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Post, "v1/payments/batch", Body(new BatchRequest(payments), Json.BatchRequest), RequireKey(idempotencyKey), Json.BatchResponse, ct);

    /// <inheritdoc cref="CreatePaymentsAsync(IReadOnlyList{PaymentRequest}, string, CancellationToken)"/>
    /// <remarks>Makes a fresh key: calling this again pays every item again.</remarks>
    public Task<RamPayResponse<BatchResponse>> CreatePaymentsAsync(IReadOnlyList<PaymentRequest> payments, CancellationToken ct = default) =>
        CreatePaymentsAsync(payments, NewIdempotencyKey(), ct);

    /// <summary><c>POST /v1/payments/{id}/capture</c>; a null amount captures the whole authorization.</summary>
    public Task<RamPayResponse<Payment>> CaptureAsync(long paymentId, long? amount, string idempotencyKey, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Post, Path("v1/payments/", paymentId) + "/capture", Body(new CaptureRequest(amount), Json.CaptureRequest),
            RequireKey(idempotencyKey), Json.Payment, ct);

    /// <inheritdoc cref="CaptureAsync(long, long?, string, CancellationToken)"/>
    /// <remarks>Makes a fresh key.</remarks>
    public Task<RamPayResponse<Payment>> CaptureAsync(long paymentId, long? amount = null, CancellationToken ct = default) =>
        CaptureAsync(paymentId, amount, NewIdempotencyKey(), ct);

    /// <summary><c>POST /v1/payments/{id}/void</c>: the held funds return to the payer.</summary>
    public Task<RamPayResponse<Payment>> VoidAsync(long paymentId, string idempotencyKey, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Post, Path("v1/payments/", paymentId) + "/void", EmptyObject(), RequireKey(idempotencyKey), Json.Payment, ct);

    /// <inheritdoc cref="VoidAsync(long, string, CancellationToken)"/>
    /// <remarks>Makes a fresh key.</remarks>
    public Task<RamPayResponse<Payment>> VoidAsync(long paymentId, CancellationToken ct = default) =>
        VoidAsync(paymentId, NewIdempotencyKey(), ct);

    /// <summary>
    /// <c>POST /v1/payments/{id}/refunds</c>: only the payee may refund. A null currency means the payment's.
    /// Returns the refund (a payment of kind <c>refund</c>).
    /// </summary>
    public Task<RamPayResponse<Payment>> RefundAsync(long paymentId, long amount, string idempotencyKey, string? currency = null, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Post, Path("v1/payments/", paymentId) + "/refunds", Body(new RefundRequest(amount, currency), Json.RefundRequest),
            RequireKey(idempotencyKey), Json.Payment, ct);

    /// <inheritdoc cref="RefundAsync(long, long, string, string?, CancellationToken)"/>
    /// <remarks>Makes a fresh key: calling this again refunds again.</remarks>
    public Task<RamPayResponse<Payment>> RefundAsync(long paymentId, long amount, CancellationToken ct = default) =>
        RefundAsync(paymentId, amount, NewIdempotencyKey(), currency: null, ct);

    /// <summary><c>GET /v1/payments/{id}</c>: a payment you paid or received (an admin may read any).</summary>
    public Task<Payment> GetPaymentAsync(long paymentId, CancellationToken ct = default) =>
        GetAsync(Path("v1/payments/", paymentId), Json.Payment, ct);

    // ---- administration ----

    /// <summary><c>POST /v1/admin/accounts/{id}/freeze</c> (admin). Without a key the server makes one up.</summary>
    public Task<RamPayResponse<Account>> FreezeAccountAsync(long accountId, string? idempotencyKey = null, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Post, Path("v1/admin/accounts/", accountId) + "/freeze", content: null, idempotencyKey, Json.Account, ct);

    /// <summary><c>POST /v1/admin/accounts/{id}/unfreeze</c> (admin). Without a key the server makes one up.</summary>
    public Task<RamPayResponse<Account>> UnfreezeAccountAsync(long accountId, string? idempotencyKey = null, CancellationToken ct = default) =>
        SendAsync(HttpMethod.Post, Path("v1/admin/accounts/", accountId) + "/unfreeze", content: null, idempotencyKey, Json.Account, ct);

    // ---- health ----

    /// <summary><c>GET /health/live</c>.</summary>
    public Task<HealthStatus> GetLiveAsync(CancellationToken ct = default) => GetHealthAsync("health/live", ct);

    /// <summary>
    /// <c>GET /health/ready</c>. A 503 that carries a health body (<c>starting</c>, <c>failed</c>) is returned, not
    /// thrown: "not ready yet" is the answer a caller polling this wants to read. Check <see cref="HealthStatus.IsReady"/>.
    /// </summary>
    public Task<HealthStatus> GetReadyAsync(CancellationToken ct = default) => GetHealthAsync("health/ready", ct);

    public void Dispose()
    {
        if (_ownsHttpClient) _http.Dispose();
    }

    // ---- plumbing ----

    private async Task<T> GetAsync<T>(string path, JsonTypeInfo<T> typeInfo, CancellationToken ct) =>
        (await SendAsync(HttpMethod.Get, path, content: null, idempotencyKey: null, typeInfo, ct).ConfigureAwait(false)).Value;

    private async Task<RamPayResponse<T>> SendAsync<T>(HttpMethod method, string path, HttpContent? content, string? idempotencyKey,
        JsonTypeInfo<T> typeInfo, CancellationToken ct)
    {
        using HttpRequestMessage request = NewRequest(method, path, content, idempotencyKey);
        using HttpResponseMessage response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
        bool replayed = IsReplayed(response);
        if (!response.IsSuccessStatusCode) throw await ToExceptionAsync(response, replayed, ct).ConfigureAwait(false);
        T value = await ReadBodyAsync(response, typeInfo, ct).ConfigureAwait(false);
        return new RamPayResponse<T>(value, response.StatusCode, replayed, idempotencyKey);
    }

    private async Task<HealthStatus> GetHealthAsync(string path, CancellationToken ct)
    {
        using HttpRequestMessage request = NewRequest(HttpMethod.Get, path, content: null, idempotencyKey: null);
        using HttpResponseMessage response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
        if (response.IsSuccessStatusCode) return await ReadBodyAsync(response, Json.HealthStatus, ct).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.ServiceUnavailable)
        {
            // Buffered so that, if it is not a health body, the error path can still read it.
            await response.Content.LoadIntoBufferAsync(ct).ConfigureAwait(false);
            HealthStatus? health = TryDeserialize(await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false), Json.HealthStatus);
            if (health is { Status: not null }) return health;
        }
        throw await ToExceptionAsync(response, IsReplayed(response), ct).ConfigureAwait(false);
    }

    private HttpRequestMessage NewRequest(HttpMethod method, string path, HttpContent? content, string? idempotencyKey)
    {
        var request = new HttpRequestMessage(method, new Uri(_baseAddress, path)) { Content = content };
        // Sent whenever known; the server ignores it on sign-up and login. Without one, the server's 401 says why.
        if (AccessToken is { } token) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        if (idempotencyKey is not null) request.Headers.TryAddWithoutValidation(IdempotencyKeyHeader, idempotencyKey);
        return request;
    }

    private static async Task<T> ReadBodyAsync<T>(HttpResponseMessage response, JsonTypeInfo<T> typeInfo, CancellationToken ct)
    {
        T? value;
        try
        {
            value = await response.Content.ReadFromJsonAsync(typeInfo, ct).ConfigureAwait(false);
        }
        catch (JsonException e)
        {
            throw new RamPayApiException(response.StatusCode, "invalid_response", "the server's answer is not the expected JSON: " + e.Message);
        }
        return value ?? throw new RamPayApiException(response.StatusCode, "invalid_response", "the server's answer has no body");
    }

    private static bool IsReplayed(HttpResponseMessage response) =>
        response.Headers.TryGetValues(ReplayedHeader, out IEnumerable<string>? values)
        && values.Any(v => string.Equals(v.Trim(), "true", StringComparison.OrdinalIgnoreCase));

    private static async Task<RamPayApiException> ToExceptionAsync(HttpResponseMessage response, bool replayed, CancellationToken ct)
    {
        string body = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
        ApiError? error = TryDeserialize(body, Json.ErrorEnvelope)?.Error;
        TimeSpan? retryAfter = response.Headers.RetryAfter switch
        {
            { Delta: { } delta } => delta,
            { Date: { } date } => date - DateTimeOffset.UtcNow,
            _ => null,
        };
        int status = (int)response.StatusCode;
        string code = error?.Code ?? "http_" + status.ToString(CultureInfo.InvariantCulture);
        // Not the API's error shape: keep the start of whatever came back, it is the only clue.
        string message = error?.Message ?? (body.Length == 0 ? response.ReasonPhrase ?? "" : body[..Math.Min(body.Length, 500)]);
        return new RamPayApiException(response.StatusCode, code, message, replayed, retryAfter);
    }

    private static T? TryDeserialize<T>(string json, JsonTypeInfo<T> typeInfo) where T : class
    {
        if (json.Length == 0) return null;
        try
        {
            return JsonSerializer.Deserialize(json, typeInfo);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>
    /// Serialized up front, not streamed (as JsonContent does): a streamed body goes out chunked, in more than one
    /// write, and on a keep-alive connection that measurably stalls small requests (Nagle and delayed ACKs). With
    /// the bytes in hand the request carries a Content-Length and leaves in one piece.
    /// </summary>
    private static ByteArrayContent Body<T>(T value, JsonTypeInfo<T> typeInfo) => JsonBytes(JsonSerializer.SerializeToUtf8Bytes(value, typeInfo));

    private static ByteArrayContent EmptyObject() => JsonBytes("{}"u8.ToArray());

    private static ByteArrayContent JsonBytes(byte[] utf8)
    {
        var content = new ByteArrayContent(utf8);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json", "utf-8");
        return content;
    }

    private static string RequireKey(string idempotencyKey)
    {
        ArgumentException.ThrowIfNullOrEmpty(idempotencyKey);
        return idempotencyKey;
    }

    private static string Path(string prefix, long id) => prefix + id.ToString(CultureInfo.InvariantCulture);
}
