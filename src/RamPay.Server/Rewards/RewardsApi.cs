using C = RamPay.Contracts;
using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Authorization;
using RamPay.Analytics;
using RamPay.Core;
using RamPay.Rewards;
using RamPay.Server.Auth;
using RamPay.Server.Http;

namespace RamPay.Server.Rewards;

/// <summary>A reward rule's body (POST /v1/admin/reward_rules and its change): the OpenAPI document's shape.</summary>
public sealed record RewardRuleRequest(string Name, int PercentBps, string Currency, long? MinAmount, long? MaxPerPayment, long? MaxPerUserPerMonth,
    long[]? PayeeAccounts, string? StartsAt, string? EndsAt);
public sealed record TopUpRequest(long Amount, string Currency);
public sealed record ServiceTokenRequest(string? Name);
public sealed record IssueRewardsRequest(long[] PaymentIds);
public sealed record RefundRef(long PaymentId, long RefundId);
public sealed record ReverseRewardsRequest(RefundRef[] Refunds);
public sealed record RetrySkippedRequest(long[] TopUpIds);

/// <summary>
/// The rewards and analytics endpoints (docs/rewards.md, docs/analytics.md). Admin: reward rules, the rewards funding
/// accounts, every reward, analytics and service tokens; users: their rewards and their own analytics; the
/// <c>service</c> role (a worker's token) and admins: the two commands the rewards worker sends.
/// </summary>
public static class RewardRoutes
{
    /// <summary>The subject of service tokens: no user has it (user ids are counted from 1 and stay far below).</summary>
    public const long ServiceUserId = 1_000_000_000_000;
    public const int MaxIdsPerCall = HttpRewardCommands.MaxIdsPerCall; // one figure for the endpoint and its client
    private static Delegate H(Func<HttpContext, Task> handler) => handler;

