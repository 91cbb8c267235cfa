using C = RamPay.Contracts;
using System.Globalization;
using RamPay.Core;
using RamPay.Server.Auth;

namespace RamPay.Server.Http;

// The API additions the web app needs (issue 15, docs/api.md "For the web app"): a payee lookup by email, history
// filters, and the operators' searches. Public endpoints like the others: the app can do only what the API allows.

/// <summary>OpenAPI shapes of these endpoints (the handlers write JSON directly, as the rest of the API does).</summary>
#pragma warning disable CA1812
public sealed record PayeeResponse(long AccountId, string Name);
public sealed record AdminUserResponse(long UserId, string Email, string Name, string Role, long WalletAccountId, string Currency, bool Frozen, string CreatedAt);
public sealed record AdminUserPage(AdminUserResponse[] Data, bool HasMore, long? NextAfter);
#pragma warning restore CA1812

/// <summary>Maps the web app's endpoints onto the route groups of <see cref="Routes.Map"/> (one line there).</summary>
public static class WebRoutes
{
    public static void Map(RouteGroupBuilder user, RouteGroupBuilder admin, Platform platform)
    {
        var api = new WebApi(platform);
        user.MapGet("/users/lookup", (Func<HttpContext, Task>)(c => api.Lookup(c)))
            .WithTags("users").WithSummary("A payee by email: their wallet's account id and display name only (query: email; rate-limited per caller)")
            .Produces<PayeeResponse>().Produces<C.ErrorEnvelope>(400).Produces<C.ErrorEnvelope>(404).Produces<C.ErrorEnvelope>(429);
        var searching = new ForbiddenMessage("Only an admin may search users and payments.");
        admin.MapGet("/admin/users", (Func<HttpContext, Task>)(c => api.SearchUsers(c))).WithMetadata(searching)
            .WithTags("admin").WithSummary("Users whose email contains the query, by user id (admin; query: email, limit, after)")
            .Produces<AdminUserPage>().Produces<C.ErrorEnvelope>(400).Produces<C.ErrorEnvelope>(403);
        admin.MapGet("/admin/payments", (Func<HttpContext, Task>)(c => api.SearchPayments(c))).WithMetadata(searching)
            .WithTags("admin").WithSummary("Payments, newest first, by status, kind, account and time (admin; query: status, kind, account, from, to, limit, after)")
            .Produces<C.PaymentPage>().Produces<C.ErrorEnvelope>(400).Produces<C.ErrorEnvelope>(403).Produces<C.ErrorEnvelope>(404);
    }
}

/// <summary>The handlers of <see cref="WebRoutes"/>.</summary>
public sealed class WebApi(Platform platform)
{
    /// <summary>
    /// Lookups per caller: a bucket of <c>RamPay:Web:LookupBurst</c> refilled at <c>RamPay:Web:LookupsPerMinute</c>, so
    /// that a user cannot walk a list of emails to learn who has an account (the general per-user limit is far higher).
    /// </summary>
    private readonly MinuteBucket _lookupBucket = new(platform.Options.Web.LookupsPerMinute, platform.Options.Web.LookupBurst);

    private Hosting.EngineHost Engine => platform.Engine;

    // ---- GET /v1/users/lookup?email= ----------------------------------------------------------------------------

    public async Task Lookup(HttpContext ctx)
    {
        var caller = ctx.VerifiedCaller().Caller;
        string? raw = ctx.Request.Query["email"];
        if (string.IsNullOrWhiteSpace(raw)) throw ApiError.InvalidRequest("The query parameter 'email' is required.", "email");
        string email = UserProfile.NormalizeEmail(raw.Trim());
        int at = email.IndexOf('@');
        if (email.Length is < 3 or > UserProfile.MaxEmailLength || at <= 0 || at == email.Length - 1)
            throw ApiError.BadRequest("invalid_email", $"'email' must be an email address of 3..{UserProfile.MaxEmailLength} characters.", "email");
        // Charged before the lookup, found or not: the answer to a miss costs as much as a hit.
        if (!_lookupBucket.TryTake(caller.UserId, out int retryAfter))
            throw new ApiError(429, "rate_limited", $"Too many payee lookups: at most {platform.Options.Web.LookupsPerMinute} a minute. Try again later.") { RetryAfterSeconds = retryAfter };
        var found = await Engine.QueryAsync(l => l.FindUserByEmail(email) is { } u ? (u.WalletAccountId, u.Name) : default);
        if (found.Name is null) throw new ApiError(404, "user_not_found", "No user has this email.");
        await JsonOut.Write(ctx, 200, w =>
        {
            w.WriteStartObject();
            w.WriteNumber("account_id", found.WalletAccountId);
            w.WriteString("name", found.Name);
            w.WriteEndObject();
        });
    }

