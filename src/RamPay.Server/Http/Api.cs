using System.Text.Json;
using RamPay.Core;
using RamPay.Server.Auth;
using RamPay.Server.Ingress;

namespace RamPay.Server.Http;

/// <summary>
/// The HTTP handlers of docs/api.md. Authentication, roles and rate limits are checked before a handler runs
/// (the bearer scheme, the route groups' policies, the rate limiter: AuthSetup). Each handler parses its input (a
/// refusal here changes nothing and is not journaled) into commands, which the ingress gateway (Ingress/IngressGateway.cs,
/// shared with TCP) makes the caller's, checks and submits; the handler writes the answer. Writes are answered only once
/// durable; reads go through the ring too, so they never show what a crash could undo.
/// </summary>
public sealed class Api(Platform platform)
{
    private const string ReplayedHeader = "Idempotent-Replayed";
    private readonly ServerOptions _options = platform.Options;
    private readonly IngressGateway _gateway = platform.Gateway;
    private Hosting.EngineHost Engine => platform.Engine;
    private int MaxBody => _options.Http.MaxRequestBodyBytes;

    // ---- callers, keys ----------------------------------------------------------------------------------------

    /// <summary>
    /// The caller of a /v1 request. The bearer scheme has validated the token and the route group's policy has admitted its
    /// role before the handler runs (AuthSetup, Routes); the rate limiter has taken a token from the caller's bucket.
    /// </summary>
    private static Caller CallerOf(HttpContext ctx) => ctx.VerifiedCaller().Caller;

    /// <summary>The request's Idempotency-Key, checked and hashed by the gateway's rule (<see cref="IdempotencyKeys"/>).</summary>
    private static IdempotencyKey RequireKey(HttpContext ctx)
    {
        const string field = IdempotencyKeys.Header;
        return IdempotencyKeys.TryParse(ctx.Request.Headers[field], out var key) switch
        {
            IdempotencyKeys.Problem.None => key,
            IdempotencyKeys.Problem.Missing => throw ApiError.BadRequest("idempotency_key_required", "This request moves money: send an Idempotency-Key header (1..255 characters) so that it can be retried safely.", field),
            IdempotencyKeys.Problem.TooLong => throw ApiError.BadRequest("invalid_idempotency_key", $"The Idempotency-Key header holds at most {IdempotencyKey.MaxKeyLength} characters.", field),
            _ => throw ApiError.BadRequest("invalid_idempotency_key", "The Idempotency-Key header must be ASCII: it holds a byte above 0x7F.", field),
        };
    }

    /// <summary>
    /// Makes a parsed command the caller's and applies the gateway's rules (the same as over TCP); a refusal is thrown as
    /// the error its result code is, naming the input (after <paramref name="fieldPrefix"/>, a batch item's).
    /// </summary>
    private Command Prepare(Command command, Caller caller, string fieldPrefix = "")
    {
        var refusal = _gateway.Prepare(ref command, caller);
        if (refusal.IsRefused)
            throw new ApiError(IngressGateway.HttpStatusOf(refusal.Code), ResultCodes.Name(refusal.Code), _gateway.MessageOf(refusal, command))
            {
                Field = ApiError.FieldOf(refusal.Input, fieldPrefix),
            };
        return command;
    }

    private static void MarkReplayed(HttpContext ctx, in CommandResult result)
    {
        if (result.Replayed) ctx.Response.Headers[ReplayedHeader] = "true";
    }

    private async Task<CommandResult> Execute(Command command, byte[]? attachment = null)
    {
        var result = await _gateway.ExecuteAsync(command, attachment);
        if (!result.IsOk) throw ApiError.From(result.Code);
        return result;
    }

    /// <summary>Executes a command that makes or acts on a payment and answers with that payment as it stands after it.</summary>
    private async Task ExecutePayment(HttpContext ctx, int status, Command command, byte[]? attachment = null)
    {
        var readBack = new PaymentReadBack();
        var result = await _gateway.ExecuteAsync(command, attachment, readBack);
        if (!result.IsOk) throw ApiError.From(result);
        var view = readBack.View ?? throw new InvalidOperationException($"command {command.Type} succeeded but payment {result.Id} cannot be read");
        MarkReplayed(ctx, result);
        await JsonOut.Write(ctx, status, w => JsonOut.Payment(w, view));
    }

    // ---- users ------------------------------------------------------------------------------------------------