    public static void Map(WebApplication app, RouteGroupBuilder v1, RouteGroupBuilder user, RouteGroupBuilder admin)
    {
        var platform = app.Services.GetRequiredService<Platform>();
        var commands = app.Services.GetRequiredService<IRewardCommands>();
        var analytics = app.Services.GetRequiredService<AnalyticsStore>();
        var api = new Handlers(platform, commands, analytics, app.Services.GetRequiredService<ServerOptions>().Rewards.AnalyticsMaxBuckets);
        var rules = new ForbiddenMessage("Only an admin may manage reward rules and the rewards account.");

        admin.MapPost("/admin/reward_rules", H(api.CreateRule)).WithMetadata(rules, new JsonRequestBody(typeof(RewardRuleRequest)))
            .WithTags("rewards").WithSummary("Define a cashback rule (admin; Idempotency-Key optional)").Produces(201).Produces<C.ErrorEnvelope>(400);
        admin.MapGet("/admin/reward_rules", H(api.ListRules)).WithMetadata(rules)
            .WithTags("rewards").WithSummary("Every reward rule with its versions (admin)").Produces(200);
        admin.MapGet("/admin/reward_rules/{id:long}", (HttpContext c, long id) => api.GetRule(c, id)).WithMetadata(rules)
            .WithTags("rewards").WithSummary("A reward rule with its versions (admin)").Produces(200).Produces<C.ErrorEnvelope>(404);
        admin.MapPost("/admin/reward_rules/{id:long}", (HttpContext c, long id) => api.ChangeRule(c, id)).WithMetadata(rules, new JsonRequestBody(typeof(RewardRuleRequest)))
            .WithTags("rewards").WithSummary("Change a rule: new terms from now on; earlier payments keep theirs (admin)").Produces(200).Produces<C.ErrorEnvelope>(404);
        admin.MapPost("/admin/reward_rules/{id:long}/end", (HttpContext c, long id) => api.EndRule(c, id)).WithMetadata(rules)
            .WithTags("rewards").WithSummary("End a rule from now on (admin)").Produces(200).Produces<C.ErrorEnvelope>(404).Produces<C.ErrorEnvelope>(422);
        admin.MapPost("/admin/rewards/top_up", H(api.TopUp)).WithMetadata(rules, new JsonRequestBody(typeof(TopUpRequest)))
            .WithTags("rewards").WithSummary("Move money from the platform funding account to the rewards account (admin; Idempotency-Key)").Produces(201).Produces<C.ErrorEnvelope>(422);
        admin.MapGet("/admin/rewards/funding", H(api.Funding)).WithMetadata(rules)
            .WithTags("rewards").WithSummary("Each rewards funding account's balance (admin)").Produces(200);
        admin.MapGet("/admin/rewards", H(api.ListAll)).WithMetadata(rules)
            .WithTags("rewards").WithSummary("Every reward, newest first (query: status=issued|skipped, limit, after) (admin)").Produces(200).Produces<C.ErrorEnvelope>(400);
        admin.MapPost("/admin/service_tokens", H(api.ServiceToken)).WithMetadata(new ForbiddenMessage("Only an admin may issue service tokens."), new JsonRequestBody(typeof(ServiceTokenRequest)))
            .WithTags("rewards").WithSummary("A token with the service role, for rampay-worker (admin)").Produces(200);
        admin.MapGet("/admin/analytics", H(api.AdminAnalytics)).WithMetadata(new ForbiddenMessage("Only an admin may read platform analytics."))
            .WithTags("analytics").WithSummary("Rollups per bucket and currency (query: from, to as unix seconds or ISO 8601; interval=minute|hour|day; currency) (admin)").Produces(200).Produces<C.ErrorEnvelope>(400);

        user.MapGet("/rewards", H(api.ListMine)).WithTags("rewards").WithSummary("Your rewards, newest first (query: limit, after)").Produces(200);
        user.MapGet("/analytics/me", H(api.MyAnalytics))
            .WithTags("analytics").WithSummary("Your sent and received totals per bucket (query: from, to, interval)").Produces(200).Produces<C.ErrorEnvelope>(400);

        // The rewards worker's two calls: its service token (or an admin's) and nothing else.
        var service = v1.MapGroup("/service").RequireAuthorization(new AuthorizationPolicyBuilder().RequireRole(TokenService.RoleService, TokenService.RoleAdmin).Build());
        service.MapPost("/rewards/issue", H(api.ServiceIssue)).WithMetadata(new JsonRequestBody(typeof(IssueRewardsRequest)))
            .WithTags("rewards").WithSummary("Pay the rewards of settled payments (service role; answers once durable)").Produces(200).Produces<C.ErrorEnvelope>(400);
        service.MapPost("/rewards/reverse", H(api.ServiceReverse)).WithMetadata(new JsonRequestBody(typeof(ReverseRewardsRequest)))
            .WithTags("rewards").WithSummary("Reverse the rewards of refunded payments (service role; answers once durable)").Produces(200).Produces<C.ErrorEnvelope>(400);
        service.MapPost("/rewards/retry", H(api.ServiceRetry)).WithMetadata(new JsonRequestBody(typeof(RetrySkippedRequest)))
            .WithTags("rewards").WithSummary("After top-ups of a rewards account: try each skipped reward once more (service role; answers once durable)").Produces(200).Produces<C.ErrorEnvelope>(400);
    }

    /// <summary>The refusal for a rewards result code: not found is 404, a malformed rule 400, the rest as ApiError maps them (422).</summary>
    internal static ApiError Refusal(ResultCode code) => code switch
    {
        ResultCode.RewardRuleNotFound or ResultCode.RewardNotFound => new ApiError(404, ResultCodes.Name(code), ResultCodes.Message(code)),
        ResultCode.InvalidRewardRule => new ApiError(400, ResultCodes.Name(code), ResultCodes.Message(code)),
        ResultCode.RewardExists or ResultCode.RewardsAccountExists => new ApiError(409, ResultCodes.Name(code), ResultCodes.Message(code)),
        _ => ApiError.From(code),
    };

    /// <summary>
    /// A service token and its session's current refresh token: the answer of POST /v1/admin/service_tokens, and of
    /// POST /v1/auth/refresh for a service session (Api.Refresh hands those here: the service subject is no user).
    /// </summary>
    public static Task WriteServiceTokens(HttpContext ctx, Platform platform, string refreshToken, long refreshExpiresUnix)
    {
        var token = platform.Tokens.Issue(ServiceUserId, TokenService.RoleService);
        long refreshExpiresIn = Math.Max(0, refreshExpiresUnix - DateTimeOffset.UtcNow.ToUnixTimeSeconds());
        return JsonOut.Write(ctx, 200, w =>
        {
            w.WriteStartObject();
            w.WriteString("access_token", token.Token);
            w.WriteString("token_type", "Bearer");
            w.WriteString("role", TokenService.RoleService);
            w.WriteNumber("expires_in", platform.Tokens.LifetimeSeconds);
            w.WriteString("refresh_token", refreshToken);
            w.WriteNumber("refresh_expires_in", refreshExpiresIn);
            w.WriteEndObject();
        });
    }