    // ---- GET /v1/admin/users?email= -----------------------------------------------------------------------------

    /// <summary>The most users one search reads on the writer thread; past it the page ends early with has_more.</summary>
    public const int MaxUsersScanned = 50_000;

    public async Task SearchUsers(HttpContext ctx)
    {
        string query = UserProfile.NormalizeEmail((string?)ctx.Request.Query["email"] ?? "").Trim();
        if (query.Length > UserProfile.MaxEmailLength) throw ApiError.BadRequest("invalid_email", $"'email' holds at most {UserProfile.MaxEmailLength} characters.", "email");
        int limit = (int)Query.Long(ctx, "limit", 20, 1, 100);
        long after = Query.Long(ctx, "after", 0, 0, long.MaxValue);
        var page = await Engine.QueryAsync(l =>
        {
            var items = new List<(User User, Account Wallet)>();
            long id = after, scanned = 0;
            bool more = false;
            while (id < l.UserCount)
            {
                if (items.Count == limit || scanned == MaxUsersScanned) { more = true; break; }
                id++;
                scanned++;
                if (l.GetUser(id) is not { } u || !u.Email.Contains(query, StringComparison.Ordinal)) continue;
                items.Add((u, l.GetAccount(u.WalletAccountId)));
            }
            return (Items: items, More: more, Next: id);
        });
        await JsonOut.Write(ctx, 200, w =>
        {
            w.WriteStartObject();
            w.WriteStartArray("data");
            foreach (var (u, wallet) in page.Items)
            {
                w.WriteStartObject();
                w.WriteNumber("user_id", u.Id);
                w.WriteString("email", u.Email);
                w.WriteString("name", u.Name);
                w.WriteString("role", u.Role == UserRole.Admin ? "admin" : "user");
                w.WriteNumber("wallet_account_id", u.WalletAccountId);
                w.WriteString("currency", wallet.Currency.ToString());
                w.WriteBoolean("frozen", wallet.Frozen);
                w.WriteString("created_at", JsonOut.Time(u.CreatedAtMs));
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteBoolean("has_more", page.More);
            if (page.More) w.WriteNumber("next_after", page.Next); else w.WriteNull("next_after");
            w.WriteEndObject();
        });
    }

    // ---- GET /v1/admin/payments?status=&account= ----------------------------------------------------------------

    public async Task SearchPayments(HttpContext ctx)
    {
        var filter = HistoryFilter.Parse(ctx);
        long account = Query.Long(ctx, "account", 0, 1, long.MaxValue);
        int limit = (int)Query.Long(ctx, "limit", 20, 1, 100);
        long after = Query.Long(ctx, "after", 0, 0, long.MaxValue);
        var page = await Engine.QueryAsync(l =>
        {
            if (account != 0 && !l.AccountExists(account)) return (Found: false, Page: default(HistoryPage));
            return (Found: true, Page: account != 0 ? filter.Page(l, account, after, limit) : filter.PageAll(l, after, limit));
        });
        if (!page.Found) throw ApiError.From(ResultCode.AccountNotFound);
        await HistoryFilter.Write(ctx, page.Page);
    }
}

/// <summary>A page of payments and where the next one starts (<c>next_after</c>: the last payment id looked at).</summary>
public readonly record struct HistoryPage(PaymentView[] Items, bool More, long NextAfter);

/// <summary>
/// The filters of an account's history (<c>GET /v1/accounts/{id}/payments</c>) and of the operators' payment search:
/// <c>status</c> and <c>kind</c> (comma-separated names), <c>from</c> and <c>to</c> (RFC 3339 times; created at or after
/// <c>from</c>, before <c>to</c>). A page reads at most <see cref="MaxScanned"/> payments on the writer thread: when
/// the filters skip that many, the page ends early (possibly empty) with <c>has_more</c> and a <c>next_after</c> to go
/// on from, so no request holds the writer long.
/// </summary>
public sealed class HistoryFilter
{
    public const int MaxScanned = 10_000;