    public async Task Register(HttpContext ctx)
    {
        UserService.Registration registration;
        using (var body = await JsonBody.ReadAsync(ctx, MaxBody))
        {
            var f = body.Body;
            string? currency = f.OptionalString("currency");
            registration = new UserService.Registration(f.String("email"), f.String("password"), f.String("name"), currency ?? _options.DefaultCurrency);
        }
        var (user, currencyOf) = await UserService.RegisterAsync(platform, registration, UserRole.User);
        await JsonOut.Write(ctx, 201, w => JsonOut.User(w, user, currencyOf));
    }

    public async Task Login(HttpContext ctx)
    {
        string email, password;
        using (var body = await JsonBody.ReadAsync(ctx, MaxBody))
        {
            email = body.Body.String("email");
            password = body.Body.String("password");
        }
        string normalized = UserProfile.NormalizeEmail(email);
        var user = await Engine.QueryAsync(l => l.FindUserByEmail(normalized));
        if (user is null)
        {
            // The same answer, after about the same work, for an unknown email as for a wrong password.
            PasswordHasher.Verify(password, UserService.DummyHash(_options.Auth.PasswordHashIterations));
            throw UserService.InvalidCredentials();
        }
        if (!PasswordHasher.Verify(password, user.PasswordHash)) throw UserService.InvalidCredentials();
        string refresh = platform.Tokens.Sessions.Create(user.Id, out long refreshExpires);
        await WriteTokens(ctx, user, refresh, refreshExpires);
    }

    private static string RoleOf(User user) => user.Role == UserRole.Admin ? TokenService.RoleAdmin : TokenService.RoleUser;

    /// <summary>The answer of log-in and refresh: a new access token and the session's current refresh token.</summary>
    private Task WriteTokens(HttpContext ctx, User user, string refreshToken, long refreshExpiresUnix)
    {
        var access = platform.Tokens.Issue(user.Id, RoleOf(user));
        long refreshExpiresIn = Math.Max(0, refreshExpiresUnix - DateTimeOffset.UtcNow.ToUnixTimeSeconds());
        return JsonOut.Write(ctx, 200, w =>
        {
            w.WriteStartObject();
            w.WriteString("access_token", access.Token);
            w.WriteString("token_type", "Bearer");
            w.WriteNumber("expires_in", platform.Tokens.LifetimeSeconds);
            w.WriteString("refresh_token", refreshToken);
            w.WriteNumber("refresh_expires_in", refreshExpiresIn);
            w.WriteEndObject();
        });
    }

    private static ApiError InvalidRefreshToken(string message) => new(401, "invalid_refresh_token", message);

    /// <summary>
    /// <c>{"refresh_token"}</c> → a new access token and a new refresh token (the one sent is used up). A refresh token
    /// that was already used revokes its whole session: the tokens were copied.
    /// </summary>
    public async Task Refresh(HttpContext ctx)
    {
        string presented;
        using (var body = await JsonBody.ReadAsync(ctx, MaxBody)) presented = body.Body.String("refresh_token");
        var outcome = platform.Tokens.Sessions.Rotate(presented, out long userId, out string next, out long expires);
        switch (outcome)
        {
            case SessionStore.RefreshResult.Reused:
                throw InvalidRefreshToken("This refresh token was already used, so it has been copied: the session is revoked. Log in again (POST /v1/auth/token).");
            case SessionStore.RefreshResult.Unknown:
                throw InvalidRefreshToken("The refresh token is unknown, expired or revoked: log in again (POST /v1/auth/token).");
        }
        // A service token's session (issue 13, rampay-worker): its subject is no user; it renews as a service token.
        if (userId == Rewards.RewardRoutes.ServiceUserId) { await Rewards.RewardRoutes.WriteServiceTokens(ctx, platform, next, expires); return; }
        var user = await Engine.QueryAsync(l => l.GetUser(userId));
        if (user is null) throw InvalidRefreshToken("The user of this refresh token no longer exists.");
        await WriteTokens(ctx, user, next, expires);
    }

    /// <summary>
    /// Revokes the caller's access token until it expires (HTTP and TCP refuse it from now on) and, when the body
    /// names one, the caller's refresh token and so its session. 204; idempotent.
    /// </summary>
    public async Task Logout(HttpContext ctx)
    {
        var token = ctx.VerifiedCaller();
        string? refresh;
        using (var body = await JsonBody.ReadAsync(ctx, MaxBody, emptyIsObject: true)) refresh = body.Body.OptionalString("refresh_token");
        if (!platform.Tokens.Sessions.Deny(token.Jti, token.ExpiresUnix))
            throw new ApiError(503, "too_many_revocations", "The server holds as many revoked tokens as it may (RamPay:Jwt:MaxRevokedTokens); try again once some have expired.");
        if (refresh is not null) platform.Tokens.Sessions.Revoke(refresh, token.Caller.UserId);
        ctx.Response.StatusCode = 204;
    }