    private sealed class Handlers(Platform platform, IRewardCommands commands, AnalyticsStore analytics, long maxBuckets)
    {
        private Hosting.EngineHost Engine => platform.Engine;

        /// <summary>The platform's funding account of <paramref name="currency"/>; a currency the platform does not keep is 400 invalid_currency.</summary>
        private long FundingAccount(Currency currency) =>
            platform.FundingAccounts.TryGetValue(currency, out long funding) ? funding
                : throw ApiError.BadRequest("invalid_currency", $"The platform holds no {currency}: it keeps {platform.Options.Currencies}.");
        private int MaxBody => platform.Options.Http.MaxRequestBodyBytes;

        // ---- rules ----

        public async Task CreateRule(HttpContext ctx) => await DefineRule(ctx, 0, 201);

        public async Task ChangeRule(HttpContext ctx, long id) => await DefineRule(ctx, id, 200);

        private async Task DefineRule(HttpContext ctx, long ruleId, int status)
        {
            var key = OptionalKey(ctx);
            RewardRuleTerms terms;
            using (var body = await JsonBody.ReadAsync(ctx, MaxBody)) terms = ParseTerms(body.Body);
            // A rule in a currency the platform does not keep could never pay (no rewards account): refused like a top-up in it.
            FundingAccount(terms.Currency);
            byte[] attachment;
            try { attachment = terms.Encode(); }
            catch (ArgumentException) { throw ApiError.BadRequest("invalid_reward_rule", "'name' has no UTF-8 form."); }
            var caller = ctx.VerifiedCaller().Caller;
            var result = await Engine.ExecuteAsync(new Command
            {
                Type = CommandType.DefineRewardRule, ClientId = caller.UserId, Key = key, Argument = ruleId, Amount = RewardRuleTerms.Digest(attachment),
            }, attachment);
            if (!result.IsOk) throw Refusal(result.Code);
            await WriteRule(ctx, status, result.Id);
        }

        public async Task EndRule(HttpContext ctx, long id)
        {
            var key = OptionalKey(ctx);
            using (await JsonBody.ReadAsync(ctx, MaxBody, emptyIsObject: true)) { }
            var result = await Engine.ExecuteAsync(new Command { Type = CommandType.EndRewardRule, ClientId = ctx.VerifiedCaller().Caller.UserId, Key = key, Argument = id });
            if (!result.IsOk) throw Refusal(result.Code);
            await WriteRule(ctx, 200, id);
        }

        public async Task GetRule(HttpContext ctx, long id) => await WriteRule(ctx, 200, id);

        public async Task ListRules(HttpContext ctx)
        {
            var rules = await Engine.QueryAsync(l => l.RewardRules.Select(Copy).ToArray());
            await JsonOut.Write(ctx, 200, w =>
            {
                w.WriteStartObject();
                w.WriteStartArray("data");
                foreach (var r in rules) RuleJson(w, r);
                w.WriteEndArray();
                w.WriteEndObject();
            });
        }

        private async Task WriteRule(HttpContext ctx, int status, long id)
        {
            var rule = await Engine.QueryAsync(l => l.GetRewardRule(id) is { } r ? Copy(r) : null);
            if (rule is null) throw Refusal(ResultCode.RewardRuleNotFound);
            await JsonOut.Write(ctx, status, w => RuleJson(w, rule));
        }

        private sealed record RuleCopy(int Id, long CreatedAtMs, RewardRuleVersion[] Versions);

        private static RuleCopy Copy(RewardRule r) => new(r.Id, r.CreatedAtMs, [.. r.Versions]);

