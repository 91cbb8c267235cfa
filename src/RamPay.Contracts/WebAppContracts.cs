using System.Text.Json;

namespace RamPay.Contracts;

// The answers of the endpoints the web app (docs/web.md) reads that had no contract type yet: the payee lookup and the
// operators' searches (docs/api.md "For the web app"), webhook endpoints and deliveries (docs/webhooks.md), rewards and
// reward rules (docs/rewards.md), analytics (docs/analytics.md) and the acknowledgement-latency series
// (GET /v1/admin/latency). Each mirrors what the server writes, field for field, snake_case through RamPayJsonContext.

// ---- users (web app additions) -------------------------------------------------------------------------------

/// <summary><c>GET /v1/users/lookup?email=</c>: a payee's wallet account id and display name, nothing more.</summary>
public sealed record Payee(long AccountId, string Name);

/// <summary>A user as the operators' search (<c>GET /v1/admin/users?email=</c>) lists it.</summary>
public sealed record AdminUser(long UserId, string Email, string Name, string Role, long WalletAccountId, string Currency, bool Frozen, DateTimeOffset CreatedAt);

/// <summary>A page of <see cref="AdminUser"/>, by user id; <see cref="NextAfter"/> is the next page's <c>after</c>.</summary>
public sealed record AdminUserPage(IReadOnlyList<AdminUser> Data, bool HasMore, long? NextAfter);

// ---- webhooks ----------------------------------------------------------------------------------------------------

/// <summary>A webhook endpoint. <see cref="Secret"/> is present only in the answers of create and <c>rotate_secret</c>.</summary>
public sealed record WebhookEndpointView(string Id, string Url, IReadOnlyList<string> EnabledEvents, string Status, string? Description, DateTimeOffset CreatedAt, string? Secret = null);

/// <summary><c>GET /v1/webhook_endpoints</c>.</summary>
public sealed record WebhookEndpointList(IReadOnlyList<WebhookEndpointView> Data, bool HasMore);

/// <summary><c>DELETE /v1/webhook_endpoints/{id}</c>: its pending deliveries are dead-lettered.</summary>
public sealed record WebhookEndpointDeleted(string Id, bool Deleted);

/// <summary>One attempt of a delivery (attempt 0, with nulls, for one not tried yet); status: succeeded, failed, pending, dead.</summary>
public sealed record WebhookDeliveryAttempt(long DeliveryId, string EventId, int Attempt, DateTimeOffset? AttemptedAt, int? StatusCode, long? LatencyMs, string? Error, string Status);

/// <summary><c>GET /v1/webhook_endpoints/{id}/deliveries</c>.</summary>
public sealed record WebhookDeliveryAttemptList(IReadOnlyList<WebhookDeliveryAttempt> Data);

/// <summary><c>POST /v1/events/{id}/redeliver</c> (202): how many deliveries were queued.</summary>
public sealed record RedeliverResult(string EventId, int Queued);

/// <summary>A delivery in the operators' list (<c>GET /v1/admin/webhook_deliveries</c>), with its last attempt.</summary>
public sealed record AdminDelivery(long DeliveryId, string EndpointId, long OwnerUserId, string Url, string EventId, string EventType, string Status,
    int Attempts, DateTimeOffset CreatedAt, DateTimeOffset? LastAttemptAt, int? LastStatusCode, string? LastError);

/// <summary>A page of <see cref="AdminDelivery"/>, newest first.</summary>
public sealed record AdminDeliveryPage(IReadOnlyList<AdminDelivery> Data, bool HasMore, long? NextStartingAfter);

// ---- rewards ---------------------------------------------------------------------------------------------------

/// <summary>A cashback reward (<c>GET /v1/rewards</c>); status issued or skipped (with <see cref="SkipReason"/>).</summary>
public sealed record RewardView(long Id, string Status, long SourcePaymentId, long RuleId, int RuleVersion, long AccountId, long UserId, string Currency,
    long Amount, long PaidOut, long Reversed, long Owed, string? SkipReason, long? PayoutPaymentId, DateTimeOffset IssuedAt);