    /// <summary>Admin: a new signing key signs from now on; the previous one verifies until the tokens it signed have expired.</summary>
    public async Task RotateSigningKey(HttpContext ctx)
    {
        using (await JsonBody.ReadAsync(ctx, MaxBody, emptyIsObject: true)) { }
        var keys = platform.Tokens.Keys;
        if (!keys.CanRotate)
            throw new ApiError(409, "signing_key_configured", "The signing key is set by RamPay:Jwt:SigningKey: change that setting to rotate it.");
        var (added, previous) = keys.Rotate();
        long until = previous.RetiredUnix + platform.Tokens.LifetimeSeconds;
        await JsonOut.Write(ctx, 200, w =>
        {
            w.WriteStartObject();
            w.WriteString("kid", added.Kid);
            w.WriteString("previous_kid", previous.Kid);
            w.WriteString("previous_verifies_until", JsonOut.Time(until * 1000));
            w.WriteStartArray("keys");
            foreach (var k in keys.Keys) w.WriteStringValue(k.Kid);
            w.WriteEndArray();
            w.WriteEndObject();
        });
    }

    public async Task Me(HttpContext ctx)
    {
        var caller = CallerOf(ctx);
        var found = await Engine.QueryAsync(l => l.GetUser(caller.UserId) is { } u ? (u, l.GetAccount(u.WalletAccountId).Currency) : default);
        if (found.u is null) throw new ApiError(404, "user_not_found", "The user of this token no longer exists.");
        // Phone and channel choices (docs/notifications.md): src/RamPay.Server/Notifications.
        await JsonOut.Write(ctx, 200, w => JsonOut.User(w, found.u, found.Currency, Notifications.NotificationRoutes.UserFields(ctx, found.u.Id)));
    }

    // ---- accounts ---------------------------------------------------------------------------------------------

    public async Task GetAccount(HttpContext ctx, long id)
    {
        var caller = CallerOf(ctx);
        var account = await ReadOwnAccount(caller, id);
        await JsonOut.Write(ctx, 200, w => JsonOut.Account(w, account));
    }

    private async Task<Account> ReadOwnAccount(Caller caller, long id)
    {
        var account = await Engine.QueryAsync(l => l.AccountExists(id) ? l.GetAccount(id) : (Account?)null);
        if (account is not { } a) throw ApiError.From(ResultCode.AccountNotFound);
        if (!caller.IsAdmin && a.Owner != caller.UserId) throw ApiError.Forbidden("The account belongs to another user.");
        return a;
    }

    public async Task ListPayments(HttpContext ctx, long id)
    {
        var caller = CallerOf(ctx);
        int limit = QueryInt(ctx, "limit", 20, 1, 100);
        long after = QueryInt(ctx, "after", 0, 0, long.MaxValue);
        var filter = HistoryFilter.Parse(ctx); // status, kind, from, to: Http/WebApi.cs (issue 15)
        var page = await Engine.QueryAsync(l =>
        {
            if (!l.AccountExists(id)) return (Owner: -1L, Page: default(HistoryPage));
            return (Owner: l.GetAccount(id).Owner, Page: filter.Page(l, id, after, limit));
        });
        if (page.Owner < 0) throw ApiError.From(ResultCode.AccountNotFound);
        if (!caller.IsAdmin && page.Owner != caller.UserId) throw ApiError.Forbidden("The account belongs to another user.");
        await HistoryFilter.Write(ctx, page.Page);
    }

    private static long QueryInt(HttpContext ctx, string name, long fallback, long min, long max)
    {
        string? raw = ctx.Request.Query[name];
        if (raw is null) return fallback;
        if (!long.TryParse(raw, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long v) || v < min || v > max)
            throw ApiError.InvalidRequest($"The query parameter '{name}' must be an integer from {min} to {max}.", name);
        return v;
    }

    private static int QueryInt(HttpContext ctx, string name, int fallback, int min, int max) => (int)QueryInt(ctx, name, fallback, min, (long)max);

    public async Task Deposit(HttpContext ctx, long accountId)
    {
        var caller = CallerOf(ctx);
        var key = RequireKey(ctx);
        long amount;
        Currency currency;
        using (var body = await JsonBody.ReadAsync(ctx, MaxBody))
        {
            amount = body.Body.Amount();
            currency = body.Body.Currency();
        }
        // From account 0: the gateway puts in the platform's funding account of the currency (as for TCP).
        await ExecutePayment(ctx, 201, Prepare(new Command
        {
            Type = CommandType.Deposit, Key = key, FromAccount = 0, ToAccount = accountId, Amount = amount, Currency = currency,
        }, caller));
    }