        private static void RuleJson(Utf8JsonWriter w, RuleCopy r)
        {
            var current = r.Versions[^1];
            w.WriteStartObject();
            w.WriteNumber("id", r.Id);
            w.WriteString("status", current.Ended ? "ended" : "active");
            TermsJson(w, current.Terms);
            w.WriteNumber("version", current.Number);
            w.WriteString("created_at", JsonOut.Time(r.CreatedAtMs));
            w.WriteString("updated_at", JsonOut.Time(current.EffectiveFromMs));
            w.WriteStartArray("versions");
            foreach (var v in r.Versions)
            {
                w.WriteStartObject();
                w.WriteNumber("version", v.Number);
                w.WriteString("effective_from", JsonOut.Time(v.EffectiveFromMs));
                w.WriteBoolean("ended", v.Ended);
                TermsJson(w, v.Terms);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }

        private static void TermsJson(Utf8JsonWriter w, RewardRuleTerms t)
        {
            w.WriteString("name", t.Name);
            w.WriteNumber("percent_bps", t.PercentBps);
            w.WriteString("currency", t.Currency.ToString());
            w.WriteNumber("min_amount", t.MinAmount);
            if (t.MaxPerPayment > 0) w.WriteNumber("max_per_payment", t.MaxPerPayment); else w.WriteNull("max_per_payment");
            if (t.MaxPerUserPerMonth > 0) w.WriteNumber("max_per_user_per_month", t.MaxPerUserPerMonth); else w.WriteNull("max_per_user_per_month");
            w.WriteStartArray("payee_accounts");
            foreach (long a in t.PayeeAccounts) w.WriteNumberValue(a);
            w.WriteEndArray();
            if (t.StartsAtMs > 0) w.WriteString("starts_at", JsonOut.Time(t.StartsAtMs)); else w.WriteNull("starts_at");
            if (t.EndsAtMs > 0) w.WriteString("ends_at", JsonOut.Time(t.EndsAtMs)); else w.WriteNull("ends_at");
        }

        private static RewardRuleTerms ParseTerms(JsonBody.Fields f)
        {
            string name = f.String("name");
            long bps = f.OptionalNonNegativeLong("percent_bps", "invalid_reward_rule") ?? throw ApiError.InvalidRequest("'percent_bps' is required: basis points, 1..10000 (150 = 1.5 %).");
            if (bps is < 1 or > RewardRuleTerms.MaxPercentBps) throw ApiError.BadRequest("invalid_reward_rule", "'percent_bps' must be 1..10000 (150 = 1.5 %).");
            var currency = f.Currency();
            long min = f.OptionalNonNegativeLong("min_amount", "invalid_reward_rule") ?? 0;
            long maxPerPayment = f.OptionalNonNegativeLong("max_per_payment", "invalid_reward_rule") ?? 0;
            long maxPerMonth = f.OptionalNonNegativeLong("max_per_user_per_month", "invalid_reward_rule") ?? 0;
            long startsAt = OptionalTime(f.Object, "starts_at") ?? 0;
            long endsAt = OptionalTime(f.Object, "ends_at") ?? 0;
            long[] payees = [];
            if (f.Object.TryGetProperty("payee_accounts", out var p) && p.ValueKind != JsonValueKind.Null)
            {
                if (p.ValueKind != JsonValueKind.Array || p.GetArrayLength() > RewardRuleTerms.MaxPayees)
                    throw ApiError.BadRequest("invalid_reward_rule", $"'payee_accounts' must be an array of at most {RewardRuleTerms.MaxPayees} account ids.");
                payees = [.. p.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.Number && e.TryGetInt64(out long id) && id > 0 ? id
                    : throw ApiError.BadRequest("invalid_reward_rule", "'payee_accounts' holds positive integer account ids."))];
            }
            var terms = new RewardRuleTerms(name, (int)bps, currency, min, maxPerPayment, maxPerMonth, startsAt, endsAt, payees);
            if (!terms.IsValid) throw Refusal(ResultCode.InvalidRewardRule);
            return terms;
        }

        private static long? OptionalTime(JsonElement o, string name)
        {
            if (!o.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
            if (v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out long seconds) && seconds is >= 0 and <= TimeParam.MaxUnixSeconds) return seconds * 1000;
            if (v.ValueKind == JsonValueKind.String && TimeParam.TryParse(v.GetString()!, out long ms)) return ms;
            throw ApiError.BadRequest("invalid_time", $"'{name}' must be unix seconds or an ISO 8601 time such as \"2026-01-01T00:00:00Z\".");
        }