    private uint _statuses; // bit per PaymentStatus; 0 = any
    private uint _kinds;    // bit per PaymentKind; 0 = any
    private long _fromMs = long.MinValue;
    private long _toMs = long.MaxValue;

    public bool IsEmpty => _statuses == 0 && _kinds == 0 && _fromMs == long.MinValue && _toMs == long.MaxValue;

    private static readonly PaymentStatus[] Statuses = Enum.GetValues<PaymentStatus>().Where(s => TryName(() => PaymentNames.Status(s))).ToArray();
    private static readonly PaymentKind[] Kinds = Enum.GetValues<PaymentKind>().Where(k => TryName(() => PaymentNames.Kind(k))).ToArray();

    private static bool TryName(Func<string> name)
    {
        try { return name().Length > 0; }
        catch (ArgumentOutOfRangeException) { return false; }
    }

    /// <summary>Reads the filters from the query string; a bad one is <c>400 invalid_request</c> naming it.</summary>
    public static HistoryFilter Parse(HttpContext ctx)
    {
        var f = new HistoryFilter();
        var q = ctx.Request.Query;
        if ((string?)q["status"] is { Length: > 0 } status)
            foreach (string name in status.Split(',', StringSplitOptions.TrimEntries))
            {
                int i = Array.FindIndex(Statuses, s => PaymentNames.Status(s) == name);
                if (i < 0) throw ApiError.InvalidRequest($"The query parameter 'status' takes {string.Join(", ", Statuses.Select(PaymentNames.Status))} (comma-separated); not '{name}'.", "status");
                f._statuses |= 1u << (int)Statuses[i];
            }
        if ((string?)q["kind"] is { Length: > 0 } kind)
            foreach (string name in kind.Split(',', StringSplitOptions.TrimEntries))
            {
                int i = Array.FindIndex(Kinds, k => PaymentNames.Kind(k) == name);
                if (i < 0) throw ApiError.InvalidRequest($"The query parameter 'kind' takes {string.Join(", ", Kinds.Select(PaymentNames.Kind))} (comma-separated); not '{name}'.", "kind");
                f._kinds |= 1u << (int)Kinds[i];
            }
        if ((string?)q["from"] is { } from) f._fromMs = Time(from, "from");
        if ((string?)q["to"] is { } to) f._toMs = Time(to, "to");
        if (f._fromMs > f._toMs) throw ApiError.InvalidRequest("The query parameter 'from' is after 'to'.");
        return f;
    }

    private static long Time(string raw, string name)
    {
        if (!DateTimeOffset.TryParse(raw, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t) || raw.Length < 10)
            throw ApiError.InvalidRequest($"The query parameter '{name}' must be an RFC 3339 time such as 2026-12-05T10:00:00Z.", name);
        return t.ToUnixTimeMilliseconds();
    }

    public bool Matches(in Payment p) =>
        (_statuses == 0 || (_statuses & (1u << (int)p.Status)) != 0)
        && (_kinds == 0 || (_kinds & (1u << (int)p.Kind)) != 0)
        && p.CreatedAtMs >= _fromMs && p.CreatedAtMs < _toMs;