    // ---- payments ---------------------------------------------------------------------------------------------

    /// <summary>Parses one payment request (the body of POST /v1/payments, or an item of a batch) into its command.</summary>
    private (Command Command, byte[]? Attachment) ParsePayment(JsonBody.Fields f, Caller caller, IdempotencyKey key, string fieldPrefix = "")
    {
        long from = f.Id("from_account");
        long to = f.Id("to_account");
        long amount = f.Amount();
        var currency = f.Currency();
        bool capture = f.OptionalBool("capture") ?? true;
        long? holdTimeout = f.OptionalNonNegativeLong("hold_timeout_ms", "invalid_hold_timeout");
        // A transfer with a hold timeout other than 0 is the gateway's invalid_hold_timeout (as a TCP transfer's is).
        var command = Prepare(new Command
        {
            Type = capture ? CommandType.Transfer : CommandType.Authorize, Key = key,
            FromAccount = from, ToAccount = to, Amount = amount, Currency = currency, Argument = holdTimeout ?? 0,
        }, caller, fieldPrefix);
        byte[]? attachment = PaymentNotes.Parse(f);
        return (command, attachment);
    }

    public async Task CreatePayment(HttpContext ctx)
    {
        var caller = CallerOf(ctx);
        var key = RequireKey(ctx);
        (Command Command, byte[]? Attachment) parsed;
        using (var body = await JsonBody.ReadAsync(ctx, MaxBody)) parsed = ParsePayment(body.Body, caller, key);
        await ExecutePayment(ctx, 201, parsed.Command, parsed.Attachment);
    }

    public async Task Capture(HttpContext ctx, long paymentId)
    {
        var caller = CallerOf(ctx);
        var key = RequireKey(ctx);
        long? amount;
        using (var body = await JsonBody.ReadAsync(ctx, MaxBody, emptyIsObject: true)) amount = body.Body.OptionalAmount();
        await ExecutePayment(ctx, 200, Prepare(new Command
        {
            Type = CommandType.Capture, Key = key, PaymentId = paymentId, Amount = amount ?? 0,
        }, caller));
    }

    public async Task Void(HttpContext ctx, long paymentId)
    {
        var caller = CallerOf(ctx);
        var key = RequireKey(ctx);
        using (await JsonBody.ReadAsync(ctx, MaxBody, emptyIsObject: true)) { }
        await ExecutePayment(ctx, 200, Prepare(new Command { Type = CommandType.Void, Key = key, PaymentId = paymentId }, caller));
    }

    public async Task Refund(HttpContext ctx, long paymentId)
    {
        var caller = CallerOf(ctx);
        var key = RequireKey(ctx);
        long amount;
        Currency? currency;
        using (var body = await JsonBody.ReadAsync(ctx, MaxBody))
        {
            amount = body.Body.Amount();
            currency = body.Body.OptionalCurrency();
        }
        await ExecutePayment(ctx, 201, Prepare(new Command
        {
            Type = CommandType.Refund, Key = key, PaymentId = paymentId, Amount = amount, Currency = currency ?? Currency.None,
        }, caller));
    }

    public async Task GetPayment(HttpContext ctx, long paymentId)
    {
        var caller = CallerOf(ctx);
        var view = await Engine.QueryAsync(l => PaymentView.TryOf(l, paymentId));
        if (view is not { } v) throw ApiError.From(ResultCode.PaymentNotFound);
        if (!caller.IsAdmin && !v.IsParty(caller.UserId)) throw ApiError.Forbidden("You are neither the payer nor the payee of this payment.");
        await JsonOut.Write(ctx, 200, w => JsonOut.Payment(w, v));
    }