        private static IdempotencyKey OptionalKey(HttpContext ctx)
        {
            string? key = ctx.Request.Headers["Idempotency-Key"];
            if (string.IsNullOrEmpty(key)) return IdempotencyKey.FromString("admin:" + Guid.NewGuid().ToString("N"));
            if (key.Length > IdempotencyKey.MaxKeyLength || !RequestText.IsAscii(key))
                throw ApiError.BadRequest("invalid_idempotency_key", $"The Idempotency-Key header holds 1..{IdempotencyKey.MaxKeyLength} ASCII characters.");
            return IdempotencyKey.FromString(key);
        }

        // ---- the rewards account ----

        public async Task TopUp(HttpContext ctx)
        {
            string? header = ctx.Request.Headers["Idempotency-Key"];
            if (string.IsNullOrEmpty(header)) throw ApiError.BadRequest("idempotency_key_required", "This request moves money: send an Idempotency-Key header (1..255 characters) so that it can be retried safely.");
            var key = OptionalKey(ctx);
            long amount;
            Currency currency;
            using (var body = await JsonBody.ReadAsync(ctx, MaxBody))
            {
                amount = body.Body.Amount();
                currency = body.Body.Currency();
            }
            long funding = FundingAccount(currency);
            long rewards = await Engine.QueryAsync(l => l.RewardsAccount(currency));
            if (rewards == 0) throw new ApiError(409, "rewards_account_missing", $"The {currency} rewards account is not open yet.");
            var result = await Engine.ExecuteAsync(new Command
            {
                Type = CommandType.Deposit, ClientId = ctx.VerifiedCaller().Caller.UserId, Key = key,
                FromAccount = funding, ToAccount = rewards, Amount = amount, Currency = currency,
            });
            if (!result.IsOk) throw ApiError.From(result);
            var (payment, account) = await Engine.QueryAsync(l => (PaymentView.Of(l, result.Id), l.GetAccount(rewards)));
            if (result.Replayed) ctx.Response.Headers["Idempotent-Replayed"] = "true";
            await JsonOut.Write(ctx, 201, w =>
            {
                w.WriteStartObject();
                w.WritePropertyName("payment");
                JsonOut.Payment(w, payment);
                w.WritePropertyName("funding");
                FundingJson(w, account);
                w.WriteEndObject();
            });
        }

        public async Task Funding(HttpContext ctx)
        {
            var accounts = await Engine.QueryAsync(l => l.RewardsAccounts.Select(a => l.GetAccount(a.Account)).ToArray());
            await JsonOut.Write(ctx, 200, w =>
            {
                w.WriteStartObject();
                w.WriteStartArray("data");
                foreach (var a in accounts) FundingJson(w, a);
                w.WriteEndArray();
                w.WriteEndObject();
            });
        }

        private static void FundingJson(Utf8JsonWriter w, in Account a)
        {
            w.WriteStartObject();
            w.WriteString("currency", a.Currency.ToString());
            w.WriteNumber("account_id", a.Id);
            w.WriteNumber("balance", a.Posted);
            w.WriteNumber("available", a.Available);
            w.WriteNumber("paid_out", a.DebitsPosted);
            w.WriteNumber("topped_up", a.CreditsPosted);
            w.WriteEndObject();
        }

        // ---- rewards ----

        public async Task ListAll(HttpContext ctx)
        {
            RewardStatus? status = null;
            if (ctx.Request.Query["status"].ToString() is { Length: > 0 } s)
                status = RewardNames.TryParseStatus(s, out var st) ? st : throw ApiError.BadRequest("invalid_status", "status is issued or skipped.");
            int limit = QueryInt(ctx, "limit", 20, 1, 100);
            long after = QueryInt(ctx, "after", 0, 0, long.MaxValue);
            var page = await Engine.QueryAsync(l =>
            {
                var list = new List<Reward>();
                long start = after == 0 ? l.RewardCount : Math.Min(after - 1, l.RewardCount);
                for (long id = start; id >= 1 && list.Count <= limit; id--)
                {
                    var r = l.GetReward(id);
                    if (status is null || r.Status == status) list.Add(r);
                }
                return list;
            });
            await WriteRewards(ctx, page, limit);
        }