    /// <summary>
    /// One page of an account's history, newest first, older than <paramref name="after"/> (0 = from the newest). An
    /// account's history is a chain from its newest payment back (Ledger.History); times never go back along it, so
    /// the walk stops at the first payment older than <c>from</c>.
    /// </summary>
    public HistoryPage Page(IReadOnlyLedger l, long account, long after, int limit)
    {
        Span<long> first = stackalloc long[1];
        long id = l.History(account, after, first) == 1 ? first[0] : 0;
        var items = new List<PaymentView>(Math.Min(limit, 16));
        long last = 0;
        for (int scanned = 0; id != 0; scanned++)
        {
            if (items.Count == limit || scanned == MaxScanned) return new HistoryPage([.. items], true, last);
            var p = l.GetPayment(id);
            if (p.CreatedAtMs < _fromMs) break;
            if (Matches(p)) items.Add(PaymentView.Of(l, id));
            last = id;
            id = p.FromAccount == account ? p.PrevForFrom : p.PrevForTo;
        }
        return new HistoryPage([.. items], false, 0);
    }

    /// <summary>One page of every payment, newest (highest id) first, older than <paramref name="after"/>.</summary>
    public HistoryPage PageAll(IReadOnlyLedger l, long after, int limit)
    {
        long id = after == 0 || after > l.PaymentCount ? l.PaymentCount : after - 1;
        var items = new List<PaymentView>(Math.Min(limit, 16));
        long last = 0;
        for (int scanned = 0; id >= 1; scanned++, id--)
        {
            if (items.Count == limit || scanned == MaxScanned) return new HistoryPage([.. items], true, last);
            last = id;
            if (!l.PaymentExists(id)) continue;
            var p = l.GetPayment(id);
            if (p.CreatedAtMs < _fromMs) break;
            if (Matches(p)) items.Add(PaymentView.Of(l, id));
        }
        return new HistoryPage([.. items], false, 0);
    }

    /// <summary>The page in the shape of docs/api.md: <c>{"data": [...], "has_more", "next_after"}</c>.</summary>
    public static Task Write(HttpContext ctx, HistoryPage page) => JsonOut.Write(ctx, 200, w =>
    {
        w.WriteStartObject();
        w.WriteStartArray("data");
        foreach (var p in page.Items) JsonOut.Payment(w, p);
        w.WriteEndArray();
        w.WriteBoolean("has_more", page.More);
        if (page.More) w.WriteNumber("next_after", page.NextAfter); else w.WriteNull("next_after");
        w.WriteEndObject();
    });
}

/// <summary>Query-string integers, checked: a bad one is <c>400 invalid_request</c> naming it.</summary>
internal static class Query
{
    public static long Long(HttpContext ctx, string name, long fallback, long min, long max)
    {
        string? raw = ctx.Request.Query[name];
        if (raw is null) return fallback;
        if (!long.TryParse(raw, NumberStyles.None, CultureInfo.InvariantCulture, out long v) || v < min || v > max)
            throw ApiError.InvalidRequest($"The query parameter '{name}' must be an integer from {min} to {max}.", name);
        return v;
    }
}

/// <summary>A token bucket per caller refilled per minute (the lookups' limit), bounded in callers like the HTTP limiter.</summary>
internal sealed class MinuteBucket(int perMinute, int burst, TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<long, State> _buckets = new();
    private const int MaxCallers = 100_000;

    private sealed class State { public double Tokens; public long Last; }

    public bool TryTake(long caller, out int retryAfterSeconds)
    {
        retryAfterSeconds = 0;
        if (perMinute == 0) return true;
        long now = _time.GetTimestamp();
        if (_buckets.Count >= MaxCallers) _buckets.Clear(); // forgetting buckets only ever lets more through, briefly
        var s = _buckets.GetOrAdd(caller, _ => new State { Tokens = burst, Last = now });
        lock (s)
        {
            double minutes = (now - s.Last) / (double)_time.TimestampFrequency / 60.0;
            s.Last = now;
            s.Tokens = Math.Min(burst, s.Tokens + minutes * perMinute);
            if (s.Tokens >= 1) { s.Tokens -= 1; return true; }
            retryAfterSeconds = Math.Max(1, (int)Math.Ceiling((1 - s.Tokens) * 60.0 / perMinute));
            return false;
        }
    }
}