    public async Task Batch(HttpContext ctx)
    {
        var caller = CallerOf(ctx);
        // Item i's key is derived from the request's (its hash, "#", i), so a key of any allowed length works.
        var batchKey = RequireKey(ctx);
        var commands = new List<Command>();
        var attachments = new List<byte[]?>();
        ApiError?[] refusals;
        using (var body = await JsonBody.ReadAsync(ctx, MaxBody))
        {
            if (!body.Root.TryGetProperty("payments", out var items) || items.ValueKind != JsonValueKind.Array)
                throw ApiError.InvalidRequest("'payments' is required: an array of payment requests.", "payments");
            int count = items.GetArrayLength();
            if (count == 0) throw ApiError.InvalidRequest("'payments' is empty.", "payments");
            if (count > _options.MaxBatchPayments) throw ApiError.BadRequest("batch_too_large", $"A batch holds at most {_options.MaxBatchPayments} payments; this one has {count}.", "payments");
            refusals = new ApiError?[count];
            int i = 0;
            foreach (var item in items.EnumerateArray())
            {
                try
                {
                    string prefix = $"payments[{i}].";
                    var (command, attachment) = ParsePayment(new JsonBody.Fields(item, prefix), caller, IdempotencyKeys.ForBatchItem(batchKey, i), prefix);
                    commands.Add(command);
                    attachments.Add(attachment);
                }
                catch (ApiError e)
                {
                    refusals[i] = e;
                }
                i++;
            }
        }
        var results = new CommandResult[refusals.Length];
        if (commands.Count > 0)
        {
            _gateway.ThrowIfBackPressured();
            var pending = _gateway.Submit(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(commands), attachments.ToArray());
            await _gateway.WaitAsync(pending);
            for (int i = 0, j = 0; i < refusals.Length; i++)
                if (refusals[i] is null) results[i] = pending.Results[j++];
        }
        var views = await Engine.QueryAsync(l =>
        {
            var v = new PaymentView[results.Length];
            for (int i = 0; i < results.Length; i++)
                if (refusals[i] is null && results[i].IsOk) v[i] = PaymentView.Of(l, results[i].Id);
            return v;
        });
        await JsonOut.Write(ctx, 200, w =>
        {
            w.WriteStartObject();
            w.WriteStartArray("results");
            for (int i = 0; i < results.Length; i++)
            {
                w.WriteStartObject();
                if (refusals[i] is { } refused)
                {
                    w.WriteNumber("status", refused.Status);
                    w.WritePropertyName("error");
                    JsonOut.ErrorObject(w, refused.Code, refused.Message, refused.PaymentId, field: refused.Field);
                }
                else if (results[i].IsOk)
                {
                    w.WriteNumber("status", 201);
                    if (results[i].Replayed) w.WriteBoolean("replayed", true);
                    w.WritePropertyName("payment");
                    JsonOut.Payment(w, views[i]);
                }
                else
                {
                    w.WriteNumber("status", ApiError.StatusOf(results[i].Code));
                    w.WritePropertyName("error");
                    var error = ApiError.From(results[i], $"payments[{i}].");
                    JsonOut.ErrorObject(w, error.Code, error.Message, error.PaymentId, field: error.Field);
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        });
    }

    // ---- administration ---------------------------------------------------------------------------------------

    /// <summary>
    /// Resolves a payment held for review: <c>{"decision": "approve" | "decline"}</c>. Admins only. An Idempotency-Key
    /// is optional (one is made up when missing): a retry with the same key replays the first answer, any other second
    /// review is <c>payment_not_held</c>.
    /// </summary>
    public async Task Review(HttpContext ctx, long paymentId)
    {
        var caller = CallerOf(ctx); // the admin policy has admitted only admins
        string? header = ctx.Request.Headers["Idempotency-Key"];
        var key = string.IsNullOrEmpty(header) ? IdempotencyKey.FromString(Guid.NewGuid().ToString("N")) : RequireKey(ctx);
        long decision;
        using (var body = await JsonBody.ReadAsync(ctx, MaxBody))
        {
            decision = body.Body.String("decision") switch
            {
                "approve" => ReviewDecisions.Approve,
                "decline" => ReviewDecisions.Decline,
                _ => throw ApiError.InvalidRequest("'decision' must be \"approve\" or \"decline\".", "decision"),
            };
        }
        // No OwnerOnly flag: the ledger refuses a Review made on a user's behalf (admin_required).
        await ExecutePayment(ctx, 200, new Command
        {
            Type = CommandType.Review, ClientId = caller.UserId, Key = key, PaymentId = paymentId, Argument = decision,
        });
    }

    public async Task SetFrozen(HttpContext ctx, long accountId, bool frozen)
    {
        var caller = CallerOf(ctx); // the admin policy has admitted only admins
        string? header = ctx.Request.Headers["Idempotency-Key"];
        var key = string.IsNullOrEmpty(header) ? IdempotencyKey.FromString(Guid.NewGuid().ToString("N")) : RequireKey(ctx);
        var result = await Execute(new Command
        {
            Type = frozen ? CommandType.Freeze : CommandType.Unfreeze, ClientId = caller.UserId, Key = key, FromAccount = accountId,
        });
        var account = await Engine.QueryAsync(l => l.GetAccount(accountId));
        MarkReplayed(ctx, result);
        await JsonOut.Write(ctx, 200, w => JsonOut.Account(w, account));
    }
}