        public async Task ListMine(HttpContext ctx)
        {
            var caller = ctx.VerifiedCaller().Caller;
            int limit = QueryInt(ctx, "limit", 20, 1, 100);
            long after = QueryInt(ctx, "after", 0, 0, long.MaxValue);
            var page = await Engine.QueryAsync(l =>
            {
                var list = new List<Reward>();
                if (l.GetUser(caller.UserId) is not { } u) return list;
                Span<long> ids = stackalloc long[101];
                int n = l.RewardsOfAccount(u.WalletAccountId, after, ids[..(limit + 1)]);
                for (int i = 0; i < n; i++) list.Add(l.GetReward(ids[i]));
                return list;
            });
            await WriteRewards(ctx, page, limit);
        }

        private static Task WriteRewards(HttpContext ctx, List<Reward> page, int limit) => JsonOut.Write(ctx, 200, w =>
        {
            bool more = page.Count > limit;
            w.WriteStartObject();
            w.WriteStartArray("data");
            foreach (var r in page.Take(limit)) RewardJson(w, r);
            w.WriteEndArray();
            w.WriteBoolean("has_more", more);
            if (more) w.WriteNumber("next_after", page[limit - 1].Id); else w.WriteNull("next_after");
            w.WriteEndObject();
        });

        private static void RewardJson(Utf8JsonWriter w, in Reward r)
        {
            w.WriteStartObject();
            w.WriteNumber("id", r.Id);
            w.WriteString("status", RewardNames.Status(r.Status));
            w.WriteNumber("source_payment_id", r.SourcePaymentId);
            w.WriteNumber("rule_id", r.RuleId);
            w.WriteNumber("rule_version", r.RuleVersion);
            w.WriteNumber("account_id", r.Account);
            w.WriteNumber("user_id", r.UserId);
            w.WriteString("currency", r.Currency.ToString());
            w.WriteNumber("amount", r.Amount);
            w.WriteNumber("paid_out", r.PaidOut);
            w.WriteNumber("reversed", r.Recovered);
            w.WriteNumber("owed", r.Owed);
            if (r.Status == RewardStatus.Skipped) w.WriteString("skip_reason", ResultCodes.Name(r.SkipReason)); else w.WriteNull("skip_reason");
            if (r.PayoutPaymentId != 0) w.WriteNumber("payout_payment_id", r.PayoutPaymentId); else w.WriteNull("payout_payment_id");
            w.WriteString("issued_at", JsonOut.Time(r.IssuedAtMs));
            w.WriteEndObject();
        }

        // ---- service ----

        public async Task ServiceToken(HttpContext ctx)
        {
            using (await JsonBody.ReadAsync(ctx, MaxBody, emptyIsObject: true)) { }
            // A session of its own, like a log-in: the worker renews its access token with POST /v1/auth/refresh
            // (rotation: each refresh token works once) until RamPay:Jwt:RefreshTokenLifetimeSeconds after this call.
            string refresh = platform.Tokens.Sessions.Create(ServiceUserId, out long refreshExpires);
            await WriteServiceTokens(ctx, platform, refresh, refreshExpires);
        }

        public async Task ServiceRetry(HttpContext ctx)
        {
            long[] ids;
            using (var body = await JsonBody.ReadAsync(ctx, MaxBody)) ids = Ids(body.Root, "top_up_ids");
            var outcomes = await commands.RetrySkippedAsync(ids, ctx.RequestAborted);
            await WriteOutcomes(ctx, outcomes);
        }

        public async Task ServiceIssue(HttpContext ctx)
        {
            long[] ids;
            using (var body = await JsonBody.ReadAsync(ctx, MaxBody)) ids = Ids(body.Root, "payment_ids");
            var outcomes = await commands.IssueAsync(ids, ctx.RequestAborted);
            await WriteOutcomes(ctx, outcomes);
        }

        public async Task ServiceReverse(HttpContext ctx)
        {
            var refunds = new List<(long, long)>();
            using (var body = await JsonBody.ReadAsync(ctx, MaxBody))
            {
                if (!body.Root.TryGetProperty("refunds", out var a) || a.ValueKind != JsonValueKind.Array || a.GetArrayLength() is 0 or > MaxIdsPerCall)
                    throw ApiError.InvalidRequest($"'refunds' is required: 1..{MaxIdsPerCall} objects {{payment_id, refund_id}}.");
                int i = 0;
                foreach (var item in a.EnumerateArray())
                {
                    var f = new JsonBody.Fields(item, $"refunds[{i++}].");
                    refunds.Add((f.Id("payment_id"), f.Id("refund_id")));
                }
            }
            var outcomes = await commands.ReverseAsync(refunds, ctx.RequestAborted);
            await WriteOutcomes(ctx, outcomes);
        }