/// <summary>A page of rewards, newest first.</summary>
public sealed record RewardPage(IReadOnlyList<RewardView> Data, bool HasMore, long? NextAfter);

/// <summary>One version of a rule's terms: a change makes a new version from <see cref="EffectiveFrom"/>; earlier payments keep theirs.</summary>
public sealed record RewardRuleVersionView(int Version, DateTimeOffset EffectiveFrom, bool Ended, string Name, int PercentBps, string Currency, long MinAmount,
    long? MaxPerPayment, long? MaxPerUserPerMonth, IReadOnlyList<long> PayeeAccounts, DateTimeOffset? StartsAt, DateTimeOffset? EndsAt);

/// <summary>A reward rule (admin) with its current terms and every version; status active or ended.</summary>
public sealed record RewardRuleView(long Id, string Status, string Name, int PercentBps, string Currency, long MinAmount, long? MaxPerPayment,
    long? MaxPerUserPerMonth, IReadOnlyList<long> PayeeAccounts, DateTimeOffset? StartsAt, DateTimeOffset? EndsAt, int Version,
    DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt, IReadOnlyList<RewardRuleVersionView>? Versions = null);

/// <summary><c>GET /v1/admin/reward_rules</c>.</summary>
public sealed record RewardRuleList(IReadOnlyList<RewardRuleView> Data);

/// <summary>
/// <c>POST /v1/admin/reward_rules</c> (create) and <c>POST /v1/admin/reward_rules/{id}</c> (change: new terms from now on).
/// Amounts in minor units of <see cref="Currency"/>; a null cap is no cap; an empty payee list is every payee.
/// </summary>
public sealed record RewardRuleRequest(string Name, int PercentBps, string Currency, long? MinAmount = null, long? MaxPerPayment = null,
    long? MaxPerUserPerMonth = null, IReadOnlyList<long>? PayeeAccounts = null, DateTimeOffset? StartsAt = null, DateTimeOffset? EndsAt = null);

/// <summary>The rewards account of one currency: what it holds and what went in and out.</summary>
public sealed record RewardFunding(string Currency, long AccountId, long Balance, long Available, long PaidOut, long ToppedUp);

/// <summary><c>GET /v1/admin/rewards/funding</c>.</summary>
public sealed record RewardFundingList(IReadOnlyList<RewardFunding> Data);

/// <summary><c>POST /v1/admin/rewards/top_up</c> (201): the deposit made and the account after it.</summary>
public sealed record RewardTopUp(Payment Payment, RewardFunding Funding);

// ---- analytics ---------------------------------------------------------------------------------------------------

/// <summary>
/// <c>GET /v1/admin/analytics</c> and <c>GET /v1/analytics/me</c>: non-empty buckets only. Each bucket has <c>start</c>,
/// <c>currency</c> and one number per measure (docs/analytics.md names them); they are read by name, so a measure added
/// later does not break a reader.
/// </summary>
public sealed record AnalyticsSeries(string Interval, DateTimeOffset From, DateTimeOffset To, IReadOnlyList<Dictionary<string, JsonElement>> Data);

/// <summary>
/// One minute of acknowledgement latency (submit to durable reply) measured by the server itself: how many commands were
/// acknowledged in that minute, and percentiles and the maximum in microseconds. Minutes with no command are left out.
/// </summary>
public sealed record LatencyPoint(DateTimeOffset Start, long Count, long P50Us, long P90Us, long P99Us, long P999Us, long MaxUs);

/// <summary>
/// <c>GET /v1/admin/latency?minutes=</c> (admin): the last minutes of acknowledgement latency, oldest first, kept in memory
/// by this server process (a restart starts afresh; Prometheus keeps longer history from <c>/metrics</c>).
/// </summary>
public sealed record LatencySeries(DateTimeOffset From, DateTimeOffset To, int IntervalSeconds, IReadOnlyList<LatencyPoint> Data);