        private static long[] Ids(JsonElement root, string name)
        {
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty(name, out var a) || a.ValueKind != JsonValueKind.Array || a.GetArrayLength() is 0 or > MaxIdsPerCall)
                throw ApiError.InvalidRequest($"'{name}' is required: 1..{MaxIdsPerCall} payment ids.");
            return [.. a.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.Number && e.TryGetInt64(out long id) && id > 0 ? id
                : throw ApiError.InvalidRequest($"'{name}' holds positive integer ids."))];
        }

        private static Task WriteOutcomes(HttpContext ctx, IReadOnlyList<RewardOutcome> outcomes) => JsonOut.Write(ctx, 200, w =>
        {
            w.WriteStartObject();
            w.WriteStartArray("outcomes");
            foreach (var o in outcomes) w.WriteStringValue(RewardOutcomes.Name(o));
            w.WriteEndArray();
            w.WriteEndObject();
        });

        // ---- analytics ----

        public async Task AdminAnalytics(HttpContext ctx)
        {
            var (interval, from, to) = Range(ctx, ["from", "to", "interval", "currency"]);
            ushort currency = 0;
            if (ctx.Request.Query["currency"].ToString() is { Length: > 0 } c)
            {
                var cur = Currency.TryParse(c, out var parsed) ? parsed : throw ApiError.BadRequest("invalid_currency", "currency is a three-letter ISO 4217 code such as USD.");
                // A currency the platform does not keep is refused as every other endpoint refuses it (not an empty series).
                FundingAccount(cur);
                currency = cur.Code;
            }
            var buckets = analytics.Rollups.Query(interval, from, to, currency, maxBuckets);
            // The score distribution of each bucket: (start, currency) -> its cells, oldest first like the buckets.
            var scores = analytics.Rollups.QueryScores(interval, from, to, currency, maxBuckets).ToLookup(s => (s.StartMs, s.Currency));
            await JsonOut.Write(ctx, 200, w =>
            {
                WriteHeader(w, interval, from, to);
                foreach (var (start, cur, values) in buckets)
                {
                    w.WriteStartObject();
                    w.WriteString("start", JsonOut.Time(start));
                    w.WriteString("currency", cur.ToString());
                    for (int m = 0; m < values.Length; m++) w.WriteNumber(AnalyticsRollups.MeasureName((Measure)m), values[m]);
                    var cells = scores[(start, cur)];
                    w.WriteNumber("fraud_scored", cells.Sum(s => s.Payments));
                    w.WriteStartArray("fraud_scores");
                    foreach (var cell in cells)
                    {
                        w.WriteStartObject();
                        w.WriteString("model", cell.Model);
                        w.WriteNumber("bin", cell.Bin);
                        w.WriteNumber("payments", cell.Payments);
                        w.WriteEndObject();
                    }
                    w.WriteEndArray();
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteEndObject();
            });
        }

        public async Task MyAnalytics(HttpContext ctx)
        {
            var (interval, from, to) = Range(ctx, ["from", "to", "interval"]);
            // A user's buckets older than their retention are dropped: a range reaching before the oldest kept is refused
            // rather than answered short (a default from, not asked for, starts at the oldest kept instead).
            long kept = analytics.Rollups.UserBucketsFrom(interval);
            if (AnalyticsRollups.StartOf(from, interval) < kept)
            {
                if (ctx.Request.Query["from"].ToString().Length > 0)
                    throw ApiError.BadRequest("range_not_retained", $"A user's {interval.ToString().ToLowerInvariant()} buckets are kept for {AnalyticsRetention.Text(analytics.Rollups.Retention.For(interval))} (RamPay:Rewards:AnalyticsUserRetention): the oldest kept starts at {JsonOut.Time(kept)}. Ask from then on, or for a longer interval.");
                from = Math.Min(kept, to);
            }
            var buckets = analytics.Rollups.QueryUser(ctx.VerifiedCaller().Caller.UserId, interval, from, to, maxBuckets);
            await JsonOut.Write(ctx, 200, w =>
            {
                WriteHeader(w, interval, from, to);
                foreach (var (start, cur, v) in buckets)
                {
                    w.WriteStartObject();
                    w.WriteString("start", JsonOut.Time(start));
                    w.WriteString("currency", cur.ToString());
                    w.WriteNumber("sent_count", v[0]);
                    w.WriteNumber("sent_amount", v[1]);
                    w.WriteNumber("received_count", v[2]);
                    w.WriteNumber("received_amount", v[3]);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteEndObject();
            });
        }

        private static void WriteHeader(Utf8JsonWriter w, Interval interval, long from, long to)
        {
            w.WriteStartObject();
            w.WriteString("interval", interval.ToString().ToLowerInvariant());
            w.WriteString("from", JsonOut.Time(from));
            w.WriteString("to", JsonOut.Time(to));
            w.WriteStartArray("data");
        }

        /// <summary>The most buckets one query may span: <c>Rewards:AnalyticsMaxBuckets</c> (31 days of minutes by default).</summary>
        private (Interval, long, long) Range(HttpContext ctx, string[] known)
        {
            foreach (var k in ctx.Request.Query.Keys)
                if (!known.Contains(k)) throw ApiError.BadRequest("invalid_query", $"Unknown query parameter '{k}': use {string.Join(", ", known)}.");
            var interval = ctx.Request.Query["interval"].ToString() switch
            {
                "" or "hour" => Interval.Hour,
                "minute" => Interval.Minute,
                "day" => Interval.Day,
                _ => throw ApiError.BadRequest("invalid_interval", "interval is minute, hour or day."),
            };
            long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            long to = Time(ctx, "to") ?? now;
            long from = Time(ctx, "from") ?? to - 24L * 3600 * 1000;
            if (from >= to) throw ApiError.BadRequest("invalid_range", "from must be before to.");
            long buckets = AnalyticsRollups.BucketCount(interval, from, to);
            if (buckets > maxBuckets)
                throw ApiError.BadRequest("invalid_range", $"The range spans {buckets} buckets; at most {maxBuckets} per query (RamPay:Rewards:AnalyticsMaxBuckets): narrow the range or take a longer interval.");
            return (interval, from, to);
        }

        private static long? Time(HttpContext ctx, string name)
        {
            string s = ctx.Request.Query[name].ToString();
            if (s.Length == 0) return null;
            return TimeParam.TryParse(s, out long ms) ? ms
                : throw ApiError.BadRequest("invalid_time", $"'{name}' must be unix seconds or an ISO 8601 time such as 2026-01-01T00:00:00Z.");
        }

        private static long QueryInt(HttpContext ctx, string name, long fallback, long min, long max)
        {
            string? raw = ctx.Request.Query[name];
            if (raw is null) return fallback;
            if (!long.TryParse(raw, NumberStyles.None, CultureInfo.InvariantCulture, out long v) || v < min || v > max)
                throw ApiError.InvalidRequest($"The query parameter '{name}' must be an integer from {min} to {max}.");
            return v;
        }

        private static int QueryInt(HttpContext ctx, string name, int fallback, int min, int max) => (int)QueryInt(ctx, name, fallback, min, (long)max);
    }
}

/// <summary><c>from</c>/<c>to</c>/<c>starts_at</c>: unix seconds (digits only) or ISO 8601 with a zone (or UTC when none).</summary>
public static class TimeParam
{
    public const long MaxUnixSeconds = 253_402_300_799; // 9999-12-31T23:59:59Z

    public static bool TryParse(string s, out long unixMs)
    {
        unixMs = 0;
        if (s.Length is 0 or > 40) return false;
        if (s.All(char.IsAsciiDigit))
        {
            if (!long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out long seconds) || seconds > MaxUnixSeconds) return false;
            unixMs = seconds * 1000;
            return true;
        }
        if (!DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var t)
            || !s.Contains('T', StringComparison.Ordinal) && !s.Contains('-', StringComparison.Ordinal))
            return false;
        unixMs = t.ToUnixTimeMilliseconds();
        return unixMs >= 0;
    }
}
